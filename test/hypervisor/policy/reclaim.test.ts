// Free-memory states (§6.3): entry below each threshold, exit only above the next higher
// one (hysteresis), exact behaviour just above / at / below every threshold, and the
// per-round plan: balloon in soft (swap only what the balloon cannot take), swap in hard,
// swap and block in low.
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { assertProperty } from '../../helpers/seeds.js';
import {
  nextState, stateFor, FreeMemoryStates, thresholdFrames, vmBudget, planReclaim, validateThresholds,
  DEFAULT_THRESHOLDS, FREE_STATES, type FreeState,
} from '../../../src/hypervisor/policy/reclaim.js';

const TOTAL = 100_000; // host frames: 1 % = 1000 frames
const at = (frames: number) => frames / TOTAL;

describe('free-memory states', () => {
  it('from high: stays at and above the soft threshold, drops just below each threshold', () => {
    expect(stateFor(0.5)).toBe('high');
    expect(stateFor(at(4000))).toBe('high');  // exactly 4 %: not below soft
    expect(stateFor(at(3999))).toBe('soft');
    expect(stateFor(at(2000))).toBe('soft');  // exactly 2 %
    expect(stateFor(at(1999))).toBe('hard');
    expect(stateFor(at(1000))).toBe('hard');  // exactly 1 %
    expect(stateFor(at(999))).toBe('low');
    expect(stateFor(0)).toBe('low');
  });

  it('rises only after exceeding the threshold above the current state (hysteresis)', () => {
    // soft: entered below 4 %, left for high only above 6 %.
    expect(nextState('soft', at(5999))).toBe('soft');
    expect(nextState('soft', at(6000))).toBe('soft');
    expect(nextState('soft', at(6001))).toBe('high');
    // hard: left for soft above 4 %; low: left for hard above 2 %.
    expect(nextState('hard', at(4000))).toBe('hard');
    expect(nextState('hard', at(4001))).toBe('soft');
    expect(nextState('low', at(2000))).toBe('low');
    expect(nextState('low', at(2001))).toBe('hard');
    // One call climbs as far as free memory exceeds each threshold on the way.
    expect(nextState('low', at(4001))).toBe('soft');
    expect(nextState('low', at(6001))).toBe('high');
    // And drops straight to the lowest state whose threshold free is below.
    expect(nextState('high', at(500))).toBe('low');
    expect(nextState('soft', at(1500))).toBe('hard');
    expect(nextState('hard', at(2500))).toBe('hard'); // inside the band: stays
  });

  it('margin: "significantly exceeding" the upper threshold', () => {
    expect(nextState('soft', at(6400), DEFAULT_THRESHOLDS, 0.005)).toBe('soft');
    expect(nextState('soft', at(6501), DEFAULT_THRESHOLDS, 0.005)).toBe('high');
  });

  it('the machine counts transitions through a drop and a recovery', () => {
    const m = new FreeMemoryStates();
    const seen = [7000, 5000, 3900, 2500, 1900, 900, 1500, 2100, 3000, 4100, 5500, 6100].map((f) => m.nextFrames(f, TOTAL));
    expect(seen).toEqual(['high', 'high', 'soft', 'soft', 'hard', 'low', 'low', 'hard', 'hard', 'soft', 'soft', 'high']);
    expect(m.transitions).toBe(6);
    expect(() => m.nextFrames(10, 0)).toThrow(/total > 0/);
  });

  it('property: states only move by the rules (down below a threshold, up above the next higher)', () => {
    const T = DEFAULT_THRESHOLDS;
    const below: Record<FreeState, number> = { high: Infinity, soft: T.soft, hard: T.hard, low: T.low };
    assertProperty(fc.property(fc.constantFrom(...FREE_STATES), fc.integer({ min: 0, max: 10_000 }), (s, f) => {
      const free = f / 100_000, n = nextState(s, free), ri = FREE_STATES.indexOf(s), rn = FREE_STATES.indexOf(n);
      if (rn > ri) expect(free).toBeLessThan(below[n]);              // dropped: below the new state's threshold
      if (rn > ri) if (rn < 3) expect(free).toBeGreaterThanOrEqual(below[FREE_STATES[rn + 1]]); // and not below the next one
      if (rn < ri) expect(free).toBeGreaterThan([T.high, T.soft, T.hard][rn]); // rose: exceeded the threshold of the state left behind
      if (rn === ri && s !== 'high') expect(free).toBeLessThanOrEqual([T.high, T.soft, T.hard][ri - 1]);
      expect(nextState(n, free)).toBe(n); // a fixed point for the same free memory
    }), { numRuns: 400, seed: 3 });
  });

  it('refuses bad thresholds and input', () => {
    expect(() => validateThresholds({ high: 0.04, soft: 0.06, hard: 0.02, low: 0.01 })).toThrow(
      'free-memory thresholds must satisfy 0 < low < hard < soft < high < 1, got low 0.01, hard 0.02, soft 0.06, high 0.04');
    expect(() => nextState('high', 1.5)).toThrow('free memory must be a fraction in [0, 1], got 1.5');
    expect(() => nextState('medium' as FreeState, 0.5)).toThrow('unknown free-memory state "medium"');
  });

  it('threshold frames round so that F free frames are never below the threshold', () => {
    expect(thresholdFrames(TOTAL, 0.06)).toBe(6000);
    expect(thresholdFrames(1000, 0.015)).toBe(15);
    expect(thresholdFrames(333, 0.06)).toBe(20); // 19.98 → 20
    expect(stateFor(thresholdFrames(333, 0.04) / 333)).toBe('high');
    expect(stateFor((thresholdFrames(333, 0.04) - 1) / 333)).toBe('soft');
    expect(vmBudget(TOTAL)).toBe(94_000);
    expect(vmBudget(TOTAL, 2500)).toBe(91_500);
  });
});

