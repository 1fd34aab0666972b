// Property tests: the core's two-dimensional walk against the reference models
// (test/model/x86ref.ts for the guest dimension, test/model/eptref.ts for the EPT).
// Each run builds one random guest walk (entries at the random va's offsets in each
// table, random flags, reserved high bits under a random MAXPHYADDR 36..52) in
// guest-physical memory, and perturbs the EPT leaves (or the entry above) that map
// each guest table page and the data page: not present, read-only, execute-only,
// W without R, bad memory type, reserved bits. Every field of the outcome is compared
// (fault kind, gpa, qualification, error code, CR2; for batch exits also index and
// gva), and every guest and EPT entry touched (A/D). With and without the TLBs and
// paging-structure caches (combined, nested TLB, EPT PSCs).
//
// Seed: NESTED_SEED (default fixed), runs per property: NESTED_RUNS.

import { describe, it, expect, beforeAll } from 'vitest';
import fc from 'fast-check';
import { Machine, FrameBump, eptp, type Cpu, type BatchExit } from '../../../src/index.js';
import { refTranslateNested, OverlayMemory, type NestedResult, type RefEpt } from '../model/eptref.js';
import { Ept } from '../../helpers/ept.js';
import { PageTableBuilder, type PageSize } from '../../helpers/pagetable.js';
import { walkCaseArb, entryValue, vaOf, regsOf, accessOf, type WalkCase } from '../../helpers/walkgen.js';

const SEED = Number(process.env.NESTED_SEED ?? 0x2d_ef7);
const RUNS = Number(process.env.NESTED_RUNS ?? 2500);
const MiB = 1n << 20n;
const GUEST_BASE = 32n * MiB, GUEST_BYTES = 32n * MiB; // gpa [0, 32 MiB) → hpa [32, 64 MiB)
const TABLE_BASE = 0x10_0000n, TABLE_LIMIT = 0x80_0000n; // guest tables (gpa)
const EPT_TABLES = 96n * MiB;
const ADDR = ((1n << 52n) - 1n) & ~0xfffn;
const RWX = 7n, MT_WB = 6n << 3n;
const hex = (v: bigint | number): string => '0x' + v.toString(16);

// EPT perturbations: [name, how the entry's low bits / reserved bits change].
const EPT_KINDS = ['rwx', 'none', 'r', 'rx', 'rw', 'x', 'w', 'wx', 'mt2', 'mt7', 'rsvd'] as const;
type EptKind = typeof EPT_KINDS[number];
const eptEditArb = fc.record({
  kind: fc.oneof({ weight: 30, arbitrary: fc.constant<EptKind>('rwx') }, { weight: 5, arbitrary: fc.constantFrom(...EPT_KINDS) }),
  upper: fc.integer({ min: 0, max: 7 }).map((x) => x === 7), // edit the entry above the leaf instead
  pick: fc.nat(),
});
type EptEdit = typeof eptEditArb extends fc.Arbitrary<infer T> ? T : never;

const nestedArb = fc.record({
  walk: walkCaseArb({ frameBits: 24 }), // data gpas below 64 GiB (a 4-level EPT's reach is 256 TiB)
  eptLevels: fc.constantFrom(4, 5) as fc.Arbitrary<4 | 5>,
  eptLarge: fc.boolean(),              // 2 MiB EPT leaves instead of 4 KiB
  ad: fc.boolean(),
  near: fc.integer({ min: 0, max: 3 }).map((x) => x !== 0), // data gpa inside the mapped region
  edits: fc.array(eptEditArb, { minLength: 6, maxLength: 6 }), // [0..4] guest tables by level, [5] data
});
type NestedCase = typeof nestedArb extends fc.Arbitrary<infer T> ? T : never;

let machine: Machine;
const epts = new Map<string, Ept>();
const cpus = new Map<string, Cpu>();

beforeAll(async () => {
  machine = await Machine.create({ memoryBytes: 128 * 2 ** 20 });
  const fb = new FrameBump(machine.memory, EPT_TABLES, EPT_TABLES + 16n * MiB);
  for (const levels of [4, 5] as const) for (const large of [false, true]) {
    const e = new Ept(machine.memory, fb, levels);
    e.map(0n, GUEST_BASE, GUEST_BYTES, large ? 0x20_0000n : 4096n);
    epts.set(`${levels}${large}`, e);
  }
});

const cpuFor = (M: number, caches: boolean): Cpu => {
  const k = `${M}:${caches}`;
  let c = cpus.get(k);
  if (!c) cpus.set(k, (c = machine.createCpu(caches ? { maxPhysAddr: M } : { maxPhysAddr: M, tlb: false, psc: false })));
  return c;
};

