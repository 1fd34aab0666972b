// One run of `memvisor run` with several files or a sweep: parse the scenario JSON, run it,
// render its report in memory. The same function runs in the main thread (--jobs 1) and in
// each worker thread (sweep-worker.ts), so a run gives the same files wherever it ran.
// Everything here is plain data, as it crosses postMessage.

import '../experiment/catalogue.js';
import { parseExperimentScenario } from '../experiment/registry.js';
import { runExperiment } from '../experiment/runner.js';
import { renderReport } from '../report/write.js';
import type { Cell } from '../report/result.js';
import { collectStats, formatStats } from '../hypervisor/monitor/stats.js';

export interface RunTask {
  /** The scenario of this one run (a sweep point with its seed set), no "sweep" field. */
  json: Record<string, unknown>;
  /** Where it came from, for error messages: `file.json (sweep point p01, seed 3)`. */
  source: string;
  /** Also write stats.txt. */
  stats: boolean;
}

export interface RunOutcome {
  /** The report's files, name → text, in write order. */
  files: [string, string][];
  summary: Record<string, Cell>;
  title: string;
  description?: string;
  warnings: string[];
}

export async function executeRun(task: RunTask, progress: (fraction: number) => void = () => {}): Promise<RunOutcome> {
  const parsed = parseExperimentScenario(task.json, task.source);
  const stats = task.stats ? collectStats() : undefined;
  let result;
  try {
    result = await runExperiment(parsed, { progress });
  } catch (e) {
    stats?.finish();
    throw new Error(`running ${task.source} failed (nothing was written): ${(e as Error).message}`, { cause: e });
  }
  const statsLines = stats?.finish();
  const warnings: string[] = [];
  const files = await renderReport(result, {
    onWarning: (m) => warnings.push(m),
    extraFiles: statsLines ? new Map([['stats.txt', formatStats(statsLines)]]) : undefined,
  });
  return {
    files: [...files], summary: result.summary, title: result.title,
    ...(result.description !== undefined ? { description: result.description } : {}),
    warnings,
  };
}
