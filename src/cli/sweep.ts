// `memvisor run` with several files, a sweep, --jobs or --shard. Steps:
//   plan: read every file, spell each sweep out into runs (point × seed) and validate each
//         point as a scenario; check every output folder (nothing runs if anything fails)
//   slice: with --shard K/N keep runs j ≡ K−1 (mod N) of the list of all runs (files in
//         command-line order, points in plan order, seeds in order): a fixed, interleaved slice
//   run:  on the worker pool (pool.ts), writing each run's report as it finishes into the
//         sweep's staging folder (runs/<point>-seed<seed>/), or a plain file's report in place
//   sum:  per sweep, sweep.json + points.csv + runs.csv + index.html (mean and 95 % Student-t
//         interval over the seeds per point), then the staging folder replaces out/<name>.
// A plain file (no "sweep") writes its report exactly as a single `memvisor run` does; with
// --shard every file is a sweep (a plain file: one point, one seed), so `memvisor merge`
// (merge.ts) can join the slices.

import { join, resolve } from 'node:path';
import { getExperiment, parseExperimentScenario, scenarioConfig, type ParsedScenario } from '../experiment/registry.js';
import { ScenarioError, seedField } from '../scenario/schema.js';
import { parseSweep, planSweep, pointLabel, pointScenario, type SweepPlan, type SweepSpec } from '../scenario/sweep.js';
import { checkOutputDir, commitDirectory, stageDirectory, type StagedDirectory } from '../report/write.js';
import { renderSweepFiles } from '../report/sweep-html.js';
import { meanCiText, runKey, sweepDoc, variedMetrics, type SweepDoc, type SweepRunRecord } from '../report/sweep.js';
import type { ExperimentResult } from '../report/result.js';
import { table } from '../report/table.js';
import { runPool, defaultJobs } from './pool.js';
import type { RunTask } from './run-task.js';
import { defaultScenarioInput, progressBar, readScenarioFile, runCommand, summaryText, validateCommand, type RunCliOptions } from './run.js';

export interface RunFilesOptions extends RunCliOptions {
  /** Runs at once (worker threads); default: the available cores. */
  jobs?: number;
  /** "K/N": run slice K of N. */
  shard?: string;
}

export interface Shard { index: number; count: number }

/** A file, planned: its output folder and its runs. */
interface FilePlan {
  source: string;
  name: string;
  kind: string;
  title: string;
  description?: string;
  out: string;
  /** Present for a sweep (or any file under --shard). */
  sweep?: { spec: SweepSpec; plan: SweepPlan; parsed: ParsedScenario };
  runs: PlannedRun[];
}

interface PlannedRun {
  file: FilePlan;
  task: RunTask;
  point?: string;
  seed: number;
  /** runs/<point>-seed<seed>, inside the sweep's folder. */
  dir?: string;
}

/** "2/5" → { index: 2, count: 5 }; 1 ≤ K ≤ N. */
export function parseShard(text: string): Shard {
  const m = /^\s*(\d+)\s*\/\s*(\d+)\s*$/.exec(text);
  const index = m ? Number(m[1]) : NaN, count = m ? Number(m[2]) : NaN;
  if (!m || count < 1 || index < 1 || index > count) {
    throw new Error(`--shard ${text}: expected K/N with 1 ≤ K ≤ N, e.g. --shard 1/4 (Slurm: --shard $((SLURM_ARRAY_TASK_ID+1))/$SLURM_ARRAY_TASK_COUNT)`);
  }
  return { index, count };
}

/** Runs j with j mod N = K − 1: the same slice on every machine, interleaved so slices take alike time. */
export function shardOf<T>(items: readonly T[], shard: Shard | undefined): T[] {
  return shard ? items.filter((_, j) => j % shard.count === shard.index - 1) : [...items];
}

/** Reads and plans every file; throws before anything runs if one is bad. */
export function planFiles(inputs: readonly { json: unknown; source: string }[], opts: RunFilesOptions, shard?: Shard): FilePlan[] {
  const plans = inputs.map(({ json, source }) => planFile(json, source, opts, shard !== undefined, inputs.length > 1));
  const seen = new Map<string, string>();
  for (const p of plans) {
    const other = seen.get(p.out);
    if (other) throw new Error(`${other} and ${p.source} would both write ${p.out}: give the scenarios different names`);
    seen.set(p.out, p.source);
    checkOutputDir(p.out, p.out);
  }
  return plans;
}

