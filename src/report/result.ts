// The result of one experiment run: the single thing an experiment hands to the report
// writer. Everything in it is plain JSON so result.json round-trips exactly:
//   summary  headline figures, shown as a table at the top of the report;
//   series   tidy tables (one row per observation, one column per variable), one CSV each;
//   plots    vega-lite specs whose data is { name: <series key> }, rendered to SVG beside
//            what the paper reports for that figure.
// validateResult checks the shape before anything is rendered or written, so a buggy
// experiment gets an error naming the bad field instead of a half-made report.

import { z } from 'zod';
import { formatIssues } from '../scenario/schema.js';

export type Cell = number | string;
export type Row = Record<string, Cell>;

export interface Plot {
  /** File name stem of the SVG (<id>.svg) and anchor in index.html. */
  id: string;
  title: string;
  /** A vega-lite spec; its data (at any level) is { name: <key of result.series> }. */
  vegaLite: Record<string, unknown>;
  /** What the paper reports for this figure: one paragraph, shown beside the plot. */
  paper?: string;
  caption?: string;
}

export interface ExperimentResult {
  /** The scenario name. */
  scenario: string;
  title: string;
  seed: number;
  description?: string;
  summary: Record<string, Cell>;
  series: Record<string, Row[]>;
  plots: Plot[];
  notes?: string[];
  /** The validated scenario the run used (header and parameters, defaults filled in). */
  config?: Record<string, unknown>;
  /** Where the result came from: set by the runner, never by an experiment. */
  provenance?: Provenance;
}

/** What made a result: enough to run it again and get the same numbers. */
export interface Provenance {
  /** memvisor's package version. */
  memvisor: string;
  /** The commit of the memvisor clone that ran, when it ran from one, and whether it had local changes. */
  gitCommit?: string;
  gitDirty?: boolean;
  /** process.version of the Node that ran. */
  node: string;
  seed: number;
  /** The full normalized scenario: header and parameters, defaults filled in, sizes in bytes. */
  scenario: Record<string, unknown>;
}

/** What an experiment's run returns: the runner fills in scenario and seed (and title if absent). */
export type ExperimentOutput = Omit<ExperimentResult, 'scenario' | 'seed' | 'title' | 'provenance'> &
  Partial<Pick<ExperimentResult, 'scenario' | 'seed' | 'title'>>;

/** Series keys and plot ids become file names. */
const fileStem = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/,
  'a name of letters, digits, ".", "_" and "-" (it becomes a file name)');
const cell = z.unknown().superRefine((v, ctx) => {
  if (typeof v === 'string' || (typeof v === 'number' && Number.isFinite(v))) return;
  ctx.addIssue({ code: 'custom', message: typeof v === 'number'
    ? `${v} is not allowed: numbers must be finite (NaN and Infinity do not survive JSON)`
    : `expected a number or a string, got ${v === null ? 'null' : typeof v}` });
}) as unknown as z.ZodType<Cell>;
const row = z.record(cell);

const plot = z.object({
  id: fileStem,
  title: z.string(),
  vegaLite: z.record(z.unknown()),
  paper: z.string().optional(),
  caption: z.string().optional(),
}).strict();

const resultSchema = z.object({
  scenario: z.string().min(1),
  title: z.string(),
  seed: z.number().int().nonnegative(),
  description: z.string().optional(),
  summary: z.record(cell),
  series: z.record(z.array(row)),
  plots: z.array(plot),
  notes: z.array(z.string()).optional(),
  config: z.record(z.unknown()).optional(),
  provenance: z.object({
    memvisor: z.string(),
    gitCommit: z.string().optional(),
    gitDirty: z.boolean().optional(),
    node: z.string(),
    seed: z.number().int().nonnegative(),
    scenario: z.record(z.unknown()),
  }).strict().optional(),
}).strict().superRefine((r, ctx) => {
  for (const key of Object.keys(r.series)) {
    if (!fileStem.safeParse(key).success) {
      ctx.addIssue({ code: 'custom', path: ['series', key], message: 'series keys become CSV file names: use letters, digits, ".", "_" and "-"' });
    }
  }
  const seen = new Set<string>();
  r.plots.forEach((p, i) => {
    if (seen.has(p.id)) ctx.addIssue({ code: 'custom', path: ['plots', i, 'id'], message: `duplicate plot id "${p.id}"` });
    seen.add(p.id);
    for (const name of dataNames(p.vegaLite)) {
      if (!(name in r.series)) {
        ctx.addIssue({ code: 'custom', path: ['plots', i, 'vegaLite'],
          message: `data { name: "${name}" } is not a series (series: ${Object.keys(r.series).join(', ') || 'none'})` });
      }
    }
  });
});

/** Throws an Error listing every problem by field path (e.g. `series.runs[2].x: ...`). */
export function validateResult(result: unknown): ExperimentResult {
  const r = resultSchema.safeParse(result);
  if (r.success) return result as ExperimentResult;
  throw new Error(`invalid experiment result:\n${formatIssues(r.error.issues).map((l) => '  ' + l).join('\n')}`);
}

/** Every `data: { name }` in a (possibly layered or concatenated) vega-lite spec. */
export function dataNames(spec: unknown): string[] {
  const names = new Set<string>();
  const visit = (node: unknown): void => {
    if (Array.isArray(node)) { node.forEach(visit); return; }
    if (!node || typeof node !== 'object') return;
    const o = node as Record<string, unknown>;
    const d = o.data as Record<string, unknown> | undefined;
    if (d && typeof d === 'object' && typeof d.name === 'string') names.add(d.name);
    for (const [k, v] of Object.entries(o)) if (k !== 'data' && k !== 'datasets') visit(v);
  };
  visit(spec);
  return [...names];
}
