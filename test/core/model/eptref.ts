// A plain reference model of EPT (SDM Vol. 3C §28.2–28.3, fact sheet §3) and of the
// two-dimensional walk, to be compared against the Wasm core. Like x86ref.ts it has no
// caches and shares no code with src/ or assembly/. The guest dimension is x86ref's
// refTranslate, whose entry reads and A/D writes go through the EPT here.
//
// EPT entry (present iff bits 2:0 ≠ 0):
//   bits 2:0   X W R      (W without R: misconfiguration; X only: allowed, execute-only)
//   bits 5:3   memory type in a leaf (2, 3, 7: misconfiguration); reserved in a non-leaf
//   bit 6      ignore-PAT in a leaf; reserved in a non-leaf
//   bit 7      PS at PDPTE/PDE; reserved in PML4E/PML5E; ignored in a PTE
//   bit 8      A (set in every entry used when EPTP[6]=1)
//   bit 9      D (leaf; set on a write when EPTP[6]=1)
//   bits 51:12 address; bits 51:M reserved; 29:12 / 20:12 reserved in a 1 GiB / 2 MiB leaf
//
// Exit rules this model states (fact sheet §3.3–3.6):
// - The exit's guest-physical address is the address whose translation failed: the
//   8-byte guest entry for a guest paging-structure access (SDM 27.2.1), the data gpa
//   for the final access.
// - Guest paging-structure reads are EPT reads, or reads+writes when EPT A/D is on.
// - Without EPT A/D, a guest A/D update is an EPT write of the entry: checked after the
//   final gpa translated, before any guest A/D bit is written.
// - Qualification: bits 2:0 the access, 5:3 the AND of R/W/X over the entries used
//   (0 when an entry is not present), bit 7 GLA valid, bit 8 final translation.

import {
  refTranslate, type RefAccess, type RefMemory, type RefRegs, type RefResult, type WalkHooks, type WalkStep,
  A as PTE_A, D as PTE_D,
} from './x86ref.js';

export interface RefEpt { root: bigint; levels: 4 | 5; ad: boolean }

export type NestedResult = RefResult
  | { ok: false; fault: 'EPT_VIOLATION'; gpa: bigint; qualification: number }
  | { ok: false; fault: 'EPT_MISCONFIG'; gpa: bigint };

export const EA_R = 1, EA_W = 2, EA_X = 4;
const EPT_PS = 1n << 7n, EPT_A = 1n << 8n, EPT_D = 1n << 9n;

const bit = (n: number): bigint => 1n << BigInt(n);
const bits = (hi: number, lo: number): bigint => (hi < lo ? 0n : (bit(hi + 1) - 1n) & ~(bit(lo) - 1n));

class EptExit extends Error {
  constructor(readonly result: NestedResult) { super('EPT exit'); }
}

/** Reserved bits of a present EPT entry (misconfiguration when set). */
export function eptReserved(level: number, leaf: boolean, M: number): bigint {
  let m = bits(51, M);
  if (level >= 4) m |= bits(7, 3);
  else if (!leaf) m |= bits(6, 3);
  else if (level === 3) m |= bits(29, 12);
  else if (level === 2) m |= bits(20, 12);
  return m;
}

export interface EptTranslation { hpa: bigint; pageSize: number; rights: number }

/**
 * Translates gpa for an access of kind `need` (EA_*). final = gpa is the translation of
 * the linear address (qualification bit 8). Throws EptExit on a violation or misconfig.
 */
