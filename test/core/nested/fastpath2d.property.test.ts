// The quick 2D walk (assembly/nested-quick.ts, and the nested miss loop that runs it,
// assembly/miss-nested.ts) against the careful one (nested.ts walkNested, on the general
// path): the same random batch on two identical nested-mode machines, one with
// setFastPaths(false), must give the same exits, op values, memory (guest and EPT A/D
// updates, stores), counters, walk path (guest and EPT slots) and the raw bytes of every
// TLB, PSC, nested-TLB and EPT-PSC entry — LRU stamps, leafPa and leafVal included.
//
// Cases: guest entries with random P/W/U/XD/A/D/protection keys and reserved bits, upper
// entries without A; EPT leaves (4 KiB or 2 MiB) for every page the walks touch with
// random R/W/X (violations, execute-only), W without R, bad memory types and reserved bits
// (misconfigurations), A or D clear, and upper EPT entries not present or without A;
// EPT A/D on and off, 4- and 5-level EPT, caches from none to small ones that evict, a
// guest leaf that maps a guest page table (stores change later walks), MMIO, and the
// general path's own ops (fetches, user/implicit, crossing, INVLPG, MOV CR3).

import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { assertAsyncProperty } from '../../helpers/seeds.js';
import { runStepping, batchOpArb, controlArbs, pushOps } from '../../helpers/run-batch.js';
import { Tables } from '../../helpers/tables.js';
import { Ept } from '../../helpers/ept.js';
import {
  Machine, FrameBump, CR0, CR4, EFER, PTE, EPT, PAGE_2M, eptp,
  type Cpu, type CpuOptions, type PhysicalMemory,
} from '../../../src/index.js';

const MiB = 1n << 20n;
const GB = 4n * MiB;               // gpa g is hpa GB + g (EPT-mapped gpa [0, 8 MiB)); 1 GiB EPT page: hpa g
const GUEST_BYTES = 8n * MiB;
const EPT_TABLES = 12n * MiB;      // EPT tables: hpa [12, 16 MiB)
const DATA = 4n * MiB;             // guest data frames (gpa)
const BIG_GPA = 6n * MiB;          // the guest's 2 MiB page (gpa)
const MMIO_GPA = 0x3f_f000n;       // EPT-mapped to an hpa outside memory
const NO_EPT_GPA = 9n * MiB;       // outside the EPT-mapped range
const VA = [0x7f00_0000_0000n, 0x7f00_4000_0000n, 0x0000_0040_0000n];
const BIG = 0x7f00_0060_0000n;
const PAGES = 24;

const EPT_KINDS = ['rwx', 'r', 'rx', 'rw', 'x', 'none', 'w', 'wx', 'mt2', 'mt7', 'rsvd', 'noA', 'noD'] as const;
type EptKind = typeof EPT_KINDS[number];
// An edit of the EPT leaf that maps a page, and of the entry above it; `odds` in 100 that
// it is not the plain one (every table page is on every walk: those are edited rarely).
const eptEditArb = (leafOdds: number, upperOdds: number) => fc.record({
  leaf: fc.oneof({ weight: 100 - leafOdds, arbitrary: fc.constant<EptKind>('rwx') }, { weight: leafOdds, arbitrary: fc.constantFrom(...EPT_KINDS) }),
  upper: fc.oneof({ weight: 100 - upperOdds, arbitrary: fc.constant('ok' as const) },
    { weight: upperOdds, arbitrary: fc.constantFrom('noA' as const, 'none' as const, 'rsvd' as const, 'r' as const) }),
});

const leafArb = fc.record({
  p: fc.integer({ min: 0, max: 15 }).map((x) => x !== 0), w: fc.integer({ min: 0, max: 3 }).map((x) => x !== 0),
  u: fc.boolean(), xd: fc.integer({ min: 0, max: 7 }).map((x) => x === 0),
  a: fc.integer({ min: 0, max: 3 }).map((x) => x !== 0), d: fc.boolean(), pkey: fc.integer({ min: 0, max: 3 }),
  g: fc.integer({ min: 0, max: 3 }).map((x) => x === 0), // global (with CR4.PGE)
  rsvd: fc.integer({ min: 0, max: 23 }).map((x) => x === 0),
  // where the leaf points: its own data page mostly; a guest table, MMIO, no EPT mapping
  target: fc.oneof({ weight: 20, arbitrary: fc.constant('data' as const) },
    { weight: 1, arbitrary: fc.constantFrom('table' as const, 'mmio' as const, 'noEpt' as const) }),
});

