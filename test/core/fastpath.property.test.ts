// The batch engine's fast paths (the TLB-hit streak in assembly/access.ts, the miss loop
// in assembly/miss.ts) against its general path, which is their reference model: the same
// random batch on two identical machines, one with setFastPaths(false), must give the
// same exits, op values, memory (guest A/D updates), counters, walk path and cache
// entries — every set and way of every TLB and PSC, LRU stamps included.
//
// Cases mix what the fast paths must hand back to the general path: faults, A/D to set,
// read-only, user and global pages, protection keys, PCIDs, 2 MiB pages, crossing and
// odd-size accesses, user/implicit ops, fetches, INVLPG, MOV CR3 (with and without the
// no-flush bit), small caches that evict, and pages that map a live page table (stores
// there leave stale TLB entries behind).

import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { assertAsyncProperty } from '../helpers/seeds.js';
import { runStepping, batchOpArb, controlArbs, pushOps } from '../helpers/run-batch.js';
import { env, type Env } from '../helpers/tables.js';
import { CR4, PTE, PAGE_2M, PAGE_1G, type AccessBatch, type CpuOptions } from '../../src/index.js';
import { readCaches } from '../../src/core/tlb-view.js';

const VA = [0x7f00_0000_0000n, 0x7f00_4000_0000n, 0x0000_0040_0000n]; // three PDPT/PD neighbourhoods
const BIG = 0x7f00_0060_0000n; // a 2 MiB page
const HUGE = 0x7f40_0000_0000n; // a 1 GiB page (frame 0: its first 8 MiB are memory)
const PAGES = 24;
const DATA = 0x40_0000n;       // data frames from 4 MiB (tables below, from 1 MiB)

const leafArb = fc.record({
  p: fc.integer({ min: 0, max: 15 }).map((x) => x !== 0), w: fc.integer({ min: 0, max: 3 }).map((x) => x !== 0),
  u: fc.boolean(), g: fc.boolean(), xd: fc.integer({ min: 0, max: 7 }).map((x) => x === 0),
  a: fc.integer({ min: 0, max: 3 }).map((x) => x !== 0), d: fc.boolean(), pkey: fc.integer({ min: 0, max: 3 }),
  // rarely, a 4 KiB page onto the page table of the first neighbourhood's leaves: stores
  // there rewrite live entries (stale TLB entries, global bits set without INVLPG, garbage)
  table: fc.integer({ min: 0, max: 23 }).map((x) => x === 0),
});

// pages: PAGES is the 2 MiB page, PAGES + 1 the 1 GiB page; above: unmapped
const opArb = batchOpArb(['load', 'load', 'load', 'store', 'store', 'translate', 'fetch', 'invlpg', 'movCr3'] as const, PAGES + 3);

const caseArb = fc.record({
  levels: fc.constantFrom(4, 5) as fc.Arbitrary<4 | 5>,
  caches: fc.constantFrom('default', 'small', 'noTlb', 'noPsc', 'none'),
  leaves: fc.array(leafArb, { minLength: PAGES + 2, maxLength: PAGES + 2 }),
  upperNoA: fc.integer({ min: 0, max: 5 }), // 0..2: clear A in that region's PDE
  ...controlArbs,
  ops: fc.array(opArb, { minLength: 40, maxLength: 160 }),
  repeat: fc.integer({ min: 1, max: 3 }), // runs of the batch: later runs hit the TLBs
});
type Case = typeof caseArb extends fc.Arbitrary<infer T> ? T : never;

const vaOfPage = (k: number): bigint =>
  k < PAGES ? VA[k % 3] + BigInt(Math.floor(k / 3)) * 0x1000n : k === PAGES ? BIG + 0x5000n
    : k === PAGES + 1 ? HUGE + DATA + 0x3000n : VA[k % 3] + 0x30_0000n;

function cpuOptions(c: Case): CpuOptions {
  if (c.caches === 'noTlb') return { tlb: false };
  if (c.caches === 'noPsc') return { psc: false };
  if (c.caches === 'none') return { tlb: false, psc: false };
  if (c.caches === 'small') {
    return { tlb: { l1d4k: { entries: 8, ways: 2 }, l2: { entries: 16, ways: 4 }, l1d2m: { entries: 2, ways: 2 } } };
  }
  return {};
}

