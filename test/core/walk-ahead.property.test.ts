// The bare miss loop's walk-ahead pass (assembly/walk-ahead.ts, miss.ts bareLoop) against
// the general path, as fastpath.property.test.ts does, on what that pass must get right
// and the wider test rarely builds:
// - long runs of loop ops, so blocks grow to their 32 ops;
// - stores that rewrite a later op's leaf entry inside the same block (the pass must not
//   use a walk read before the store);
// - memory that is not a power of two, with the page tables inside it but above the
//   largest power-of-two window (the pass marks such walks for the careful path);
// - 4 and 5 levels, every cache off.
// Equal means: the same exits, op values, memory, counters and walk path.

import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { assertAsyncProperty } from '../helpers/seeds.js';
import { runStepping } from '../helpers/run-batch.js';
import { env, Tables, type Env } from '../helpers/tables.js';
import { PTE, type AccessBatch } from '../../src/index.js';

const MiB = 2 ** 20;
const MEMORY = 12 * MiB;                 // window: the lower 8 MiB
const VA = 0x7f00_0000_0000n;
const ALIAS = 0x7f00_4000_0000n;         // maps the leaf table itself, so stores rewrite leaves
const PAGES = 24;
const DATA = 0x40_0000n;

const opArb = fc.record({
  kind: fc.constantFrom('load', 'load', 'translate', 'translate', 'store', 'storeLeaf'),
  page: fc.integer({ min: 0, max: PAGES - 1 }),
  offset: fc.integer({ min: 0, max: 511 }).map((x) => x * 8),
  frame: fc.integer({ min: 0, max: PAGES + 3 }), // a storeLeaf's new frame (above PAGES: far out)
  present: fc.integer({ min: 0, max: 7 }).map((x) => x !== 0),
});

const caseArb = fc.record({
  levels: fc.constantFrom(4, 5) as fc.Arbitrary<4 | 5>,
  tablesHigh: fc.boolean(), // tables at 9 MiB: outside the window, inside memory
  ops: fc.array(opArb, { minLength: 60, maxLength: 200 }),
  repeat: fc.integer({ min: 1, max: 2 }),
});
type Case = typeof caseArb extends fc.Arbitrary<infer T> ? T : never;

async function machine(c: Case, fast: boolean): Promise<Env & { b: AccessBatch }> {
  const e = await env({ memoryBytes: MEMORY, levels: c.levels, cpu: { tlb: false, psc: false }, presetAD: true });
  // With tablesHigh, the walk uses tables built at 9 MiB; the env's own tables at 1 MiB
  // get the same shape in the same order but other frames, so an address cut to the 8 MiB
  // window lands on a valid entry with a wrong frame: only marking the walk is right.
  const low = e.t;
  if (c.tablesHigh) {
    e.t = new Tables(e.m.memory, c.levels, 0x90_0000n, true);
    e.cpu.setRegisters({ cr3: e.t.root });
  }
  e.cpu.setFastPaths(fast);
  let leafTable = 0n, lowLeafTable = 0n;
  for (let k = 0; k < PAGES; k++) {
    const path = e.t.map(VA + BigInt(k) * 0x1000n, DATA + BigInt(k) * 0x1000n);
    leafTable = path[path.length - 1] & ~0xfffn;
    if (c.tablesHigh) {
      const lowPath = low.map(VA + BigInt(k) * 0x1000n, DATA + BigInt(PAGES + k) * 0x1000n);
      lowLeafTable = lowPath[lowPath.length - 1] & ~0xfffn;
    }
    e.m.memory.write64(DATA + BigInt(k) * 0x1000n + 0x88n, BigInt(k) * 0x1_0001n);
  }
  e.t.map(ALIAS, leafTable);
  if (c.tablesHigh) {
    low.map(ALIAS, lowLeafTable);
    expect(leafTable & 0x7f_ffffn).toBe(lowLeafTable); // the cut lands on the decoy
  }
  const b = e.m.createBatch(c.ops.length);
  for (const o of c.ops) {
    const va = VA + BigInt(o.page) * 0x1000n + BigInt(o.offset);
    if (o.kind === 'load') b.load(va, 8);
    else if (o.kind === 'translate') b.translate(va);
    else if (o.kind === 'store') b.store(va, BigInt(o.offset) * 3n, 8);
    else {
      const leaf = o.frame < PAGES ? DATA + BigInt(o.frame) * 0x1000n : BigInt(o.frame) * 0x40_0000n; // 96+ MiB: outside memory
      b.store(ALIAS + BigInt(o.page) * 8n, leaf | (o.present ? PTE.P : 0n) | PTE.W | PTE.U | PTE.A | PTE.D, 8);
    }
  }
  return { ...e, b };
}

function memoryEqual(a: Env, b: Env): boolean {
  const x = a.m.memory.read(0n, MEMORY), y = b.m.memory.read(0n, MEMORY);
  return Buffer.from(x.buffer, x.byteOffset, x.length).equals(Buffer.from(y.buffer, y.byteOffset, y.length));
}

describe('bare miss loop walk-ahead', () => {
  it('gives the general path\'s results on long runs, table-rewriting stores and tables above the window', async () => {
    await assertAsyncProperty(fc.asyncProperty(caseArb, async (c) => {
      const fast = await machine(c, true), slow = await machine(c, false);
      const a = runStepping(fast.cpu, fast.b, c.repeat), b = runStepping(slow.cpu, slow.b, c.repeat);
      expect(a).toEqual(b);
      expect(memoryEqual(fast, slow)).toBe(true);
      expect(fast.cpu.counters()).toEqual(slow.cpu.counters());
      expect(fast.cpu.walkPath()).toEqual(slow.cpu.walkPath());
    }), { seed: 0x3a1_4ead, numRuns: 60 });
  }, 300_000);
});
