// Sizes for people: 8589934592 → "8 GiB", 3758096384 → "3.5 GiB", 1536 → "1.5 KiB".

const UNITS: readonly [number, string][] = [[2 ** 30, 'GiB'], [2 ** 20, 'MiB'], [2 ** 10, 'KiB']];

/** n bytes in the largest binary unit it reaches, up to 2 decimals (trailing zeros dropped). */
export function fmtSize(n: number | bigint): string {
  const v = Number(n);
  for (const [u, s] of UNITS) {
    if (Math.abs(v) >= u) return `${Number((v / u).toFixed(2))} ${s}`;
  }
  return `${v} B`;
}
