// The property tests' seed selection (helpers/seeds.ts): a fixed default, and the
// environment variables that explore other seeds.
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { seedsFor, assertProperty } from './seeds.js';

describe('property seeds', () => {
  it('default: the fixed seed only', () => {
    expect(seedsFor(1234, {})).toEqual([1234]);
  });

  it('PROPERTY_SEED replaces it; PROPERTY_SEEDS=k gives the fixed seed and k-1 distinct others', () => {
    expect(seedsFor(1234, { PROPERTY_SEED: '77' })).toEqual([77]);
    const s = seedsFor(1234, { PROPERTY_SEEDS: '50', PROPERTY_SEED: '77' });
    expect(s).toHaveLength(50);
    expect(s[0]).toBe(1234);
    expect(new Set(s).size).toBe(50);
    for (const x of s) expect(x).toBe(x | 0); // 32-bit integers, as fast-check takes them
  });

  it('PROPERTY_SEEDS=a..b gives a to b; bad values are refused', () => {
    expect(seedsFor(1234, { PROPERTY_SEEDS: '3..6' })).toEqual([3, 4, 5, 6]);
    expect(() => seedsFor(1, { PROPERTY_SEEDS: '6..3' })).toThrow(/empty range/);
    expect(() => seedsFor(1, { PROPERTY_SEEDS: '0' })).toThrow(/count >= 1/);
    expect(() => seedsFor(1, { PROPERTY_SEED: 'x' })).toThrow(/integer/);
  });

  it('a property runs with the fixed seed: the same draws every time', () => {
    const draws: number[][] = [[], []];
    for (const d of draws) assertProperty(fc.property(fc.integer(), (x) => { d.push(x); }), { seed: 42, numRuns: 20 });
    expect(draws[0]).toEqual(draws[1]);
    expect(draws[0]).toHaveLength(20 * seedsFor(42).length); // more under PROPERTY_SEEDS
  });
});