function planFile(json: unknown, source: string, opts: RunFilesOptions, forceSweep: boolean, several: boolean): FilePlan {
  if (!json || typeof json !== 'object' || Array.isArray(json)) return planPlain(json, source, opts, several); // its error names the file
  let obj = json as Record<string, unknown>;
  const spec = parseSweep(obj, source);
  if (opts.seed !== undefined) {
    if (spec?.seeds !== undefined) throw new ScenarioError(source, ['--seed: the file\'s sweep lists its seeds (sweep.seeds); edit them instead']);
    const r = seedField.safeParse(opts.seed);
    if (!r.success) throw new ScenarioError('--seed', [`seed: ${r.error.issues[0].message}`]);
    obj = { ...obj, seed: r.data };
  }
  if (!spec && !forceSweep) return planPlain(obj, source, opts, several);
  const s: SweepSpec = spec ?? { vary: {} };
  const plan = planSweep(obj, s, source);
  const parsed = validatePoints(plan, source);
  const file: FilePlan = {
    source, name: parsed.header.name, kind: parsed.experiment.kind, title: parsed.experiment.title,
    ...(parsed.header.description !== undefined ? { description: parsed.header.description } : {}),
    out: outDir(parsed.header.name, opts, several), sweep: { spec: s, plan, parsed }, runs: [],
  };
  for (const point of plan.points) {
    for (const seed of plan.seeds) {
      const where = `${source} (sweep point ${point.id}, seed ${seed})`;
      file.runs.push({ file, point: point.id, seed, dir: `runs/${point.id}-seed${seed}`,
        task: { json: pointScenario(plan, point, seed, source), source: where, stats: !!opts.stats } });
    }
  }
  return file;
}

function planPlain(json: unknown, source: string, opts: RunFilesOptions, several: boolean): FilePlan {
  const parsed = parseExperimentScenario(json, source);
  const file: FilePlan = {
    source, name: parsed.header.name, kind: parsed.experiment.kind, title: parsed.experiment.title,
    out: outDir(parsed.header.name, opts, several), runs: [],
  };
  file.runs.push({ file, seed: parsed.header.seed, task: { json: json as Record<string, unknown>, source, stats: !!opts.stats } });
  return file;
}

/**
 * Every point parsed as a scenario (with the first seed). A problem every point has is the
 * file's and is listed once; the others name their point (the first three bad points).
 */
function validatePoints(plan: SweepPlan, source: string): ParsedScenario {
  const failures: { label: string; problems: string[] }[] = [];
  let first: ParsedScenario | undefined;
  for (const point of plan.points) {
    try {
      const p = parseExperimentScenario(pointScenario(plan, point, plan.seeds[0], source), source);
      first ??= p;
    } catch (e) {
      if (!(e instanceof ScenarioError)) throw e;
      failures.push({ label: `sweep point ${point.id} (${pointLabel(point)})`, problems: e.problems });
    }
  }
  if (!failures.length) return first!;
  const everywhere = failures.length === plan.points.length && failures.length > 1
    ? failures[0].problems.filter((l) => failures.every((f) => f.problems.includes(l))) : [];
  const own = failures.map((f) => ({ ...f, problems: f.problems.filter((l) => !everywhere.includes(l)) })).filter((f) => f.problems.length);
  const lines = [...everywhere, ...own.slice(0, 3).flatMap((f) => f.problems.map((l) => `${f.label}: ${l}`))];
  if (own.length > 3) lines.push(`… and ${own.length - 3} more points with problems`);
  throw new ScenarioError(source, lines);
}

function outDir(name: string, opts: RunFilesOptions, several: boolean): string {
  if (several) return resolve(opts.out ?? 'out', name);
  return resolve(opts.out ?? join('out', name));
}

/**
 * `memvisor run [files...]`: one plain file (or none: the default scenario) runs as it always
 * has (run.ts); several files, a sweep or --shard go through runFilesCommand.
 */
export async function runCli(files: readonly string[], opts: RunFilesOptions = {}): Promise<void> {
  const inputs = files.length ? files.map((f) => ({ json: readScenarioFile(f), source: f })) : [defaultScenarioInput()];
  const one = inputs[0].json;
  const isSweep = (j: unknown) => !!j && typeof j === 'object' && 'sweep' in j;
  if (inputs.length === 1 && opts.shard === undefined && !isSweep(one)) {
    await runCommand(files[0], opts);
    return;
  }
  await runFilesCommand(inputs, opts);
}

/**
 * `memvisor validate <file>`: a plain file as before (run.ts); a sweep has every point checked
 * as `run` checks it, then prints the first point's scenario as it will run and the points.
 */
export function validateCli(path: string): void {
  const json = readScenarioFile(path);
  if (!json || typeof json !== 'object' || !('sweep' in json)) { validateCommand(path); return; }
  const plan = planSweep(json as Record<string, unknown>, parseSweep(json as Record<string, unknown>, path)!, path);
  const first = validatePoints(plan, path);
  const runs = plan.points.length * plan.seeds.length;
  console.log(JSON.stringify(scenarioConfig(first), null, 2));
  console.log(`\nsweep: ${plan.points.length} point${plan.points.length === 1 ? '' : 's'} × ${plan.seeds.length} seed${plan.seeds.length === 1 ? '' : 's'} (${plan.seeds.join(', ')}) = ${runs} run${runs === 1 ? '' : 's'}; above: point ${plan.points[0].id}, seed ${plan.seeds[0]}`);
  for (const p of plan.points) console.log(`  ${p.id}  ${pointLabel(p)}`);
}

export interface FilesOutcome {
  /** Per file: the plain result or the sweep document. */
  results: ({ kind: 'run'; result: ExperimentResult; file: FilePlan } | { kind: 'sweep'; doc: SweepDoc; file: FilePlan })[];
}