export function eptTranslate(mem: RefMemory, ept: RefEpt, M: number, gpa: bigint, need: number, final: boolean): EptTranslation {
  if (gpa >> BigInt(12 + 9 * ept.levels) !== 0n) throw new Error(`model: gpa 0x${gpa.toString(16)} beyond a ${ept.levels}-level EPT`);
  const violation = (rights: number): never => {
    throw new EptExit({ ok: false, fault: 'EPT_VIOLATION', gpa,
      qualification: need | (rights << 3) | (1 << 7) | (final ? 1 << 8 : 0) });
  };
  const misconfig = (): never => { throw new EptExit({ ok: false, fault: 'EPT_MISCONFIG', gpa }); };
  let table = ept.root & bits(51, 12);
  let rights = 7;
  const used: bigint[] = [];
  for (let level: number = ept.levels; level >= 1; level--) {
    const addr = table + ((gpa >> BigInt(12 + 9 * (level - 1))) & 511n) * 8n;
    const e = mem.read64(addr);
    used.push(addr);
    const xwr = Number(e & 7n);
    rights &= xwr;
    if (xwr === 0) violation(0);
    if ((xwr & 3) === 2) misconfig();                  // W without R
    const leaf = level === 1 || (level <= 3 && (e & EPT_PS) !== 0n);
    if ((e & eptReserved(level, leaf, M)) !== 0n) misconfig();
    if (leaf) {
      const mt = Number((e >> 3n) & 7n);
      if (mt === 2 || mt === 3 || mt === 7) misconfig();
      if ((rights & need) !== need) violation(rights);
      if (ept.ad) {
        for (const a of used) mem.write64(a, mem.read64(a) | EPT_A);
        if (need & EA_W) mem.write64(addr, mem.read64(addr) | EPT_D);
      }
      const size = bit(12 + 9 * (level - 1));
      return { hpa: (e & bits(51, 12) & ~(size - 1n)) | (gpa & (size - 1n)), pageSize: Number(size), rights };
    }
    table = e & bits(51, 12);
  }
  throw new Error('unreachable: an EPT PTE is always a leaf');
}

const kindOf = (a: RefAccess): number => (a.write ? EA_W : a.fetch ? EA_X : EA_R);

/**
 * The 2-D translation of va: the guest walk of x86ref with every guest entry's gpa and
 * the final gpa translated through the EPT. `mem` is host memory.
 */
export function refTranslateNested(mem: RefMemory, regs: RefRegs, ept: RefEpt, va: bigint,
  access: RefAccess = {}): NestedResult {
  const M = regs.maxPhysAddr ?? 52;
  const pagingNeed = ept.ad ? EA_R | EA_W : EA_R;
  const seen = new Map<bigint, EptTranslation>(); // entry gpa → its EPT translation
  const hooks: WalkHooks = {
    readEntry(gpa) {
      const t = eptTranslate(mem, ept, M, gpa, pagingNeed, false);
      seen.set(gpa, t);
      return mem.read64(t.hpa);
    },
    writeEntry(gpa, v) { mem.write64(seen.get(gpa)!.hpa, v); },
    commit(gpa: bigint, pageSize: number, used: WalkStep[], leaf: WalkStep, write: boolean) {
      const t = eptTranslate(mem, ept, M, gpa, kindOf(access), true);
      if (!ept.ad) {
        // A guest A/D update is an EPT write of the entry's gpa.
        for (const s of used) {
          const want = s === leaf ? PTE_A | (write ? PTE_D : 0n) : PTE_A;
          if ((s.value & want) === want || (seen.get(s.addr)!.rights & EA_W) !== 0) continue;
          eptTranslate(mem, ept, M, s.addr, EA_R | EA_W, false);
        }
      }
      return { pa: t.hpa, pageSize: Math.min(pageSize, t.pageSize) };
    },
  };
  try {
    return refTranslate(mem, regs, va, access, [], hooks);
  } catch (e) {
    if (e instanceof EptExit) return e.result;
    throw e;
  }
}

/**
 * Host memory for the model: reads fall through to a snapshot source (the machine's
 * memory before the core runs), writes stay here. `touched` lists every word read or
 * written, with its value before the model ran, so a test can compare final states.
 */
export class OverlayMemory implements RefMemory {
  readonly words = new Map<bigint, bigint>();
  readonly before = new Map<bigint, bigint>();
  constructor(private readonly src: { read64(pa: bigint): bigint }) {}
  read64(pa: bigint): bigint {
    if (pa % 8n !== 0n) throw new Error(`unaligned read64 at 0x${pa.toString(16)}`);
    const w = this.words.get(pa);
    if (w !== undefined) return w;
    const v = this.src.read64(pa);
    if (!this.before.has(pa)) this.before.set(pa, v);
    return v;
  }
  write64(pa: bigint, v: bigint): void {
    if (!this.before.has(pa)) this.before.set(pa, this.src.read64(pa));
    this.words.set(pa, BigInt.asUintN(64, v));
  }
  /** The model's value of every word it touched. */
  final(): Map<bigint, bigint> {
    const out = new Map<bigint, bigint>();
    for (const pa of this.before.keys()) out.set(pa, this.words.get(pa) ?? this.before.get(pa)!);
    return out;
  }
}