async function machine(c: Case, fast: boolean): Promise<Env & { b: AccessBatch }> {
  const e = await env({
    memoryBytes: 8 * 2 ** 20, levels: c.levels, cpu: cpuOptions(c), cpl: c.cpl, noWp: !c.wp, rflags: c.ac ? 1n << 18n : 0n, pkru: c.pkru,
    cr4: (c.smap ? CR4.SMAP : 0n) | (c.smep ? CR4.SMEP : 0n) | (c.pke ? CR4.PKE : 0n) | (c.pge ? CR4.PGE : 0n) |
      (c.pcide ? CR4.PCIDE : 0n), presetAD: true,
  });
  e.cpu.setFastPaths(fast);
  for (let k = 0; k <= PAGES + 1; k++) {
    const g = c.leaves[k];
    const flags = (g.p ? PTE.P : 0n) | (g.w ? PTE.W : 0n) | (g.u ? PTE.U : 0n) | (g.g ? PTE.G : 0n) | (g.xd ? PTE.XD : 0n);
    const size = k === PAGES ? PAGE_2M : k === PAGES + 1 ? PAGE_1G : undefined;
    const va = k === PAGES ? BIG : k === PAGES + 1 ? HUGE : vaOfPage(k);
    const pa = k === PAGES ? 0x60_0000n : k === PAGES + 1 ? 0n : DATA + BigInt(k) * 0x1000n;
    e.t.map(va, pa, { flags: flags | PTE.P, size, pkey: g.pkey });
    // map() presets A and D: take them (and P) back as the case says.
    const clear = (g.p ? 0n : PTE.P) | (g.a ? 0n : PTE.A) | (g.d ? 0n : PTE.D);
    e.t.modify(va, size === PAGE_1G ? 3 : size ? 2 : 1, 0n, clear);
  }
  if (c.upperNoA < 3) e.t.modify(VA[c.upperNoA], 2, 0n, PTE.A);
  const leafTable = e.t.entryPa(VA[0], 1) & ~0xfffn;
  for (let k = 0; k < PAGES; k++) {
    if (c.leaves[k].table) e.t.set(vaOfPage(k), 1, (e.t.get(vaOfPage(k), 1) & ~0xf_ffff_ffff_f000n) | leafTable);
  }
  for (let k = 0n; k < BigInt(PAGES); k++) e.m.memory.write64(DATA + k * 0x1000n + 0x88n, k * 0x1_0001n);
  const b = e.m.createBatch(c.ops.length);
  pushOps(b, c.ops, vaOfPage, e.t.root);
  return { ...e, b };
}

function state(e: Env): unknown {
  const core = (e.cpu as unknown as { core: Parameters<typeof readCaches>[0] }).core;
  const ptr = (e.cpu as unknown as { ptr: number }).ptr;
  return { counters: e.cpu.counters(), path: e.cpu.walkPath(), cr3: e.cpu.getRegisters().cr3, caches: readCaches(core, ptr) };
}

/** The first address where the two machines' memories differ (tables, data, the 2 MiB page), or -1. */
function firstDifference(a: Env, b: Env): number {
  const x = a.m.memory.read(0n, 0x80_0000), y = b.m.memory.read(0n, 0x80_0000);
  if (Buffer.from(x.buffer, x.byteOffset, x.length).equals(Buffer.from(y.buffer, y.byteOffset, y.length))) return -1;
  return x.findIndex((v, i) => v !== y[i]);
}

describe('batch engine fast paths', () => {
  it('give exactly what the general path gives (exits, values, memory, counters, caches)', async () => {
    await assertAsyncProperty(fc.asyncProperty(caseArb, async (c) => {
      const fast = await machine(c, true), slow = await machine(c, false);
      const a = runStepping(fast.cpu, fast.b, c.repeat), b = runStepping(slow.cpu, slow.b, c.repeat);
      expect(a).toEqual(b);
      expect(firstDifference(fast, slow)).toBe(-1);
      expect(state(fast)).toEqual(state(slow));
    }), { seed: 0x5eed_13, numRuns: 100 });
  }, 300_000);

});