/** Plans, runs (in parallel), writes; prints summaries or JSON. */
export async function runFilesCommand(inputs: readonly { json: unknown; source: string }[], opts: RunFilesOptions = {}): Promise<FilesOutcome> {
  const jobs = opts.jobs ?? defaultJobs();
  const shard = opts.shard !== undefined ? parseShard(opts.shard) : undefined;
  const files = planFiles(inputs, opts, shard);
  const selected = shardOf(files.flatMap((f) => f.runs), shard);
  const stages = new Map<FilePlan, StagedDirectory>();
  const records = new Map<FilePlan, Map<string, SweepRunRecord>>();
  const plain = new Map<FilePlan, ExperimentResult>();
  const bar = progressBar(!opts.quiet && !opts.json);
  const warn = (m: string) => { if (!opts.quiet) process.stderr.write(`warning: ${m}\n`); };
  const abortAll = () => { for (const s of stages.values()) s.abort(); };
  const onSigint = () => { abortAll(); bar.stop(); process.exit(130); };
  process.once('SIGINT', onSigint);
  try {
    for (const f of files) if (f.sweep) { stages.set(f, stageDirectory(f.out)); records.set(f, new Map()); }
    await runPool(selected.map((r) => r.task), jobs, {
      progress: (fraction, finished) => bar.update(fraction, `${finished}/${selected.length} runs`),
      done: (i, outcome) => {
        const run = selected[i];
        for (const w of outcome.warnings) warn(`${run.task.source}: ${w}`);
        const stage = stages.get(run.file);
        if (stage) {
          for (const [name, text] of outcome.files) stage.write(`${run.dir}/${name}`, text);
          records.get(run.file)!.set(runKey(run.point!, run.seed), { seed: run.seed, dir: run.dir!, summary: outcome.summary });
        } else {
          commitDirectory(run.file.out, new Map(outcome.files));
          plain.set(run.file, JSON.parse(outcome.files.find(([n]) => n === 'result.json')![1]));
        }
      },
    });
    bar.stop();
    const out: FilesOutcome = { results: [] };
    for (const f of files) {
      if (!f.sweep) {
        const result = plain.get(f);
        if (result) out.results.push({ kind: 'run', result, file: f });
        continue;
      }
      const doc = sweepDoc({
        scenario: f.name, kind: f.kind, title: f.title, ...(f.description !== undefined ? { description: f.description } : {}),
        base: f.sweep.plan.base, sweep: f.sweep.spec as Record<string, unknown>, seeds: f.sweep.plan.seeds,
        points: f.sweep.plan.points.map((p) => ({ id: p.id, label: pointLabel(p), params: p.params })),
        runs: records.get(f)!, ...(shard ? { shard } : {}),
      });
      const stage = stages.get(f)!;
      for (const [name, text] of await renderSweepFiles(doc, { onWarning: warn })) stage.write(name, text);
      stage.commit();
      out.results.push({ kind: 'sweep', doc, file: f });
    }
    printOutcome(out, opts, selected.length, jobs);
    return out;
  } catch (e) {
    abortAll();
    throw e;
  } finally {
    bar.stop();
    process.removeListener('SIGINT', onSigint);
  }
}

function printOutcome(out: FilesOutcome, opts: RunFilesOptions, runs: number, jobs: number): void {
  if (opts.json) {
    const docs = out.results.map((r) => (r.kind === 'run' ? r.result : r.doc));
    console.log(JSON.stringify(docs.length === 1 ? docs[0] : docs, null, 2));
    return;
  }
  const blocks = out.results.map((r) => r.kind === 'run'
    ? `${getExperiment(r.file.kind)?.formatSummary?.(r.result) ?? summaryText(r.result)}\n\nreport: ${join(r.file.out, 'index.html')}`
    : `${sweepSummaryText(r.doc)}\n\nreport: ${join(r.file.out, 'index.html')}`);
  console.log(blocks.join('\n\n'));
  if (!opts.quiet && (runs > 1 || opts.shard)) console.log(`\n${runs} run${runs === 1 ? '' : 's'}${opts.shard ? ` (shard ${opts.shard})` : ''}, ${Math.min(jobs, Math.max(runs, 1))} at a time`);
}

/** The sweep's points as a table: values and the first figures' mean ± 95 % half-width. */
export function sweepSummaryText(doc: SweepDoc, maxMetrics = 4): string {
  const metrics = variedMetrics(doc).slice(0, maxMetrics);
  const head = [`Sweep: ${doc.title}`,
    `scenario ${doc.scenario}, ${doc.points.length} point${doc.points.length === 1 ? '' : 's'} × seeds ${doc.seeds.join(', ')}${doc.shard ? `, shard ${doc.shard.index}/${doc.shard.count}` : ''}`,
    'cells: mean ± half-width of the 95 % Student-t interval over the seeds'];
  const rows = doc.points.map((p) => [p.id, p.label, String(p.runs.length), ...metrics.map((m) => (p.stats[m] ? meanCiText(p.stats[m]) : ''))]);
  return `${head.join('\n')}\n\n${table(['point', 'values', 'runs', ...metrics], rows)}`;
}
