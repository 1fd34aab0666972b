// Writing a report directory, all or nothing.
//
//   <dir>/result.json    the ExperimentResult (2-space JSON)
//   <dir>/<series>.csv   one per series
//   <dir>/<plot id>.svg  one per plot
//   <dir>/index.html     summary, plots inline beside the paper's paragraphs, links
//
// renderReport builds every file in memory first (rendering is where things fail), then
// commitDirectory writes them into a fresh temp dir beside the target and renames it into
// place. An existing target is moved aside only once the new tree is complete, and put back
// if the final rename fails, so a reader sees the old report or the new one, never a mix.
// An existing target is replaced only if it looks like a report (has result.json) or is
// empty: `--out ~` must not delete a home directory.
// The same result gives byte-identical files: no timestamps unless passed in.

import { randomBytes } from 'node:crypto';
import { accessSync, constants, existsSync, lstatSync, mkdirSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { toCsv } from './csv.js';
import { renderHtml, type HtmlOptions } from './html.js';
import type { RenderOptions } from './render.js';
import { validateResult, type ExperimentResult } from './result.js';

export interface WriteOptions extends RenderOptions, HtmlOptions {
  /** More files for the report (name → text), e.g. stats.txt; written with the rest, all or nothing. */
  extraFiles?: ReadonlyMap<string, string>;
}

export interface WrittenReport {
  dir: string;
  /** Absolute path of index.html. */
  index: string;
  /** File names written, relative to dir, in write order. */
  files: string[];
}

/** Every file of the report, by name, in a fixed order. Validates the result first. */
export async function renderReport(result: ExperimentResult, opts: WriteOptions = {}): Promise<Map<string, string>> {
  const r = validateResult(result);
  const files = new Map<string, string>();
  files.set('result.json', JSON.stringify(r, null, 2) + '\n');
  const csvs = new Map<string, string>();
  for (const [key, rows] of Object.entries(r.series)) {
    csvs.set(key, `${key}.csv`);
    files.set(`${key}.csv`, toCsv(rows));
  }
  const svgs = new Map<string, string>();
  // Loaded on first use: vega takes ~0.7 s to import, which `validate` and `compare` need not pay.
  const { renderPlotSvg } = await import('./render.js');
  for (const p of r.plots) {
    const svg = await renderPlotSvg(p, r.series, opts);
    svgs.set(p.id, svg);
    files.set(`${p.id}.svg`, svg.endsWith('\n') ? svg : svg + '\n');
  }
  files.set('index.html', renderHtml(r, svgs, csvs, opts));
  for (const [name, text] of opts.extraFiles ?? []) {
    if (files.has(name)) throw new Error(`extra report file ${name} would replace one the report writes`);
    files.set(name, text);
  }
  return files;
}

/** Renders and writes the report into dir atomically; nothing is written if anything fails. */
export async function writeReport(dir: string, result: ExperimentResult, opts: WriteOptions = {}): Promise<WrittenReport> {
  const target = resolve(dir);
  checkReplaceable(target);
  const files = await renderReport(result, opts);
  commitDirectory(target, files);
  return { dir: target, index: join(target, 'index.html'), files: [...files.keys()] };
}

/** Throws unless dir is absent, empty, or a previous report (holds result.json, or sweep.json for a sweep). */
export function checkReplaceable(dir: string): void {
  if (!existsSync(dir)) return;
  if (!lstatSync(dir).isDirectory()) throw new Error(`${dir} exists and is not a directory`);
  if (readdirSync(dir).length > 0 && !existsSync(join(dir, 'result.json')) && !existsSync(join(dir, 'sweep.json'))) {
    throw new Error(`refusing to replace ${dir}: it is not empty and holds no result.json (not a report directory)`);
  }
}

/**
 * Throws unless a report can be written at dir: it is replaceable (see checkReplaceable), the
 * nearest existing folder above it is a writable directory, and an existing dir is writable
 * (its old files must be removed). `label` is how the user named it (their --out).
 * Called before a run, so a bad --out fails in a second rather than after the simulation.
 */
export function checkOutputDir(dir: string, label = dir): void {
  checkReplaceable(resolve(dir));
  checkWritableLocation(dir, label);
}

/** Throws unless a folder can be made (or written) at dir; label is how the user named it. */
export function checkWritableLocation(dir: string, label = dir): void {
  const target = resolve(dir);
  let above = dirname(target);
  while (!existsSync(above)) above = dirname(above);
  if (!statSync(above).isDirectory()) throw new Error(`cannot write to ${label}: ${above} is a file, not a folder`);
  if (!writable(above)) throw new Error(`cannot write to ${label}: ${above} is not writable`);
  if (existsSync(target) && !lstatSync(target).isDirectory()) throw new Error(`cannot write to ${label}: it is a file, not a folder`);
  if (existsSync(target) && !writable(target)) {
    throw new Error(`cannot write to ${label}: it is read-only (a previous report there could not be replaced)`);
  }
}

function writable(path: string): boolean {
  try { accessSync(path, constants.W_OK | constants.X_OK); return true; } catch { return false; }
}

/** Writes files (name → content) as the directory dir, replacing a previous report only on success. */
export function commitDirectory(dir: string, files: Map<string, string>): void {
  const target = resolve(dir);
  checkReplaceable(target);
  const parent = dirname(target);
  const madeParent = mkdirSync(parent, { recursive: true });
  let tmp: string | undefined;
  try {
    // mkdirSync, unlike mkdtempSync (0700), gives the report the usual umask permissions.
    const dir = join(parent, `.${basename(target)}.tmp-${randomBytes(6).toString('hex')}`);
    mkdirSync(dir);
    tmp = dir;
    for (const [name, text] of files) {
      const path = join(tmp, name);
      if (!path.startsWith(tmp + '/')) throw new Error(`report file name ${JSON.stringify(name)} escapes the report directory`);
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, text);
    }
    swapInto(tmp, target);
    tmp = undefined;
  } catch (e) {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
    if (madeParent) rmSync(madeParent, { recursive: true, force: true });
    throw new Error(`cannot write the report to ${target}: ${(e as Error).message}`, { cause: e });
  }
}

