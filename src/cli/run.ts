// `memvisor run`, `memvisor validate` and `memvisor experiments`: the scenario plumbing
// of the CLI. Every scenario kind goes through the same path:
//   read JSON → validate against the registry (nothing is written if that fails)
//   → check the output directory may be replaced → run with a progress bar on stderr
//   → write the report atomically → print a summary and the path of index.html.
// The progress bar is drawn only on an interactive stderr outside CI and without --quiet.
// Ctrl-C keeps its default meaning (the process ends at once); since the report is only
// written after the run, an interrupted run leaves nothing behind.

import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import cliProgress from 'cli-progress';
import '../experiment/catalogue.js';
import { describeFields } from '../scenario/fields.js';
import { scenarioHeader } from '../scenario/schema.js';
import {
  getDefaultScenario, getExperiment, listExperiments, parseExperimentScenario, scenarioConfig, type ParsedScenario,
} from '../experiment/registry.js';
import { runExperiment, withSeed } from '../experiment/runner.js';
import { checkOutputDir, writeReport, type WrittenReport } from '../report/write.js';
import type { ExperimentResult } from '../report/result.js';
import { table } from '../report/table.js';
import { collectStats, formatStats } from '../hypervisor/monitor/stats.js';

/** The one default scenario: what `memvisor run` runs without an argument (Figure 7, scaled down). */
export const DEFAULT_SCENARIO = fileURLToPath(new URL('../../scenarios/fig7-idle-tax.json', import.meta.url));

export interface RunCliOptions {
  /** Report directory (default out/<scenario name>). */
  out?: string;
  seed?: number;
  quiet?: boolean;
  /** Print the result as JSON on stdout instead of the summary. */
  json?: boolean;
  /** Also write stats.txt: every counter of every VM and vCPU, described (gem5 style). */
  stats?: boolean;
}

/** Reads and JSON-parses a scenario file, with errors that name the file. */
export function readScenarioFile(path: string): unknown {
  let text: string;
  try { text = readFileSync(path, 'utf8'); } catch (e) {
    throw new Error(`cannot read scenario ${path}: ${(e as Error).message}`);
  }
  try { return JSON.parse(text); } catch (e) {
    throw new Error(`${path} is not valid JSON: ${jsonErrorWhere(text, (e as Error).message)}`);
  }
}

/**
 * V8's JSON.parse message with the place as line:column (1-based) instead of a character
 * offset: `line 3, column 14: Expected ',' or '}' after property value`. A message without a
 * position (the input ended early) points after the last character.
 */
export function jsonErrorWhere(text: string, message: string): string {
  const m = / in JSON at position (\d+)/.exec(message);
  const at = m ? Number(m[1]) : /Unexpected end of JSON input/.test(message) ? text.length : firstBadChar(text);
  const before = text.slice(0, at).split('\n');
  const what = message.replace(/ in JSON at position \d+.*$/s, '').replace(/, ".*" is not valid JSON$/s, '').replace(/^Unexpected end of JSON input$/, 'the file ends early');
  return `line ${before.length}, column ${before.at(-1)!.length + 1}: ${what}`;
}

/** Reads and validates a scenario file of any registered kind. */
export function loadScenario(path: string): ParsedScenario {
  return parseExperimentScenario(readScenarioFile(path), path, { dir: dirname(resolve(path)) });
}

/** The default scenario file, unless a library user set another with setDefaultScenario. */
function loadDefaultScenario(): ParsedScenario {
  const { json, source } = defaultScenarioInput();
  return parseExperimentScenario(json, source);
}

/** The default scenario's JSON and how errors name it. */
export function defaultScenarioInput(): { json: unknown; source: string } {
  const json = getDefaultScenario();
  if (json !== undefined) return { json, source: 'the default scenario' };
  return { json: readScenarioFile(DEFAULT_SCENARIO), source: DEFAULT_SCENARIO };
}

export async function runCommand(file: string | undefined, opts: RunCliOptions = {}): Promise<WrittenReport> {
  const parsed = withSeed(file === undefined ? loadDefaultScenario() : loadScenario(file), opts.seed);
  const out = resolve(opts.out ?? join('out', parsed.header.name));
  checkOutputDir(out, opts.out ?? out); // fail before a long run, not after
  const bar = progressBar(!opts.quiet);
  let result: ExperimentResult;
  const stats = opts.stats ? collectStats() : undefined;
  try {
    result = await runExperiment(parsed, { progress: bar.update });
  } catch (e) {
    // Validation should have caught it; if not, still say which file and that nothing was written.
    throw new Error(`running ${parsed.source} failed (nothing was written): ${(e as Error).message}`, { cause: e });
  } finally {
    bar.stop();
  }
  const statsLines = stats?.finish();
  const written = await writeReport(out, result, {
    onWarning: opts.quiet ? undefined : (m) => process.stderr.write(`warning: ${m}\n`),
    extraFiles: statsLines ? new Map([['stats.txt', formatStats(statsLines)]]) : undefined,
  });
  if (opts.json) {
    console.log(JSON.stringify(result, null, 2));
  } else {
    console.log(parsed.experiment.formatSummary?.(result) ?? summaryText(result));
    console.log(`\nreport: ${written.index}`);
    if (statsLines) console.log(`stats: ${join(written.dir, 'stats.txt')} (${statsLines.length} counters)`);
  }
  return written;
}