/** Guest-physical view of the guest region (for the guest table builder). */
const guestView = {
  read64: (a: bigint) => machine.memory.read64(GUEST_BASE + a),
  write64: (a: bigint, v: bigint) => machine.memory.write64(GUEST_BASE + a, v),
};

function editValue(v: bigint, kind: EptKind, leaf: boolean, M: number, pick: number): bigint {
  const base = v & ~RWX;
  switch (kind) {
    case 'rwx': return v;
    case 'none': return 0n;
    case 'r': return base | 1n;
    case 'rx': return base | 5n;
    case 'rw': return base | 3n;
    case 'x': return base | 4n;
    case 'w': return base | 2n;
    case 'wx': return base | 6n;
    case 'mt2': return leaf ? (v & ~(7n << 3n)) | (2n << 3n) : v | (1n << 3n); // non-leaf: bit 3 reserved
    case 'mt7': return leaf ? v | (7n << 3n) : v | (1n << 6n);
    case 'rsvd': return M < 52 ? v | (1n << BigInt(M + (pick % (52 - M)))) : (leaf ? (v & ~(7n << 3n)) | (3n << 3n) : v | (1n << 4n));
  }
}

/** Applies the case's EPT edits; returns an undo list. */
function editEpt(c: NestedCase, ept: Ept, gpas: bigint[]): [bigint, bigint][] {
  const leafLevel = c.eptLarge ? 2 : 1;
  // Every entry address first: an edit may break the path to the next one.
  const plan = gpas.map((gpa, i) => {
    const e = c.edits[i]!;
    if (e.kind === 'rwx' || gpa >= GUEST_BYTES) return null;
    return { e, at: ept.entryAddr(gpa, e.upper ? leafLevel + 1 : leafLevel) };
  });
  const undo: [bigint, bigint][] = [];
  for (const p of plan) {
    if (!p) continue;
    const v = machine.memory.read64(p.at);
    undo.push([p.at, v]);
    machine.memory.write64(p.at, editValue(v, p.e.kind, !p.e.upper, c.walk.maxPhysAddr, p.e.pick));
  }
  return undo;
}

function build(c: NestedCase) {
  const w = c.walk;
  const va = vaOf(w);
  const pt = new PageTableBuilder(guestView, { levels: w.levels, tableBase: TABLE_BASE, tableLimit: TABLE_LIMIT });
  const size = (w.leafLevel === 1 ? 4096 : w.leafLevel === 2 ? 2097152 : 1073741824) as PageSize;
  const path = pt.map(va, 0n, { size });
  path.forEach((gpa, i) => {
    const level = w.levels - i;
    const isLeaf = i === path.length - 1;
    let v = entryValue(w.entries[level - 1]!, level, isLeaf, w.maxPhysAddr, guestView.read64(gpa) & ADDR);
    if (isLeaf && c.near) { // keep the data gpa in the mapped region (offset bits stay random)
      const span = BigInt(size);
      const frameBits = ((1n << BigInt(w.maxPhysAddr)) - 1n) & ~(span - 1n);
      v = (v & ~frameBits) | ((w.entries[0]!.frame << 12n) % GUEST_BYTES & frameBits);
    }
    guestView.write64(gpa, v);
  });
  const ept = epts.get(`${c.eptLevels}${c.eptLarge}`)!;
  const leafVal = guestView.read64(path[path.length - 1]!);
  const dataGpa = leafVal & ((1n << BigInt(w.maxPhysAddr)) - 1n) & ~(BigInt(size) - 1n);
  // Table pages by level (levels..1) then the data page; entries 0..4 of c.edits.
  const gpas = path.map((a) => a & ~0xfffn);
  while (gpas.length < 5) gpas.push(GUEST_BYTES); // unused slots: no edit
  gpas.length = 5;
  gpas.push(dataGpa);
  const undo = editEpt(c, ept, gpas);
  const regs = regsOf(w, pt.cr3, { pcide: false });
  const refEpt: RefEpt = { root: ept.root, levels: c.eptLevels, ad: c.ad };
  return { va, path, regs, ept, refEpt, undo };
}

const show = (r: unknown): string => JSON.stringify(r, (_, v) => (typeof v === 'bigint' ? hex(v) : v));

/** The batch exit the core should give for one op whose translation gave `r`. */
function exitOf(r: NestedResult, va: bigint): BatchExit {
  if (r.ok) return r.pa >= BigInt(machine.memory.size) ? { reason: 'MMIO', index: 0, pa: r.pa } : { reason: 'end' };
  if (r.fault === 'PF') return { reason: 'PF', index: 0, errorCode: r.errorCode, cr2: r.cr2 };
  if (r.fault === 'GP') return { reason: 'GP', index: 0, va };
  if (r.fault === 'EPT_VIOLATION') return { reason: 'EPT_VIOLATION', index: 0, gpa: r.gpa, gva: va, qualification: r.qualification };
  return { reason: 'EPT_MISCONFIG', index: 0, gpa: r.gpa, gva: va };
}