/**
 * A report directory built file by file (a sweep writes each run as it finishes) in a temp
 * folder beside dir, then swapped into place by commit() as commitDirectory does, or removed
 * by abort(). Until commit() a previous report at dir stays untouched.
 */
export interface StagedDirectory {
  /** Writes one file (name relative to the directory, may hold "/"). */
  write(name: string, text: string): void;
  commit(): void;
  abort(): void;
}

export function stageDirectory(dir: string): StagedDirectory {
  const target = resolve(dir);
  checkReplaceable(target);
  const parent = dirname(target);
  const madeParent = mkdirSync(parent, { recursive: true });
  const tmp = join(parent, `.${basename(target)}.tmp-${randomBytes(6).toString('hex')}`);
  mkdirSync(tmp);
  let open = true;
  const abort = () => {
    if (!open) return;
    open = false;
    rmSync(tmp, { recursive: true, force: true });
    if (madeParent) rmSync(madeParent, { recursive: true, force: true });
  };
  return {
    write(name, text) {
      const path = join(tmp, name);
      if (!path.startsWith(tmp + '/')) throw new Error(`report file name ${JSON.stringify(name)} escapes the report directory`);
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, text);
    },
    commit() {
      try {
        checkReplaceable(target);
        swapInto(tmp, target);
        open = false;
      } catch (e) {
        abort();
        throw new Error(`cannot write the report to ${target}: ${(e as Error).message}`, { cause: e });
      }
    },
    abort,
  };
}

/** Renames tmp to target; an existing target is moved aside first and restored if that fails. */
function swapInto(tmp: string, target: string): void {
  if (!existsSync(target)) { renameSync(tmp, target); return; }
  const old = `${tmp}.old`;
  renameSync(target, old);
  try {
    renameSync(tmp, target);
  } catch (e) {
    renameSync(old, target);
    throw e;
  }
  try {
    rmSync(old, { recursive: true, force: true });
  } catch (e) {
    // The old report cannot be removed (a read-only folder): put it back and fail, rather
    // than succeed with a hidden .old folder left behind. The caller removes tmp.
    renameSync(target, tmp);
    renameSync(old, target);
    throw new Error(`the previous report could not be removed (${(e as Error).message}); it was left in place`);
  }
}
