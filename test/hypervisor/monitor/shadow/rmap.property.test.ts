// Property test: the shadow MMU's reverse map (typed-array words, a map only for gfns with
// several leaves) answers as a plain Map<gfn, Set<hpa>> does, through random adds,
// deletes and clears, gfns large enough to make it grow.
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { assertProperty } from '../../../helpers/seeds.js';
import { ShadowRmap } from '../../../../src/hypervisor/monitor/shadow-rmap.js';

const gfnArb = fc.oneof(fc.integer({ min: 0, max: 40 }), fc.integer({ min: 0, max: 300_000 }));
const atArb = fc.integer({ min: 0, max: 2 ** 29 - 1 }).map((x) => x * 8); // 8-aligned, up to 4 GiB
const opArb = fc.oneof(
  { weight: 6, arbitrary: fc.tuple(fc.constant('add' as const), gfnArb, fc.oneof(atArb, fc.constantFrom(8, 16, 4 * 2 ** 30 - 8))) },
  { weight: 2, arbitrary: fc.tuple(fc.constant('delete' as const), gfnArb, fc.constant(0)) },
  { weight: 1, arbitrary: fc.tuple(fc.constant('clear' as const), fc.constant(0), fc.constant(0)) },
);

describe('shadow rmap', () => {
  it('answers as a map of gfn → hpas in fill order', () => {
    assertProperty(fc.property(fc.array(opArb, { maxLength: 200 }), (ops) => {
      const r = new ShadowRmap(), model = new Map<number, Set<number>>();
      const seen = new Set<number>();
      for (const [op, gfn, at] of ops) {
        seen.add(gfn);
        if (op === 'add') { r.add(gfn, at); if (!model.has(gfn)) model.set(gfn, new Set()); model.get(gfn)!.add(at); }
        else if (op === 'delete') { r.delete(gfn); model.delete(gfn); }
        else { r.clear(); model.clear(); }
        for (const g of seen) {
          expect(r.has(g)).toBe(model.has(g));
          expect([...r.sptes(g)]).toEqual([...(model.get(g) ?? [])]);
        }
      }
    }), { seed: 0x4a_b0b5, numRuns: 200 });
  });

  it('refuses a gfn beyond the p2m\'s range and stays as it was', () => {
    const r = new ShadowRmap();
    r.add(5, 4096);
    expect(() => r.add(2 ** 28, 8)).toThrow(RangeError);
    expect(() => r.add(-1, 8)).toThrow(RangeError);
    expect([...r.sptes(5)]).toEqual([4096]);
    for (const g of [2 ** 28, -1, 5.5]) { expect(r.has(g)).toBe(false); expect([...r.sptes(g)]).toEqual([]); }
  });
});
