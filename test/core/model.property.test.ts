// Property tests: the Wasm core against the BigInt reference model (test/core/model/x86ref.ts).
// Each run builds one random 4- or 5-level walk for one random va (random flags, ignored
// bits and occasional reserved bits at every level), random control state and a random
// access, then compares the translation result and the final value of every entry on
// the walk (A/D). Variants: fresh TLB; supervisor read first ("twice", as access.c);
// the same access repeated (the second hits the TLB).

import { describe, it, expect, beforeAll } from 'vitest';
import fc from 'fast-check';
import { entryValue, vaOf, often, rare } from '../helpers/walkgen.js';
import { assertProperty } from '../helpers/seeds.js';
import { Machine, type Cpu } from '../../src/index.js';
import {
  refTranslate, MapMemory, type RefAccess, type RefRegs, type RefResult,
  CR0_PG, CR0_WP, CR4_PAE, CR4_LA57, CR4_SMEP, CR4_SMAP, CR4_PKE, EFER_LME, EFER_NXE, RFLAGS_AC,
} from './model/x86ref.js';
import { PageTableBuilder, type PageSize } from '../helpers/pagetable.js';

const RUNS = 3000;
const U64 = (1n << 64n) - 1n;
const CR0_PE = 1n, CR4_PGE = 1n << 7n, CR4_PCIDE = 1n << 17n;
const TABLE_BASE = 0x10_0000n, TABLE_LIMIT = 0x80_0000n;
const ADDR = ((1n << 52n) - 1n) & ~0xfffn;

const bit = (n: number): bigint => 1n << BigInt(n);
const hex = (v: bigint | number): string => '0x' + v.toString(16);


const entryArb = fc.record({
  p: often(24), w: often(3), u: often(5), xd: rare(12), a: fc.boolean(), d: fc.boolean(),
  noise: fc.bigInt(0n, U64),
  rsvdHigh: rare(40), rsvdShape: rare(40), pick: fc.nat(),  // reserved-bit noise
  frame: fc.bigInt(0n, bit(40) - 1n),                       // leaf frame number
});

const caseArb = fc.record({
  levels: fc.constantFrom(4, 5) as fc.Arbitrary<4 | 5>,
  leafLevel: fc.constantFrom(1, 2, 3),
  maxPhysAddr: fc.integer({ min: 36, max: 52 }),
  vaRaw: fc.bigInt(0n, U64),
  canonical: often(12),
  entries: fc.array(entryArb, { minLength: 5, maxLength: 5 }), // entries[level - 1]
  ctl: fc.record({
    wp: fc.boolean(), smep: fc.boolean(), smap: fc.boolean(), pke: fc.boolean(), pge: fc.boolean(),
    pcide: fc.boolean(), nxe: fc.boolean(), ac: fc.boolean(), cpl: fc.constantFrom(0, 3),
    pkru: fc.integer({ min: 0, max: 0xffff_ffff }), cr3Low: fc.integer({ min: 0, max: 0xfff }),
  }),
  access: fc.record({
    kind: fc.constantFrom('read', 'write', 'fetch'),
    // Not `false`: the brief says user mode = CPL 3 or `user`, but the core lets
    // `user: false` make a CPL-3 access supervisor (README: "user defaults to CPL = 3").
    user: fc.constantFrom(undefined, true),
    implicit: rare(5),
  }),
});
type Case = typeof caseArb extends fc.Arbitrary<infer T> ? T : never;

function regsOf(c: Case, cr3: bigint): RefRegs {
  const k = c.ctl;
  return {
    cr0: CR0_PE | CR0_PG | (k.wp ? CR0_WP : 0n),
    cr3: cr3 | BigInt(k.cr3Low),
    cr4: CR4_PAE | (c.levels === 5 ? CR4_LA57 : 0n) | (k.smep ? CR4_SMEP : 0n) | (k.smap ? CR4_SMAP : 0n) |
      (k.pke ? CR4_PKE : 0n) | (k.pge ? CR4_PGE : 0n) | (k.pcide ? CR4_PCIDE : 0n),
    efer: EFER_LME | (k.nxe ? EFER_NXE : 0n),
    rflags: 2n | (k.ac ? RFLAGS_AC : 0n),
    pkru: k.pkru, cpl: k.cpl, maxPhysAddr: c.maxPhysAddr,
  };
}

const accessOf = (c: Case): RefAccess => {
  const a: RefAccess = {};
  if (c.access.kind === 'write') a.write = true;
  if (c.access.kind === 'fetch') a.fetch = true;
  if (c.access.user !== undefined) a.user = c.access.user;
  if (c.access.implicit) a.implicit = true;
  return a;
};

let machine: Machine;
const cpus = new Map<number, Cpu>();
const cpuFor = (M: number): Cpu => {
  let cpu = cpus.get(M);
  if (!cpu) cpus.set(M, (cpu = machine.createCpu({ maxPhysAddr: M })));
  return cpu;
};

beforeAll(async () => { machine = await Machine.create({ memoryBytes: 16 * 2 ** 20 }); });