// pages: PAGES is the 2 MiB page; above: unmapped
const opArb = batchOpArb(['load', 'load', 'load', 'store', 'store', 'translate', 'translate', 'fetch', 'invlpg', 'movCr3'] as const, PAGES + 2);

const caseArb = fc.record({
  levels: fc.constantFrom(4, 5) as fc.Arbitrary<4 | 5>,
  eptLevels: fc.constantFrom(4, 5) as fc.Arbitrary<4 | 5>,
  eptPage: fc.constantFrom(0x1000n, 0x1000n, 0x1000n, 0x20_0000n, 0x20_0000n, 0x4000_0000n), // EPT leaf size
  eptAD: fc.integer({ min: 0, max: 3 }).map((x) => x !== 0),
  caches: fc.constantFrom('default', 'small', 'noL1', 'tiny4', 'bench', 'noTlb', 'none', 'ntlbOnly', 'tlbNoPsc'),
  M: fc.constantFrom(40, 52),
  leaves: fc.array(leafArb, { minLength: PAGES + 1, maxLength: PAGES + 1 }),
  upperNoA: fc.integer({ min: 0, max: 5 }), // 0..2: clear A in that region's PDE
  tableEdits: fc.array(eptEditArb(4, 1), { minLength: 24, maxLength: 24 }), // the guest table pages
  dataEdits: fc.array(eptEditArb(20, 4), { minLength: 26, maxLength: 26 }),  // data, 2 MiB and MMIO pages
  ...controlArbs,
  ops: fc.array(opArb, { minLength: 40, maxLength: 160 }),
  repeat: fc.integer({ min: 1, max: 3 }), // runs of the batch: later runs meet filled caches
});
type Case = typeof caseArb extends fc.Arbitrary<infer T> ? T : never;

const vaOfPage = (k: number): bigint =>
  k < PAGES ? VA[k % 3] + BigInt(Math.floor(k / 3)) * 0x1000n : k === PAGES ? BIG + 0x5000n : VA[k % 3] + 0x30_0000n;

function cpuOptions(c: Case): CpuOptions {
  const M = c.M;
  const off = { l1i4k: false, l1i2m: false, l1d4k: false, l1d2m: false, l1d1g: false, l2: false } as const;
  switch (c.caches) {
    case 'default': return { maxPhysAddr: M };
    case 'bench': return { maxPhysAddr: M, tlb: off };                       // bench/virt.ts "Cached"
    case 'noTlb': return { maxPhysAddr: M, tlb: false };                     // guest and EPT PSCs only
    case 'none': return { maxPhysAddr: M, tlb: false, psc: false };          // bench/virt.ts "Uncached"
    case 'ntlbOnly': return { maxPhysAddr: M, tlb: off, psc: false };
    case 'tlbNoPsc': return { maxPhysAddr: M, psc: false };                   // TLBs and the nested TLB, no PSC
    case 'noL1': return { maxPhysAddr: M, tlb: { l1d4k: false, l1d2m: false, l1d1g: false } }; // data accesses meet the L2
    case 'tiny4': { // four ways in one set: every fill evicts, several per op (equal LRU stamps)
      const g = { entries: 4, ways: 4 };
      return { maxPhysAddr: M, tlb: { ...off, ntlb: g, pde: g, pdpte: g, epde: g, epdpte: g } };
    }
    case 'small': return {
      maxPhysAddr: M,
      tlb: { l1d4k: { entries: 8, ways: 2 }, l2: { entries: 16, ways: 4 }, l1d2m: { entries: 2, ways: 2 }, ntlb: { entries: 4, ways: 2 },
        pde: { entries: 2, ways: 2 }, epde: { entries: 2, ways: 2 }, epdpte: { entries: 2, ways: 1 } },
    };
  }
}