describe('reclamation plan', () => {
  const vms = [
    { id: 'a', current: 1000, target: 600, balloonable: 1000 },  // balloon can take all 400
    { id: 'b', current: 1000, target: 700, balloonable: 100 },   // balloon takes 100, 200 cannot be ballooned
    { id: 'c', current: 500, target: 500, balloonable: 0 },      // at target
    { id: 'd', current: 200, target: 350, balloonable: 0 },      // below target
  ];

  it('high: no reclamation', () => {
    expect(planReclaim('high', vms)).toEqual({
      state: 'high', balloon: 0, swap: 0, blocked: [], below: [{ id: 'd', deficit: 150 }],
      actions: [{ id: 'a', excess: 400, balloon: 0, swap: 0, block: false }, { id: 'b', excess: 300, balloon: 0, swap: 0, block: false }],
    });
  });

  it('soft: balloon; swap only what the balloon cannot take', () => {
    const p = planReclaim('soft', vms);
    expect(p.actions).toEqual([{ id: 'a', excess: 400, balloon: 400, swap: 0, block: false }, { id: 'b', excess: 300, balloon: 100, swap: 200, block: false }]);
    expect([p.balloon, p.swap, p.blocked]).toEqual([500, 200, []]);
    // A balloon rate cap defers the rest to the next round rather than swapping it.
    expect(planReclaim('soft', vms, { balloonPerRound: 50 }).actions.map((a) => [a.balloon, a.swap])).toEqual([[50, 0], [50, 200]]);
  });

  it('hard: swap the excess; low: swap and block every VM above target', () => {
    expect(planReclaim('hard', vms).actions.map((a) => [a.balloon, a.swap, a.block])).toEqual([[0, 400, false], [0, 300, false]]);
    const low = planReclaim('low', vms, { swapPerRound: 250 });
    expect(low.actions.map((a) => [a.balloon, a.swap, a.block])).toEqual([[0, 250, true], [0, 250, true]]);
    expect(low.blocked).toEqual(['a', 'b']);
    expect(low.swap).toBe(500);
  });

  it('refuses bad input without a partial plan', () => {
    expect(() => planReclaim('soft', [{ id: 'x', current: 1.5, target: 0, balloonable: 0 }])).toThrow('VM "x": current must be a whole number of frames >= 0, got 1.5');
    expect(() => planReclaim('soft', [vms[0], vms[0]])).toThrow('VM id "a" appears twice');
    expect(() => planReclaim('soft', vms, { swapPerRound: -1 })).toThrow('swapPerRound must be >= 0, got -1');
  });
});
