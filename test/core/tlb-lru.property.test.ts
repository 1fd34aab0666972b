// Replacement in the TLBs against a plain reference: an L1 4 KiB data TLB and a unified
// L2, each set-associative with true per-set LRU (the policy tlb.ts models), invalid ways
// first. Random streams of loads, stores and translates (run as batches, so the fast-path
// mirror and its hand-off take part), INVLPGs and full flushes over a few sets' worth of
// pages must give, access by access, the reference's L1 hits, L2 hits and walks.
// Seed: TLB_LRU_SEED (default fixed); runs: TLB_LRU_RUNS.
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { PTE } from '../../src/index.js';
import { env, PWU } from '../helpers/tables.js';

/** One set-associative cache of page numbers with true LRU. */
class RefCache {
  private sets: { tag: number; stamp: number }[][];
  constructor(readonly nSets: number, readonly ways: number) {
    this.sets = Array.from({ length: nSets }, () => []);
  }
  private set(tag: number) { return this.sets[tag & (this.nSets - 1)]; }
  /** A hit refreshes the entry's LRU time. */
  hit(tag: number, now: number): boolean {
    const e = this.set(tag).find((x) => x.tag === tag);
    if (e) e.stamp = now;
    return e !== undefined;
  }
  fill(tag: number, now: number): void {
    const s = this.set(tag);
    if (s.length === this.ways) {
      let v = 0;
      for (let i = 1; i < s.length; i++) if (s[i].stamp < s[v].stamp) v = i;
      s.splice(v, 1);
    }
    s.push({ tag, stamp: now });
  }
  drop(tag: number): void { const s = this.set(tag); const i = s.findIndex((x) => x.tag === tag); if (i >= 0) s.splice(i, 1); }
  flush(): void { this.sets = this.sets.map(() => []); }
}

type Op = { k: 'load' | 'store' | 'translate'; page: number } | { k: 'invlpg'; page: number } | { k: 'flush' };

const geometries = [
  { l1: { entries: 8, ways: 2 }, l2: { entries: 16, ways: 4 } },
  { l1: { entries: 4, ways: 4 }, l2: { entries: 24, ways: 12 } },
  { l1: { entries: 16, ways: 4 }, l2: { entries: 12, ways: 12 } },
];

const opArb = (pages: number): fc.Arbitrary<Op> => fc.oneof(
  // Half the touches go to a hot third of the pages, so L1 and L2 hits both happen.
  { weight: 20, arbitrary: fc.record({ k: fc.constantFrom('load' as const, 'store' as const, 'translate' as const),
    page: fc.oneof(fc.integer({ min: 0, max: pages - 1 }), fc.integer({ min: 0, max: Math.floor(pages / 3) })) }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('invlpg' as const), page: fc.integer({ min: 0, max: pages - 1 }) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('flush' as const) }) },
);

const BASE = 0x100_0000; // va of page 0

describe('TLB replacement', () => {
  it('is per-set LRU with invalid ways first, access by access, in the L1 and the L2', async () => {
    const seen = { l1: 0, l2: 0, walk: 0 };
    for (const geo of geometries) {
      const { m, cpu, t } = await env({ cpu: { tlb: { l1d4k: geo.l1, l1d2m: false, l1d1g: false, l2: geo.l2 }, psc: false } });
      const PAGES = 40;
      for (let p = 0; p < PAGES; p++) t.map(BigInt(BASE + p * 4096), BigInt(0x80_0000 + p * 4096), { flags: PWU | PTE.A | PTE.D });
      const batch = m.createBatch(1);
      await fc.assert(fc.asyncProperty(fc.array(opArb(PAGES), { minLength: 100, maxLength: 300 }), async (ops) => {
        cpu.flushTlb();
        const l1 = new RefCache(geo.l1.entries / geo.l1.ways, geo.l1.ways);
        const l2 = new RefCache(geo.l2.entries / geo.l2.ways, geo.l2.ways);
        let now = 0;
        for (const op of ops) {
          if (op.k === 'flush') { cpu.flushTlb(); l1.flush(); l2.flush(); continue; }
          const tag = BASE / 4096 + op.page;
          const va = BASE + op.page * 4096;
          if (op.k === 'invlpg') { cpu.invlpg(BigInt(va)); l1.drop(tag); l2.drop(tag); continue; }
          const before = cpu.counters();
          batch.clear();
          if (op.k === 'load') batch.load(va + 8, 8);
          else if (op.k === 'store') batch.store(va + 16, 7n);
          else batch.translate(va + 24);
          const r = cpu.execute(batch);
          expect(r.exit.reason).toBe('end');
          const c = cpu.counters();
          now++;
          let want: 'l1' | 'l2' | 'walk';
          if (l1.hit(tag, now)) want = 'l1';
          else if (l2.hit(tag, now)) { want = 'l2'; l1.fill(tag, now); }
          else { want = 'walk'; l1.fill(tag, now); l2.fill(tag, now); }
          const got = c.walks > before.walks ? 'walk' : c.l2Hit4k > before.l2Hit4k ? 'l2' : c.l1Hit4k > before.l1Hit4k ? 'l1' : '?';
          expect(got, `${op.k} page ${op.page} (geometry ${JSON.stringify(geo)})`).toBe(want);
          seen[want]++;
        }
      }), { seed: Number(process.env.TLB_LRU_SEED ?? 0x1e0_7a6e), numRuns: Number(process.env.TLB_LRU_RUNS ?? 40) });
    }
    if (process.env.TLB_LRU_VERBOSE) console.log(seen);
    expect(Math.min(seen.l1, seen.l2, seen.walk)).toBeGreaterThan(100); // every outcome is exercised
  }, 120_000);
});
