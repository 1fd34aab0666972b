// Summary statistics over repeated runs (the seeds of one sweep point): mean, sample
// standard deviation and a two-sided 95 % confidence interval for the mean from Student's t
// distribution with n − 1 degrees of freedom: mean ± t(0.975, n−1) · s / √n.
// The runs of a point differ only in their seed, so they are independent draws; the t
// interval assumes roughly normal figures, the usual choice for a handful of repetitions.

/**
 * t(0.975, df): the 97.5 % quantile of Student's t, for df = 1 … 30, 40, 60, 120 and ∞.
 * Source: NIST/SEMATECH e-Handbook of Statistical Methods, table 1.3.6.7.2 "Critical values
 * of the Student's t distribution" (column 0.975). test/util/stats.test.ts checks each
 * value against a numerical integration of the t density.
 */
const T975: Readonly<Record<number, number>> = {
  1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
  11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110, 18: 2.101, 19: 2.093, 20: 2.086,
  21: 2.080, 22: 2.074, 23: 2.069, 24: 2.064, 25: 2.060, 26: 2.056, 27: 2.052, 28: 2.048, 29: 2.045, 30: 2.042,
  40: 2.021, 60: 2.000, 120: 1.980,
};
const Z975 = 1.960;
const TABLE_STEPS = [30, 40, 60, 120];

/**
 * t(0.975, df) for any df ≥ 1: from the table, and between its rows above 30 by linear
 * interpolation in 1/df (the table's own recommendation; error below 0.002), → 1.960.
 */
export function tCritical975(df: number): number {
  if (!Number.isInteger(df) || df < 1) throw new RangeError(`degrees of freedom must be a whole number ≥ 1, got ${df}`);
  if (df in T975) return T975[df];
  const lo = [...TABLE_STEPS].reverse().find((d) => d < df);
  const hi = TABLE_STEPS.find((d) => d > df);
  const [a, ta] = [1 / lo!, T975[lo!]];
  const [b, tb] = hi === undefined ? [0, Z975] : [1 / hi, T975[hi]];
  return tb + ((1 / df - b) / (a - b)) * (ta - tb);
}

export interface MeanCi {
  /** Number of values. */
  n: number;
  mean: number;
  /** Sample standard deviation (n − 1 in the denominator); absent for one value. */
  sd?: number;
  /** 95 % Student-t confidence interval of the mean; absent for one value. */
  ciLow?: number;
  ciHigh?: number;
}

/** Mean, sample standard deviation and 95 % Student-t interval of the mean. */
export function meanCi95(values: readonly number[]): MeanCi {
  const n = values.length;
  if (n === 0) throw new RangeError('meanCi95 needs at least one value');
  if (values.some((v) => !Number.isFinite(v))) throw new RangeError('meanCi95 takes finite numbers only');
  const mean = values.reduce((a, v) => a + v, 0) / n;
  if (n === 1) return { n, mean };
  const sd = Math.sqrt(values.reduce((a, v) => a + (v - mean) ** 2, 0) / (n - 1));
  const half = tCritical975(n - 1) * sd / Math.sqrt(n);
  return { n, mean, sd, ciLow: mean - half, ciHigh: mean + half };
}
