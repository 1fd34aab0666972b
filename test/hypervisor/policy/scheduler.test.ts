import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { assertProperty } from '../../helpers/seeds.js';
import { Scheduler, type Runnable } from '../../../src/hypervisor/policy/scheduler.js';

/** Busy: always uses its whole budget. */
const busy = (name: string): Runnable => ({ name, step: (b) => b });

describe('proportional-share scheduler', () => {
  it('divides the CPU in proportion to shares, within one slice per runnable', () => {
    assertProperty(fc.property(fc.array(fc.integer({ min: 1, max: 5000 }), { minLength: 1, maxLength: 5 }), (shares) => {
      const s = new Scheduler({ hz: 1e6, slice: 100 });
      const rs = shares.map((_, i) => busy(`r${i}`));
      rs.forEach((r, i) => s.add(r, shares[i]));
      s.runFor(10); // 1e7 cycles
      const total = shares.reduce((a, b) => a + b, 0);
      rs.forEach((r, i) => {
        const want = (1e7 * shares[i]) / total;
        expect(Math.abs(s.usage(r) - want)).toBeLessThanOrEqual(100 * (rs.length + 1));
      });
    }), { seed: 0x5c4e_d001 });
  });

  it('gives an idle runnable nothing and lets the clock jump when all are idle', () => {
    const s = new Scheduler({ hz: 1000, slice: 10 });
    const a = busy('a');
    const idle: Runnable = { name: 'idle', step: () => 0 };
    s.add(a, 1); s.add(idle, 1000);
    s.runFor(1);
    expect(s.usage(a)).toBe(1000);
    expect(s.usage(idle)).toBe(0);
    const t = new Scheduler({ hz: 1000 });
    t.add(idle);
    t.runFor(5);
    expect(t.now).toBe(5000);
  });

  it('fires timers on the virtual clock, deterministically', () => {
    const s = new Scheduler({ hz: 1000, slice: 7 });
    const seen: number[] = [];
    s.add(busy('a'));
    s.every(0.25, (now) => seen.push(now));
    s.runFor(1);
    expect(seen).toEqual([250, 500, 750, 1000]);
  });

  it('rejects bad shares with a clear message', () => {
    const s = new Scheduler();
    expect(() => s.add(busy('x'), 0)).toThrow(/shares must be positive/);
  });
});
