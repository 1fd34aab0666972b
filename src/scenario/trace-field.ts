// A scenario field naming a lackey trace file. The path is resolved against the scenario
// file's folder (the folder parseExperimentScenario is given; the working directory when
// the scenario came from elsewhere) and becomes absolute, so the scenario as run (what
// `validate` prints and result.json records) names the file it read. Validation reads the
// whole trace once, streamed, so a missing file or a bad line is refused before anything
// runs: "runs[0].trace: traces/x.lackey.gz:17: address: "zz" is not a hexadecimal address".

import { z } from 'zod';
import { existsSync, statSync } from 'node:fs';
import { isAbsolute, relative, resolve } from 'node:path';
import { scanTrace, type TraceScan } from '../workload/trace-file.js';

let scenarioDir: string | undefined;
/** The working directory ('/' in a browser, which has no files). */
const cwd = (): string => (typeof process !== 'undefined' && typeof process.cwd === 'function' ? process.cwd() : '/');

/** Runs `fn` (a synchronous parse) with relative trace paths resolved against `dir`. */
export function withScenarioDir<T>(dir: string | undefined, fn: () => T): T {
  const before = scenarioDir;
  scenarioDir = dir;
  try { return fn(); } finally { scenarioDir = before; }
}

/** How a message names a file: relative to the working directory when that is shorter. */
export function shownPath(abs: string): string {
  const rel = relative(cwd(), abs);
  return rel && !rel.startsWith('..') && !isAbsolute(rel) ? rel : abs;
}

/** The trace file field: a path (relative to the scenario file) to a lackey trace, plain or gzip. */
export const traceFileField = z.string().min(1, 'a path to a lackey trace file').transform((p, ctx) => {
  const abs = resolve(scenarioDir ?? cwd(), p);
  const problem = traceProblem(abs);
  if (problem) { ctx.addIssue({ code: z.ZodIssueCode.custom, message: problem }); return z.NEVER; }
  return abs;
}).describe('a valgrind lackey trace (--trace-mem=yes), plain or gzip; relative to the scenario file');

/** Why a trace file cannot be replayed (missing, unreadable, a bad line, no records), or undefined. */
export function traceProblem(abs: string): string | undefined {
  if (!existsSync(abs)) return `trace file ${shownPath(abs)} not found`;
  if (!statSync(abs).isFile()) return `${shownPath(abs)} is not a file`;
  try {
    const s = scanTrace(abs, { name: shownPath(abs) });
    if (s.accesses === 0) return `${shownPath(abs)} has no trace records ("I", " L", " S" or " M" lines)`;
  } catch (e) {
    return (e as Error).message;
  }
  return undefined;
}

/** The counts of a trace that passed traceFileField (read from the cache). */
export function traceScan(abs: string): TraceScan {
  return scanTrace(abs, { name: shownPath(abs) });
}

/**
 * The counts for a cross-field check, or undefined when the field itself was refused (zod
 * still runs an object's refinements then; the field's own problem is already reported).
 */
export function checkedTraceScan(value: unknown): TraceScan | undefined {
  if (typeof value !== 'string' || traceProblem(value) !== undefined) return undefined;
  return traceScan(value);
}