/** The guest-physical view of host memory the guest's table builder writes through. */
function guestView(m: Machine, base: bigint): PhysicalMemory {
  return {
    read64: (a: bigint) => m.memory.read64(base + a),
    write64: (a: bigint, v: bigint) => m.memory.write64(base + a, v),
    fill: (a: bigint, b: number, n: number) => m.memory.fill(base + a, b, n),
  } as unknown as PhysicalMemory;
}

function editEpt(v: bigint, kind: EptKind, M: number): bigint {
  const base = v & ~7n;
  switch (kind) {
    case 'rwx': return v;
    case 'r': return base | 1n;
    case 'rx': return base | 5n;
    case 'rw': return base | 3n;
    case 'x': return base | 4n;
    case 'none': return base;
    case 'w': return base | 2n;
    case 'wx': return base | 6n;
    case 'mt2': return (v & ~(7n << 3n)) | (2n << 3n);
    case 'mt7': return v | (7n << 3n);
    case 'rsvd': return M < 52 ? v | (1n << 45n) : (v & ~(7n << 3n)) | (3n << 3n);
    case 'noA': return v & ~(EPT.A | EPT.D);
    case 'noD': return v & ~EPT.D;
  }
}

async function machine(c: Case, fast: boolean) {
  const m = await Machine.create({ memoryBytes: 16 * 2 ** 20 });
  const cpu = m.createCpu(cpuOptions(c));
  cpu.setFastPaths(fast);
  const base = c.eptPage === 0x4000_0000n ? 0n : GB; // a 1 GiB page maps hpa 0 (its alignment)
  const g = guestView(m, base);
  const t = new Tables(g, c.levels, 0x10_0000n, true);
  for (let k = 0; k <= PAGES; k++) {
    const l = c.leaves[k];
    const flags = (l.p ? PTE.P : 0n) | (l.w ? PTE.W : 0n) | (l.u ? PTE.U : 0n) | (l.xd ? PTE.XD : 0n) | (l.g ? PTE.G : 0n);
    const size = k === PAGES ? PAGE_2M : undefined;
    const va = k === PAGES ? BIG : vaOfPage(k);
    const gpa = k === PAGES ? BIG_GPA : l.target === 'table' ? t.root : l.target === 'mmio' ? MMIO_GPA
      : l.target === 'noEpt' ? NO_EPT_GPA : DATA + BigInt(k) * 0x1000n;
    t.map(va, gpa, { flags: flags | PTE.P, size, pkey: l.pkey });
    const clear = (l.p ? 0n : PTE.P) | (l.a ? 0n : PTE.A) | (l.d ? 0n : PTE.D);
    t.modify(va, size ? 2 : 1, l.rsvd ? 1n << 45n : 0n, clear); // bit 45: reserved with M = 40
  }
  if (c.upperNoA < 3) t.modify(VA[c.upperNoA], 2, 0n, PTE.A);
  for (let k = 0n; k < BigInt(PAGES); k++) g.write64(DATA + k * 0x1000n + 0x88n, k * 0x1_0001n);

  // The EPT: gpa [0, 8 MiB) → hpa [4, 12 MiB), A/D preset on the entries the walks use,
  // then each used page's leaf and the entry above it edited as the case says.
  const fb = new FrameBump(m.memory, EPT_TABLES, EPT_TABLES + 4n * MiB);
  const ept = new Ept(m.memory, fb, c.eptLevels);
  ept.map(0n, base, c.eptPage === 0x4000_0000n ? c.eptPage : GUEST_BYTES, c.eptPage);
  if (base !== 0n) ept.map(MMIO_GPA, 0x4000_0000n, 0x1000n); // (inside the 1 GiB page otherwise)
  const leafLevel = c.eptPage === 0x1000n ? 1 : c.eptPage === 0x20_0000n ? 2 : 3;
  const used: bigint[] = [];
  for (let p = 0x10_0000n; p < 0x11_8000n; p += 0x1000n) used.push(p); // guest tables
  for (let k = 0n; k < BigInt(PAGES); k++) used.push(DATA + k * 0x1000n);
  used.push(BIG_GPA + 0x5000n, MMIO_GPA);
  const seen = new Set<bigint>();
  for (const gpa of used) {
    for (let l: number = c.eptLevels; l >= leafLevel; l--) {
      const at = ept.entryAddr(gpa, l);
      if (seen.has(at)) continue;
      seen.add(at);
      m.memory.write64(at, m.memory.read64(at) | EPT.A | (l === leafLevel ? EPT.D : 0n));
    }
  }
  // Every entry address first: an edit may break the path to the next one.
  const edits = [...c.tableEdits, ...c.dataEdits];
  const plan = used.map((gpa, i) => ({ e: edits[i], leafAt: ept.entryAddr(gpa, leafLevel), upAt: ept.entryAddr(gpa, leafLevel + 1) }));
  const edited = new Set<bigint>();
  for (const { e, leafAt, upAt } of plan) {
    if (!edited.has(leafAt)) { edited.add(leafAt); m.memory.write64(leafAt, editEpt(m.memory.read64(leafAt), e.leaf, c.M)); }
    if (e.upper !== 'ok' && !edited.has(upAt)) {
      edited.add(upAt);
      const v = m.memory.read64(upAt);
      m.memory.write64(upAt, e.upper === 'noA' ? v & ~EPT.A : e.upper === 'none' ? v & ~7n : e.upper === 'r' ? (v & ~7n) | 1n
        : c.M < 52 ? v | (1n << 46n) : v | (1n << 4n));
    }
  }

  cpu.setRegisters({
    cr0: CR0.PE | CR0.PG | (c.wp ? CR0.WP : 0n), cr3: t.root,
    cr4: CR4.PAE | (c.levels === 5 ? CR4.LA57 : 0n) | (c.smap ? CR4.SMAP : 0n) | (c.smep ? CR4.SMEP : 0n) |
      (c.pke ? CR4.PKE : 0n) | (c.pcide ? CR4.PCIDE : 0n) | (c.pge ? CR4.PGE : 0n),
    efer: EFER.LME | EFER.NXE, rflags: c.ac ? 1n << 18n : 0n, pkru: c.pkru, cpl: c.cpl,
  });
  cpu.setVmcs({ mode: 'nested', eptp: eptp(ept.root, c.eptLevels, c.eptAD), vpid: 1 });
  const b = m.createBatch(c.ops.length);
  pushOps(b, c.ops, vaOfPage, t.root);
  return { m, cpu, b };
}

