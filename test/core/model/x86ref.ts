// A plain reference model of x86-64 4-level and 5-level paging, written from the fact
// sheet (/work/shared/reference/x86-paging-ept-shadow.md §1) and SDM 4.5–4.8, to be
// compared against the Wasm core. It has no TLB: it walks memory on every access. It
// deliberately shares no code with src/ or assembly/.
//
// Entry layout (every level; "leaf" = PTE, or PDE/PDPTE with PS=1):
//   bit 0      P     present
//   bit 1      R/W   writable (ANDed over the walk)
//   bit 2      U/S   user (ANDed over the walk)
//   bits 3,4   PWT, PCD (memory type; no effect here)
//   bit 5      A     accessed (set on every entry of a successful walk)
//   bit 6      D     dirty (leaf only; set by a successful write; ignored in non-leaves)
//   bit 7      PS    page size at PDPTE/PDE; PAT in a PTE; reserved in PML4E/PML5E
//   bit 8      G     global (leaf only; a TLB matter, ignored here)
//   bits 11:9  ignored
//   bit 12     PAT in a 2 MiB / 1 GiB leaf, else address bit
//   bits 51:12 address (bits 51:M reserved; 20:13 reserved in a 2 MiB leaf,
//              29:13 in a 1 GiB leaf)
//   bits 58:52 ignored
//   bits 62:59 protection key (leaf only)
//   bit 63     XD (ORed over the walk when EFER.NXE=1; reserved when NXE=0)

export type RefAccess = { write?: boolean; user?: boolean; fetch?: boolean; implicit?: boolean };

export type RefResult =
  | { ok: true; pa: bigint; pageSize: 4096 | 2097152 | 1073741824 }
  | { ok: false; fault: 'PF'; errorCode: number; cr2: bigint }
  | { ok: false; fault: 'GP' };

export interface RefRegs {
  cr0: bigint; cr3: bigint; cr4: bigint; efer: bigint; rflags: bigint;
  pkru: bigint | number; cpl: number;
  /** MAXPHYADDR, 36..52 (default 52). */
  maxPhysAddr?: number;
}

/** Physical memory as seen by the walker: aligned 8-byte words. */
export interface RefMemory { read64(pa: bigint): bigint; write64(pa: bigint, v: bigint): void }

/** Sparse memory: a map of 8-byte words; absent words read as 0. */
export class MapMemory implements RefMemory {
  readonly words = new Map<bigint, bigint>();
  read64(pa: bigint): bigint {
    if (pa % 8n !== 0n) throw new Error(`unaligned read64 at 0x${pa.toString(16)}`);
    return this.words.get(pa) ?? 0n;
  }
  write64(pa: bigint, v: bigint): void {
    if (pa % 8n !== 0n) throw new Error(`unaligned write64 at 0x${pa.toString(16)}`);
    this.words.set(pa, BigInt.asUintN(64, v));
  }
}

const bit = (n: number): bigint => 1n << BigInt(n);
/** Bits hi..lo set (inclusive); empty when hi < lo. */
const bits = (hi: number, lo: number): bigint => (hi < lo ? 0n : (bit(hi + 1) - 1n) & ~(bit(lo) - 1n));
const has = (v: bigint, mask: bigint): boolean => (v & mask) !== 0n;

// Control-register bits.
export const CR0_WP = bit(16), CR0_PG = bit(31);
export const CR4_PAE = bit(5), CR4_LA57 = bit(12), CR4_SMEP = bit(20), CR4_SMAP = bit(21), CR4_PKE = bit(22);
export const EFER_LME = bit(8), EFER_NXE = bit(11);
export const RFLAGS_AC = bit(18);

// Entry bits.
export const P = bit(0), RW = bit(1), US = bit(2), A = bit(5), D = bit(6), PS = bit(7), XD = bit(63);

// Error-code bits.
export const PF_P = 1, PF_W = 2, PF_U = 4, PF_RSVD = 8, PF_ID = 16, PF_PK = 32;

const PAGE_SIZE = { 1: 4096, 2: 2097152, 3: 1073741824 } as const;

/** One entry read by the walk: where it lives, its level (5..1), its value when read. */
export interface WalkStep { addr: bigint; level: number; value: bigint }

/**
 * Hooks for a second translation dimension (test/model/eptref.ts): entry addresses are
 * then guest-physical. readEntry/writeEntry replace mem; commit runs after the rights
 * check and before any A/D write (it may throw to end the translation) and returns the
 * final physical address and page size to report.
 */
export interface WalkHooks {
  readEntry(addr: bigint): bigint;
  writeEntry(addr: bigint, v: bigint): void;
  commit(pa: bigint, pageSize: number, used: WalkStep[], leaf: WalkStep, write: boolean): { pa: bigint; pageSize: number };
}

/** Reserved bits of a present entry at `level` (SDM 4.5 / fact sheet §1.4). */
export function reservedMask(level: number, isLeaf: boolean, maxPhysAddr: number, nxe: boolean): bigint {
  let m = bits(51, maxPhysAddr);            // bits 51:M everywhere (none when M=52)
  if (!nxe) m |= XD;                        // bit 63 when NXE=0
  if (level >= 4) m |= PS;                  // PS in PML4E/PML5E
  if (level === 3 && isLeaf) m |= bits(29, 13); // 1 GiB leaf: 29:13
  if (level === 2 && isLeaf) m |= bits(20, 13); // 2 MiB leaf: 20:13
  return m;
}