/** Writes the case's walk into the machine and into a fresh model memory. */
function build(c: Case) {
  const va = vaOf(c);
  const mem = machine.memory;
  const pt = new PageTableBuilder(mem, { levels: c.levels, tableBase: TABLE_BASE, tableLimit: TABLE_LIMIT });
  const size = (c.leafLevel === 1 ? 4096 : c.leafLevel === 2 ? 2097152 : 1073741824) as PageSize;
  const path = pt.map(va, 0n, { size });
  const model = new MapMemory();
  path.forEach((addr, i) => {
    const level = c.levels - i;
    const isLeaf = i === path.length - 1;
    const v = entryValue(c.entries[level - 1]!, level, isLeaf, c.maxPhysAddr, mem.read64(addr) & ADDR);
    mem.write64(addr, v);
    model.write64(addr, v);
  });
  const regs = regsOf(c, pt.cr3);
  const cpu = cpuFor(c.maxPhysAddr);
  cpu.flushTlb();
  cpu.setRegisters(regs);
  return { va, path, model, regs, cpu };
}

const show = (r: unknown): string =>
  JSON.stringify(r, (_, v) => (typeof v === 'bigint' ? hex(v) : v));

function describeCase(c: Case, b: ReturnType<typeof build>, what: string, core: unknown, ref: unknown): string {
  const r = b.regs;
  return [
    `${what}: core ${show(core)} vs model ${show(ref)}`,
    `va=${hex(b.va)} levels=${c.levels} M=${c.maxPhysAddr} access=${show(accessOf(c))}`,
    `cr0=${hex(r.cr0)} cr3=${hex(r.cr3)} cr4=${hex(r.cr4)} efer=${hex(r.efer)} rflags=${hex(r.rflags)} ` +
      `pkru=${hex(r.pkru)} cpl=${r.cpl}`,
    ...b.path.map((a, i) => `L${c.levels - i} @${hex(a)} = ${hex(b.model.words.get(a) ?? 0n)} (initial)`),
  ].join('\n');
}

/** Runs the access sequence on both sides and compares results and final entries. */
function check(c: Case, steps: { access: RefAccess; cpl: number }[], tally: Tally): void {
  const b = build(c);
  const initial = new Map(b.model.words);
  const snapshot = { ...b, model: { words: initial } as MapMemory };
  steps.forEach(({ access, cpl }, i) => {
    b.cpu.setRegisters({ cpl });
    const regs = { ...b.regs, cpl };
    const core = b.cpu.translate(b.va, access);
    const ref = refTranslate(b.model, regs, b.va, access);
    if (i === steps.length - 1) tally.add(ref);
    expect(core, describeCase(c, snapshot, `step ${i} result`, core, ref)).toEqual(ref);
  });
  for (const a of b.path) {
    const core = machine.memory.read64(a), ref = b.model.read64(a);
    expect(core, describeCase(c, snapshot, `entry @${hex(a)}`, hex(core), hex(ref))).toBe(ref);
  }
}

/** Counts outcome classes so a degenerate generator cannot pass silently. */
class Tally {
  counts: Record<string, number> = { ok: 0, GP: 0, notPresent: 0, rsvd: 0, pk: 0, rights: 0 };
  add(r: RefResult): void {
    if (r.ok) this.counts.ok!++;
    else if (r.fault === 'GP') this.counts.GP!++;
    else if ((r.errorCode & 1) === 0) this.counts.notPresent!++;
    else if (r.errorCode & 8) this.counts.rsvd!++;
    else if (r.errorCode & 32) this.counts.pk!++;
    else this.counts.rights!++;
  }
  expectCoverage(): void {
    for (const [k, n] of Object.entries(this.counts)) expect(n, `outcome ${k} seen ${n} times`).toBeGreaterThan(RUNS / 100);
  }
}

describe('core vs reference model (fast-check)', () => {
  it(`one access on a flushed TLB (${RUNS} runs)`, () => {
    const tally = new Tally();
    assertProperty(fc.property(caseArb, (c) => {
      check(c, [{ access: accessOf(c), cpl: c.ctl.cpl }], tally);
    }), { numRuns: RUNS, seed: 0x30de_1001 });
    tally.expectCoverage();
  });

  it(`"twice": a supervisor read first, then the access, no flush (${RUNS} runs)`, () => {
    const tally = new Tally();
    assertProperty(fc.property(caseArb, (c) => {
      check(c, [{ access: {}, cpl: 0 }, { access: accessOf(c), cpl: c.ctl.cpl }], tally);
    }), { numRuns: RUNS, seed: 0x30de_1002 });
    tally.expectCoverage();
  });

  it(`the same access twice, the second from the TLB (${RUNS} runs)`, () => {
    const tally = new Tally();
    assertProperty(fc.property(caseArb, (c) => {
      const step = { access: accessOf(c), cpl: c.ctl.cpl };
      check(c, [step, step], tally);
    }), { numRuns: RUNS, seed: 0x30de_1003 });
    tally.expectCoverage();
  });
});
