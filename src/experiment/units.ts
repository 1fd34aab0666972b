// Small helpers the experiments share: sizes and rounding for reports.
export const MiB = 2 ** 20;
/** x rounded to d decimals (reports keep a few significant figures, not float noise). */
export const round = (x: number, d = 2): number => Math.round(x * 10 ** d) / 10 ** d;