interface CoreView {
  memory: WebAssembly.Memory;
  cpuPath(p: number): number;
  cpuTlbDesc(p: number, i: number): number;
  numTlbs(): number;
}

/** Counters, the whole walk path (guest and EPT slots) and every cache's raw entry bytes. */
function state(cpu: Cpu): unknown {
  const core = (cpu as unknown as { core: CoreView }).core, ptr = (cpu as unknown as { ptr: number }).ptr;
  const buf = core.memory.buffer, dv = new DataView(buf);
  const hex = (at: number, n: number) => Buffer.from(buf, at, n).toString('hex');
  const caches: string[] = [];
  for (let i = 0; i < core.numTlbs(); i++) {
    const d = core.cpuTlbDesc(ptr, i);
    const base = dv.getUint32(d, true), sets = dv.getUint32(d + 4, true), ways = dv.getUint32(d + 8, true);
    caches.push(sets * ways ? hex(base, sets * ways * 48) : '');
  }
  return { counters: cpu.counters(), path: hex(core.cpuPath(ptr), 140), caches };
}

/** The first address where the two machines' memories differ, or -1. */
function firstDifference(a: Machine, b: Machine): number {
  const x = a.memory.read(0n, 16 * 2 ** 20), y = b.memory.read(0n, 16 * 2 ** 20);
  if (Buffer.from(x.buffer, x.byteOffset, x.length).equals(Buffer.from(y.buffer, y.byteOffset, y.length))) return -1;
  return x.findIndex((v, i) => v !== y[i]);
}