type Step = { cpl: number; access: ReturnType<typeof accessOf>; batch?: boolean };

class Tally {
  counts: Record<string, number> = { ok: 0, PF: 0, GP: 0, EPT_VIOLATION: 0, EPT_MISCONFIG: 0, pagingStructure: 0, nonZeroOffset: 0 };
  add(r: NestedResult, va: bigint, tableGpas: bigint[]): void {
    this.counts[r.ok ? 'ok' : r.fault]!++;
    if (!r.ok && r.fault === 'EPT_VIOLATION' && (r.qualification & 0x100) === 0) this.counts.pagingStructure!++;
    if (!r.ok && (r.fault === 'EPT_VIOLATION' || r.fault === 'EPT_MISCONFIG') && tableGpas.some((g) => r.gpa > g && r.gpa < g + 4096n)) {
      this.counts.nonZeroOffset!++;
    }
    void va;
  }
  expectCoverage(runs: number): void {
    for (const [k, n] of Object.entries(this.counts)) expect(n, `outcome ${k} seen ${n} times`).toBeGreaterThan(runs / 100);
  }
}

function check(c: NestedCase, caches: boolean, steps: Step[], tally: Tally): void {
  const b = build(c);
  const cpu = cpuFor(c.walk.maxPhysAddr, caches);
  try {
    cpu.flushTlb();
    cpu.setRegisters(b.regs);
    cpu.setVmcs({ mode: 'nested', eptp: eptp(b.ept.root, c.eptLevels, c.ad), vpid: 1 });
    const model = new OverlayMemory(machine.memory);
    steps.forEach((s, i) => {
      cpu.setRegisters({ cpl: s.cpl });
      const regs = { ...b.regs, cpl: s.cpl };
      const ref = refTranslateNested(model, regs, b.refEpt, b.va, s.access);
      const ctx = () => [`step ${i}${s.batch ? ' (batch)' : ''}: model ${show(ref)}`, `va=${hex(b.va)} M=${c.walk.maxPhysAddr} ` +
        `levels=${c.walk.levels} ept=${c.eptLevels}${c.eptLarge ? '/2M' : '/4K'} ad=${c.ad} caches=${caches} ` +
        `access=${show(s.access)} regs=${show(regs)}`, ...b.path.map((a) => `guest entry gpa ${hex(a)}`),
        `edits ${show(c.edits)}`].join('\n');
      if (i === steps.length - 1) tally.add(ref, b.va, b.path.map((a) => a & ~0xfffn));
      if (s.batch) {
        const batch = machine.createBatch(1);
        const o = { user: s.access.user, implicit: s.access.implicit };
        if (s.access.write) batch.store(b.va, 0x5an, 1, o);
        else if (s.access.fetch) batch.fetch(b.va, 1, o);
        else batch.load(b.va, 1, o);
        expect(cpu.execute(batch).exit, ctx()).toEqual(exitOf(ref, b.va));
      } else {
        expect(cpu.translate(b.va, s.access), ctx()).toEqual(ref);
      }
      for (const [pa, v] of model.final()) {
        expect(hex(machine.memory.read64(pa)), `${ctx()}\nword @${hex(pa)}`).toBe(hex(v));
      }
    });
  } finally {
    for (const [at, v] of b.undo.reverse()) machine.memory.write64(at, v);
  }
}

const variants: [string, (c: WalkCase) => Step[]][] = [
  ['one access, flushed', (w) => [{ cpl: w.ctl.cpl, access: accessOf(w) }]],
  ['one access as a batch op (exit fields: reason, index, gpa, gva, qualification, error code, CR2)',
    (w) => [{ cpl: w.ctl.cpl, access: accessOf(w), batch: true }]],
  ['"twice": a supervisor read first', (w) => [{ cpl: 0, access: {} }, { cpl: w.ctl.cpl, access: accessOf(w) }]],
  ['the same access twice (the second from the caches)',
    (w) => [{ cpl: w.ctl.cpl, access: accessOf(w) }, { cpl: w.ctl.cpl, access: accessOf(w), batch: true }]],
];

describe('core 2-D walk vs reference models (fast-check)', () => {
  for (const caches of [false, true]) {
    for (const [name, steps] of variants) {
      it(`${name}; ${caches ? 'TLBs and caches on' : 'no TLBs or caches'} (${RUNS} runs)`, () => {
        const tally = new Tally();
        fc.assert(fc.property(nestedArb, (c) => check(c, caches, steps(c.walk), tally)), { numRuns: RUNS, seed: SEED });
        if (process.env.NESTED_VERBOSE) console.log(`${name} caches=${caches}`, show(tally.counts));
        tally.expectCoverage(RUNS);
      });
    }
  }
});
