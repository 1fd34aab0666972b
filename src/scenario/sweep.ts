// Sweeps: one scenario file naming parameter ranges and seeds. The optional top-level field
//
//   "sweep": {
//     "vary":  { "vms[0].shares": [1000, 2000, 4000], "policy.tau": [0, 0.75] },
//     "seeds": [1, 2, 3]                 // or { "from": 1, "count": 5 }
//   }
//
// makes the file a set of runs: every combination of the `vary` values (a cartesian product;
// the first path varies slowest, the last fastest), each run once per seed. A path names a
// field of the file as formatPath prints it: keys joined by dots, array items by [index].
// Objects missing along the path are created (as if the file had written them); array items
// must exist. Each point is then validated like any scenario file, so an error names the
// point and the field. Without `vary` a sweep is one point run with several seeds; without
// `seeds` every point runs once with the file's seed. The zod schema of the field
// (sweepField) sits in schema.ts with the other header fields; this file spells it out.

import { MAX_SWEEP_RUNS, ScenarioError, formatIssues, formatPath, sweepField, type SweepSpec } from './schema.js';

export { MAX_SWEEP_RUNS, sweepField, type SweepSpec };

/** One combination of the varied values. */
export interface SweepPoint {
  /** "p0", "p1", … zero-padded to the same width ("p00" … "p11" for 12 points). */
  id: string;
  /** Path → value, in the order of `vary`. */
  params: Record<string, unknown>;
}

/** A sweep spelled out: the points, the seeds, and the scenario of each (point, seed). */
export interface SweepPlan {
  points: SweepPoint[];
  seeds: number[];
  /** The file without its "sweep" field. */
  base: Record<string, unknown>;
}

/** The sweep of a scenario file, or undefined if it has none; throws a ScenarioError for a bad one. */
export function parseSweep(json: Record<string, unknown>, source: string): SweepSpec | undefined {
  if (!('sweep' in json)) return undefined;
  const r = sweepField.safeParse(json.sweep);
  if (!r.success) throw new ScenarioError(source, formatIssues(r.error.issues, ['sweep']));
  return r.data;
}

/** Points (cartesian product of vary, first path slowest) and seeds of a sweep. */
export function planSweep(json: Record<string, unknown>, spec: SweepSpec, source: string): SweepPlan {
  const { sweep: _s, ...base } = json;
  const fileSeed = typeof base.seed === 'number' ? base.seed : 1;
  const s = spec.seeds;
  const seeds = s === undefined ? [fileSeed] : Array.isArray(s) ? s : Array.from({ length: s.count }, (_, i) => s.from + i);
  const paths = Object.keys(spec.vary);
  const count = paths.reduce((n, p) => n * spec.vary[p].length, 1);
  if (count * seeds.length > MAX_SWEEP_RUNS) {
    throw new ScenarioError(source, [`sweep: ${count} points × ${seeds.length} seeds = ${count * seeds.length} runs, more than ${MAX_SWEEP_RUNS}`]);
  }
  const width = String(count - 1).length;
  const points: SweepPoint[] = [];
  for (let i = 0; i < count; i++) {
    const params: Record<string, unknown> = {};
    let rest = i;
    for (let k = paths.length - 1; k >= 0; k--) {
      const values = spec.vary[paths[k]];
      params[paths[k]] = values[rest % values.length];
      rest = Math.floor(rest / values.length);
    }
    const ordered = Object.fromEntries(paths.map((p) => [p, params[p]]));
    points.push({ id: `p${String(i).padStart(width, '0')}`, params: ordered });
  }
  return { points, seeds, base };
}

/** The scenario JSON of one run: the base with the point's values set and the seed. */
export function pointScenario(plan: SweepPlan, point: SweepPoint, seed: number, source: string): Record<string, unknown> {
  const json = structuredClone(plan.base);
  for (const [path, value] of Object.entries(point.params)) {
    const problem = setPath(json, parsePath(path), structuredClone(value));
    if (problem) throw new ScenarioError(source, [`sweep.vary["${path}"]: ${problem}`]);
  }
  json.seed = seed;
  return json;
}

/** "vms[0].shares" → ['vms', 0, 'shares']. */
export function parsePath(path: string): (string | number)[] {
  const out: (string | number)[] = [];
  for (const m of path.matchAll(/([^.[\]]+)|\[(\d+)\]/g)) out.push(m[2] !== undefined ? Number(m[2]) : m[1]);
  return out;
}

/** Sets json at path; returns a problem ("vms has 2 items") instead of throwing. */
function setPath(json: Record<string, unknown>, path: (string | number)[], value: unknown): string | undefined {
  let node: unknown = json;
  for (let i = 0; i < path.length; i++) {
    const key = path[i], last = i === path.length - 1;
    const here = formatPath(path.slice(0, i));
    if (typeof key === 'number') {
      if (!Array.isArray(node)) return `${here} is not an array in the file`;
      if (key >= node.length) return `${here} has ${node.length} item${node.length === 1 ? '' : 's'} in the file, so [${key}] does not exist`;
    } else if (!node || typeof node !== 'object' || Array.isArray(node)) {
      return `${here} is not an object in the file`;
    }
    const obj = node as Record<string | number, unknown>;
    if (last) { obj[key] = value; return undefined; }
    if (obj[key] === undefined && typeof key === 'string' && typeof path[i + 1] === 'string') obj[key] = {};
    if (obj[key] === undefined) return `${formatPath(path.slice(0, i + 1))} is not in the file`;
    node = obj[key];
  }
  return undefined;
}

/** A point's values as short text: `vms[0].shares=1000, policy.tau=0.75`. */
export function pointLabel(point: SweepPoint): string {
  const parts = Object.entries(point.params).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`);
  return parts.length ? parts.join(', ') : '(the file as written)';
}

