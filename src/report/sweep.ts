// The summary of a sweep: sweep.json (the manifest `memvisor merge` reads back), points.csv
// (one row per point and metric: mean, sd, 95 % Student-t interval over the seeds), runs.csv
// (one row per run: its numeric summary figures) and index.html (a table of means ± half
// widths, one plot per metric with error bars, links to every run's own report).
// The same runs give byte-identical files whatever order they finished in or which shard ran
// them: runs are kept in plan order and nothing records time or place.

import { meanCi95, type MeanCi } from '../util/stats.js';
import type { Cell, Row } from './result.js';

export const SWEEP_FORMAT = 'memvisor-sweep/1';
export const INTERVAL_NOTE =
  'mean ± half-width of the 95 % Student-t confidence interval of the mean over the seeds: t(0.975, n−1) · s / √n (s: sample standard deviation)';

/** One finished run, as sweep.json lists it. */
export interface SweepRunRecord {
  seed: number;
  /** Its report folder, relative to the sweep's folder: runs/<point>-seed<seed>. */
  dir: string;
  /** The run's summary figures (result.json's summary). */
  summary: Record<string, Cell>;
}

export interface SweepPointRecord {
  id: string;
  /** `vms[0].shares=1000, policy.tau=0.75`. */
  label: string;
  params: Record<string, unknown>;
  runs: SweepRunRecord[];
  /** Per numeric summary figure present in every run of the point. */
  stats: Record<string, MeanCi>;
}

export interface SweepDoc {
  format: typeof SWEEP_FORMAT;
  scenario: string;
  kind: string;
  title: string;
  description?: string;
  /** The scenario file without "sweep", and the sweep: what makes two shards parts of one sweep. */
  base: Record<string, unknown>;
  sweep: Record<string, unknown>;
  seeds: number[];
  interval: string;
  /** Present when this folder holds one slice (`--shard K/N`); a merged or whole sweep has none. */
  shard?: { index: number; count: number };
  points: SweepPointRecord[];
}

/** Per-point statistics of every numeric summary figure all of the point's runs report. */
export function pointStats(runs: readonly SweepRunRecord[]): Record<string, MeanCi> {
  const stats: Record<string, MeanCi> = {};
  if (runs.length === 0) return stats;
  for (const key of Object.keys(runs[0].summary)) {
    const values = runs.map((r) => r.summary[key]);
    if (values.every((v): v is number => typeof v === 'number')) stats[key] = meanCi95(values);
  }
  return stats;
}

/** Metric names across points, in first-seen order. */
export function sweepMetrics(doc: SweepDoc): string[] {
  const names = new Set<string>();
  for (const p of doc.points) for (const k of Object.keys(p.stats)) names.add(k);
  return [...names];
}

/**
 * The metrics that differ between runs somewhere (the table and plots show these; a figure
 * every run reports alike, such as a configured size, is only in the CSVs and sweep.json).
 */
export function variedMetrics(doc: SweepDoc): string[] {
  return sweepMetrics(doc).filter((m) => {
    const stats = doc.points.flatMap((p) => (p.stats[m] ? [p.stats[m]] : []));
    return stats.some((s) => (s.sd ?? 0) > 0 || s.mean !== stats[0].mean);
  });
}

/** Tidy rows: one per point and metric. */
export function pointRows(doc: SweepDoc): Row[] {
  const rows: Row[] = [];
  for (const p of doc.points) {
    for (const [metric, s] of Object.entries(p.stats)) {
      rows.push({
        point: p.id, label: p.label, ...cells(p.params), metric, n: s.n, mean: s.mean,
        ...(s.sd !== undefined ? { sd: s.sd, ciLow: s.ciLow!, ciHigh: s.ciHigh! } : {}),
      });
    }
  }
  return rows;
}

/** Wide rows: one per run, its numeric figures as columns. */
export function runRows(doc: SweepDoc): Row[] {
  return doc.points.flatMap((p) => p.runs.map((r) => {
    const row: Row = { point: p.id, ...cells(p.params), seed: r.seed };
    for (const [k, v] of Object.entries(r.summary)) if (typeof v === 'number') row[k] = v;
    return row;
  }));
}

/** Parameter values as CSV cells (objects and booleans as their JSON). */
function cells(params: Record<string, unknown>): Row {
  const row: Row = {};
  for (const [k, v] of Object.entries(params)) row[k] = typeof v === 'number' || typeof v === 'string' ? v : JSON.stringify(v);
  return row;
}

/** "867.8 ± 12.3": the mean and half-width at 4 significant digits (the mean alone for one run). */
export function meanCiText(s: MeanCi): string {
  const f = (v: number) => (Number.isInteger(v) || Math.abs(v) >= 1000 ? String(Math.round(v)) : String(Number(v.toPrecision(4))));
  return s.ciHigh === undefined ? f(s.mean) : `${f(s.mean)} ± ${f(s.ciHigh - s.mean)}`;
}

/** What a sweep's summary is made of: the document's header fields, its points, and the runs that finished. */
export interface SweepDocInput extends Omit<SweepDoc, 'format' | 'interval' | 'points'> {
  points: readonly { id: string; label: string; params: Record<string, unknown> }[];
  /** Finished runs by runKey(point, seed); a shard holds some of them. */
  runs: ReadonlyMap<string, SweepRunRecord>;
}

export function runKey(point: string, seed: number): string {
  return `${point}|${seed}`;
}

/** The sweep document: points in plan order, each point's runs in seed order, statistics over them. */
export function sweepDoc(input: SweepDocInput): SweepDoc {
  const points = input.points.map((p) => {
    const runs = input.seeds.flatMap((s) => input.runs.get(runKey(p.id, s)) ?? []);
    return { id: p.id, label: p.label, params: p.params, runs, stats: pointStats(runs) };
  });
  return {
    format: SWEEP_FORMAT, scenario: input.scenario, kind: input.kind, title: input.title,
    ...(input.description !== undefined ? { description: input.description } : {}),
    base: input.base, sweep: input.sweep, seeds: input.seeds, interval: INTERVAL_NOTE,
    ...(input.shard ? { shard: input.shard } : {}),
    points,
  };
}