/** Is va canonical for this number of paging levels (bits 63:47 or 63:56 equal)? */
export function isCanonical(va: bigint, levels: 4 | 5): boolean {
  const top = BigInt.asUintN(64, va) >> BigInt(levels === 5 ? 56 : 47);
  const width = levels === 5 ? 8 : 17;
  return top === 0n || top === bit(width) - 1n;
}

/** Index of va into the table at `level` (1 = PT, 2 = PD, 3 = PDPT, 4 = PML4, 5 = PML5). */
export function tableIndex(va: bigint, level: number): bigint {
  return (va >> BigInt(12 + 9 * (level - 1))) & 511n;
}

/**
 * Translates va for one access, as the SDM describes a walk with no cached state.
 * On success it sets A on every entry used and D on the leaf for a write. On a
 * fault it changes nothing. `steps` (optional) receives the entries read.
 */
export function refTranslate(mem: RefMemory, regs: RefRegs, va: bigint, access: RefAccess = {},
  steps: WalkStep[] = [], hooks?: WalkHooks): RefResult {
  va = BigInt.asUintN(64, va);
  const M = regs.maxPhysAddr ?? 52;
  const cr0 = regs.cr0, cr4 = regs.cr4, efer = regs.efer;
  if (!has(cr0, CR0_PG) || !has(cr4, CR4_PAE) || !has(efer, EFER_LME)) {
    throw new Error('the reference model only covers long-mode (4-/5-level) paging');
  }
  const levels: 4 | 5 = has(cr4, CR4_LA57) ? 5 : 4;
  const nxe = has(efer, EFER_NXE);
  const wp = has(cr0, CR0_WP);
  const write = !!access.write, fetch = !!access.fetch, implicit = !!access.implicit;
  // Implicit accesses are supervisor accesses whatever the CPL.
  const userMode = !implicit && (regs.cpl === 3 || !!access.user);

  if (!isCanonical(va, levels)) return { ok: false, fault: 'GP' };

  // Bits that describe the access go into every #PF error code.
  let accessBits = 0;
  if (write) accessBits |= PF_W;
  if (userMode) accessBits |= PF_U;
  if (fetch && (nxe || has(cr4, CR4_SMEP))) accessBits |= PF_ID;
  const pf = (code: number): RefResult => ({ ok: false, fault: 'PF', errorCode: code | accessBits, cr2: va });

  // The walk (fact sheet §1.5).
  const addrMask = bits(M - 1, 12);
  let table = regs.cr3 & addrMask;
  let writable = true, user = true, noExec = false;
  let leaf: WalkStep | undefined;
  const used: WalkStep[] = [];
  for (let level: number = levels; level >= 1; level--) {
    const addr = table + tableIndex(va, level) * 8n;
    const value = hooks ? hooks.readEntry(addr) : mem.read64(addr);
    const step = { addr, level, value };
    used.push(step);
    steps.push(step);
    if (!has(value, P)) return pf(0);
    const isLeaf = level === 1 || ((level === 2 || level === 3) && has(value, PS));
    if (has(value, reservedMask(level, isLeaf, M, nxe))) return pf(PF_P | PF_RSVD);
    writable &&= has(value, RW);
    user &&= has(value, US);
    if (nxe) noExec ||= has(value, XD);
    if (isLeaf) { leaf = step; break; }
    table = value & addrMask;
  }
  if (!leaf) throw new Error('unreachable: a PTE is always a leaf');

  // Access rights (SDM 4.6, fact sheet §1.6). `userAddr` = U/S=1 at every level.
  const userAddr = user;
  let denied = false;
  if (userMode) {
    if (!userAddr) denied = true;                   // user never touches supervisor pages
    if (write && !writable) denied = true;          // CR0.WP is irrelevant for user
    if (fetch && noExec) denied = true;
  } else if (fetch) {
    if (userAddr && has(cr4, CR4_SMEP)) denied = true;
    if (noExec) denied = true;
  } else {
    // Supervisor data access. SMAP: user pages only with AC=1 on explicit accesses.
    const acExempt = has(regs.rflags, RFLAGS_AC) && !implicit;
    if (userAddr && has(cr4, CR4_SMAP) && !acExempt) denied = true;
    if (write && wp && !writable) denied = true;
  }

  // Protection keys: data accesses to user addresses, evaluated independently.
  let pkDenied = false;
  if (has(cr4, CR4_PKE) && !fetch && userAddr) {
    const key = Number((leaf.value >> 59n) & 15n);
    const pkru = BigInt(regs.pkru);
    const ad = has(pkru, bit(2 * key)), wd = has(pkru, bit(2 * key + 1));
    if (ad) pkDenied = true;
    if (write && wd && (userMode || wp)) pkDenied = true;
  }
  if (denied || pkDenied) return pf(PF_P | (pkDenied ? PF_PK : 0));

  const size = PAGE_SIZE[leaf.level as 1 | 2 | 3];
  const frame = leaf.value & bits(M - 1, Math.log2(size)); // drops PAT (bit 12) of large leaves
  let out = { pa: frame | (va & BigInt(size - 1)), pageSize: size as number };
  if (hooks) out = hooks.commit(out.pa, out.pageSize, used, leaf, write);

  // Success: set A everywhere, D on the leaf for a write (fact sheet §1.7).
  for (const s of used) {
    let v = s.value | A;
    if (s === leaf && write) v |= D;
    if (v !== s.value) (hooks ? hooks.writeEntry(s.addr, v) : mem.write64(s.addr, v));
  }
  return { ok: true, pa: out.pa, pageSize: out.pageSize as 4096 | 2097152 | 1073741824 };
}