/** What the runs exercised, summed over all cases: exits by reason and walk counters. */
class Tally {
  exits: Record<string, number> = {};
  counts = { walks: 0, eptWalks: 0, ntlbHits: 0, eptPscHits: 0, pscHit: 0, adWrites: 0, eptViolations: 0, eptMisconfigs: 0, l2Hit4k: 0 };
  add(seen: unknown[], cpu: Cpu): void {
    for (const x of seen) if (!Array.isArray(x)) { const r = (x as { reason: string }).reason; this.exits[r] = (this.exits[r] ?? 0) + 1; }
    const k = cpu.counters();
    this.counts.walks += k.walks; this.counts.eptWalks += k.eptWalks; this.counts.ntlbHits += k.ntlbHits;
    this.counts.eptPscHits += k.eptPscHits; this.counts.pscHit += k.pscHitPde + k.pscHitPdpte + k.pscHitPml4e;
    this.counts.adWrites += k.adWrites; this.counts.eptViolations += k.eptViolations; this.counts.eptMisconfigs += k.eptMisconfigs;
    this.counts.l2Hit4k += k.l2Hit4k;
  }
}

/** Runs the fast paths and the careful path on the cases of arb; returns what they saw. */
async function sameAsCareful(arb: fc.Arbitrary<Case>, seed: number, numRuns: number): Promise<Tally> {
  const tally = new Tally();
  await assertAsyncProperty(fc.asyncProperty(arb, async (c) => {
    const fast = await machine(c, true), slow = await machine(c, false);
    const a = runStepping(fast.cpu, fast.b, c.repeat), b = runStepping(slow.cpu, slow.b, c.repeat);
    expect(a).toEqual(b);
    expect(firstDifference(fast.m, slow.m)).toBe(-1);
    expect(state(fast.cpu)).toEqual(state(slow.cpu));
    tally.add(a, fast.cpu);
  }), { seed, numRuns });
  if (process.env.NESTED_VERBOSE) console.log(JSON.stringify(tally));
  return tally;
}

describe('nested-mode fast paths (quick 2D walk, nested miss loop)', () => {
  it('give exactly what the careful 2D walk on the general path gives', async () => {
    const tally = await sameAsCareful(caseArb, 0x2d_fa57, 150);
    // The cases reached every kind of outcome (a property that only ever saw, say, guest
    // faults before any walk completed would prove little).
    for (const r of ['end', 'PF', 'EPT_VIOLATION', 'EPT_MISCONFIG', 'MMIO']) expect(tally.exits[r], `exits ${r}`).toBeGreaterThan(10);
    for (const [k, n] of Object.entries(tally.counts)) expect(n, k).toBeGreaterThan(100);
  }, 300_000);

  // miss-nested.ts has copies of its loop with the configuration as constants: 4-level
  // guest and EPT tables, EPT A/D on, no protection keys, and every cache on ('default',
  // 'noL1', 'small': the caches a config does not list keep their default sizes), every cache but the
  // TLBs on ('bench', 'tiny4') or every cache off ('none'); 'tlbNoPsc' takes the general
  // copy with TLBs. The cases above reach them rarely.
  it('give the same in the configurations with a loop of their own', async () => {
    const pinned = caseArb.chain((c) => fc.constantFrom('default', 'small', 'noL1', 'bench', 'tiny4', 'none', 'tlbNoPsc').map((caches) =>
      ({ ...c, levels: 4 as const, eptLevels: 4 as const, eptAD: true, pke: false, caches })));
    const tally = await sameAsCareful(pinned, 0x2d_c0de, 80);
    for (const r of ['end', 'PF', 'EPT_VIOLATION']) expect(tally.exits[r], `exits ${r}`).toBeGreaterThan(5);
    for (const k of ['walks', 'eptWalks', 'ntlbHits', 'eptPscHits', 'pscHit'] as const) expect(tally.counts[k], k).toBeGreaterThan(100);
    expect(tally.counts.l2Hit4k, 'L2 hits (the loop takes those of 4 KiB pages)').toBeGreaterThan(30);
  }, 300_000);
});
