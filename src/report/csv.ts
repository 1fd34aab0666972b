// Tidy tables to CSV (RFC 4180 quoting, '\n' line ends so the files diff well).
// The header is the union of the rows' keys in first-seen order; a row without a column
// leaves its cell empty. Numbers print as JavaScript prints them (shortest round-trip form),
// so the same rows always give the same bytes.

import type { Cell, Row } from './result.js';

/** Quotes a field only when it must: it holds a comma, a quote, a line break, or edge spaces. */
export function csvField(v: Cell | undefined): string {
  if (v === undefined) return '';
  const s = String(v);
  return /[",\r\n]|^\s|\s$/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** Column names: every key of every row, in the order they first appear. */
export function columns(rows: readonly Row[]): string[] {
  const keys = new Set<string>();
  for (const r of rows) for (const k of Object.keys(r)) keys.add(k);
  return [...keys];
}

export function toCsv(rows: readonly Row[]): string {
  const keys = columns(rows);
  const lines = [keys.map(csvField).join(',')];
  for (const r of rows) lines.push(keys.map((k) => csvField(r[k])).join(','));
  return lines.join('\n') + '\n';
}