export function validateCommand(file: string): void {
  console.log(JSON.stringify(scenarioConfig(loadScenario(file)), null, 2));
}

export function experimentsCommand(kind?: string): void {
  if (kind !== undefined) { console.log(kindReference(kind)); return; }
  const list = listExperiments();
  const w = Math.max(4, ...list.map((e) => e.kind.length));
  console.log(list.length ? ['kind'.padEnd(w) + '  title', ...list.map((e) => `${e.kind.padEnd(w)}  ${e.title}`)].join('\n')
    : 'no experiments registered');
}

/**
 * Where JSON.parse fails when its message gives no position (a bad literal such as `tru}`):
 * the shortest prefix that fails for a reason other than ending early ends at the bad character.
 */
function firstBadChar(text: string): number {
  const failsInside = (k: number): boolean => {
    try { JSON.parse(text.slice(0, k)); return false; } catch (e) {
      const msg = (e as Error).message;
      const pos = / at position (\d+)/.exec(msg);
      return !/Unexpected end of JSON input/.test(msg) && !(pos && Number(pos[1]) >= k);
    }
  };
  let lo = 0, hi = text.length; // failsInside(hi) holds for an invalid text
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (failsInside(mid)) hi = mid; else lo = mid + 1;
  }
  return Math.max(0, lo - 1);
}

/** `memvisor experiments <kind>`: every field of the kind with type, unit, range and default. */
export function kindReference(kind: string): string {
  const def = getExperiment(kind);
  if (!def) {
    throw new Error(`unknown experiment kind "${kind}" (known kinds: ${listExperiments().map((e) => e.kind).join(', ')})`);
  }
  const header = describeFields(scenarioHeader).map((f) => f.path === 'kind' ? { ...f, type: JSON.stringify(kind) } : f);
  const fields = [...header, ...describeFields(def.schema, def.defaults as Record<string, unknown>)];
  const rows = fields.map((f) => [f.path, f.type, f.unit, f.range, f.default || (f.type.startsWith('array of objects') ? '' : 'required'), f.description]);
  return [
    `${def.kind}: ${def.title}`,
    ...(def.description ? [def.description] : []),
    '',
    leftTable(['field', 'type', 'unit', 'range', 'default', 'description'], rows),
    '',
    'Sizes take a byte count or a string such as "64KiB", "2MiB", "1GiB". Seconds are simulated (guest) time.',
    'The JSON Schema of every kind is schema/scenario.schema.json in the package ("$schema" in a scenario file).',
  ].join('\n');
}

/** Columns padded on the right (text reads better left-aligned than table()'s numbers). */
function leftTable(head: string[], rows: string[][]): string {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((c, i) => c.padEnd(w[i])).join('  ').trimEnd();
  return [line(head), line(w.map((n) => '-'.repeat(n))), ...rows.map(line)].join('\n');
}

/** Title, scenario and seed, then the summary as a two-column table. */
export function summaryText(r: ExperimentResult): string {
  const head = `${r.title}\nscenario ${r.scenario}, seed ${r.seed}`;
  const rows = Object.entries(r.summary).map(([k, v]) => [k, typeof v === 'number' ? fmtNumber(v) : v]);
  return rows.length ? `${head}\n\n${table(['', ''], rows).split('\n').slice(2).join('\n')}` : head;
}

/** Integers and |v| >= 1000 as whole numbers, others to 4 significant digits (trailing fraction zeros dropped). */
export function fmtNumber(v: number): string {
  if (Number.isInteger(v) || Math.abs(v) >= 1000) return String(Math.round(v));
  const s = v.toPrecision(4);
  return s.includes('.') && !s.includes('e') ? s.replace(/0+$/, '').replace(/\.$/, '') : s;
}

export interface Bar { update(fraction: number, label?: string): void; stop(): void }

/** Whether to draw a progress bar: wanted, and stderr is an interactive terminal outside CI. */
export function progressWanted(wanted: boolean, stream: { isTTY?: boolean } = process.stderr): boolean {
  return wanted && stream.isTTY === true && !process.env.CI;
}

/**
 * A progress bar on stderr (nothing unless progressWanted): percentage, the experiment's label,
 * and the host's wall-clock time so far and left. Labels that count seconds count simulated
 * (guest) seconds; the times after "wall" are real.
 */
export function progressBar(wanted: boolean): Bar {
  if (!progressWanted(wanted)) return { update() {}, stop() {} };
  const bar = new cliProgress.SingleBar({
    stream: process.stderr,
    format: ' {bar} {percentage}% {label} | wall {duration_formatted}, ETA {eta_formatted}',
    etaBuffer: 20,
    barsize: 30,
    hideCursor: true,
    clearOnComplete: true,
  }, cliProgress.Presets.shades_classic);
  let started = false;
  return {
    update(fraction, label) {
      const value = Math.round(fraction * 1000);
      if (!started) { bar.start(1000, value, { label: label ?? '' }); started = true; }
      else bar.update(value, label === undefined ? undefined : { label });
    },
    stop() { if (started) bar.stop(); },
  };
}
