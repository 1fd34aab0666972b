// The 95 % Student-t interval: the table against a numerical integration of the t density
// (an independent reference), and mean/sd/interval against values worked by hand.
import { describe, expect, it } from 'vitest';
import { meanCi95, tCritical975 } from '../../src/util/stats.js';

/** ln Γ(x), Lanczos (g = 7, n = 9), good to ~1e-15 for x > 0.5. */
function lnGamma(x: number): number {
  const c = [0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61503916999185,
    12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7];
  x -= 1;
  let a = c[0];
  const t = x + 7.5;
  for (let i = 1; i < 9; i++) a += c[i] / (x + i);
  return 0.5 * Math.log(2 * Math.PI) + (x + 0.5) * Math.log(t) - t + Math.log(a);
}
const density = (x: number, df: number) =>
  Math.exp(lnGamma((df + 1) / 2) - lnGamma(df / 2) - 0.5 * Math.log(df * Math.PI) - ((df + 1) / 2) * Math.log1p(x * x / df));
/** P(T ≤ t) by Simpson's rule on [0, t]. */
function cdf(t: number, df: number): number {
  const n = 20_000, h = t / n;
  let s = density(0, df) + density(t, df);
  for (let i = 1; i < n; i++) s += (i % 2 ? 4 : 2) * density(i * h, df);
  return 0.5 + (s * h) / 3;
}

describe('t(0.975, df)', () => {
  it.each([1, 2, 3, 4, 5, 7, 10, 15, 20, 25, 29, 30, 40, 60, 120])('df %i: the table value is the 97.5 %% quantile to its 3 decimals', (df) => {
    const t = tCritical975(df);
    // A value rounded to 3 decimals is within 0.0005 of the quantile, so its CDF is within 0.0005·f(t).
    expect(Math.abs(cdf(t, df) - 0.975)).toBeLessThanOrEqual(0.0005 * density(t, df) + 1e-7);
  });

  it.each([31, 45, 90, 121, 500, 10_000])('df %i (interpolated) is within 0.002 of the quantile', (df) => {
    const t = tCritical975(df);
    expect(Math.abs(cdf(t, df) - 0.975)).toBeLessThanOrEqual(0.002 * density(t, df));
  });

  it('df 1 is the Cauchy quantile tan(0.475π); large df tends to the normal 1.960', () => {
    expect(tCritical975(1)).toBeCloseTo(Math.tan(0.475 * Math.PI), 3);
    expect(tCritical975(1e9)).toBeCloseTo(1.96, 4);
  });

  it('refuses df below 1 or fractional', () => {
    expect(() => tCritical975(0)).toThrow(/degrees of freedom/);
    expect(() => tCritical975(2.5)).toThrow(/degrees of freedom/);
  });
});

describe('meanCi95', () => {
  it('1..5: mean 3, sd √2.5, half-width 2.776·√2.5/√5', () => {
    const r = meanCi95([1, 2, 3, 4, 5]);
    const half = 2.776 * Math.sqrt(2.5) / Math.sqrt(5);
    expect(r.n).toBe(5);
    expect(r.mean).toBe(3);
    expect(r.sd).toBeCloseTo(Math.sqrt(2.5), 12);
    expect(r.ciLow).toBeCloseTo(3 - half, 12);
    expect(r.ciHigh).toBeCloseTo(3 + half, 12);
  });

  it('two values 10 and 14: half-width 12.706 · 2.828 / √2 = 25.412', () => {
    const r = meanCi95([10, 14]);
    expect(r.mean).toBe(12);
    expect(r.ciHigh! - r.mean).toBeCloseTo(25.412, 9);
  });

  it('equal values give a zero-width interval; one value gives no interval', () => {
    expect(meanCi95([7, 7, 7])).toEqual({ n: 3, mean: 7, sd: 0, ciLow: 7, ciHigh: 7 });
    expect(meanCi95([7])).toEqual({ n: 1, mean: 7 });
  });

  it('refuses no values and non-finite ones', () => {
    expect(() => meanCi95([])).toThrow(/at least one/);
    expect(() => meanCi95([1, NaN])).toThrow(/finite/);
  });
});
