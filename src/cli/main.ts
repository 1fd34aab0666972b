// The memvisor command line: run / validate / experiments (scenario plumbing in run.ts) and compare.

import { Command, InvalidArgumentError } from 'commander';
import { writeFileSync, renameSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { CompareRow } from '../experiment/compare.js';
import { parseExperimentScenario } from '../experiment/registry.js';
import { runExperiment } from '../experiment/runner.js';
import { compareTable, COMPARE_NOTE } from '../experiment/compare-experiment.js';
import { experimentsCommand, progressBar } from './run.js';
import { checkOutputDir, checkWritableLocation, writeReport } from '../report/write.js';
import { packageInfo } from '../util/package-info.js';
import { serveCommand } from './serve.js';
import { runCli, validateCli } from './sweep.js';
import { mergeCommand } from './merge.js';
import { defaultJobs } from './pool.js';
import { bootCommand } from './boot.js';

export { DEFAULT_SCENARIO, loadScenario, runCommand } from './run.js';

function positiveIntArg(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('expected a whole number of at least 1');
  return n;
}

function intArg(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('expected a non-negative integer');
  return n;
}

/** Writes a file atomically (temp + rename), so a failed run leaves nothing half-written. */
function writeAtomic(path: string, data: string): void {
  writeFileSync(path + '.tmp', data);
  renameSync(path + '.tmp', path);
}

async function runCompare(opts: { accesses: number; seed: number; json?: boolean; out: string }): Promise<void> {
  const out = resolve(opts.out);
  const reportDir = join(out, 'compare');
  checkWritableLocation(out, opts.out);
  checkOutputDir(reportDir, join(opts.out, 'compare')); // before the runs, not after
  const parsed = parseExperimentScenario({ kind: 'compare', name: 'compare', seed: opts.seed, accesses: opts.accesses }, 'memvisor compare');
  const bar = progressBar(!opts.json);
  let result;
  try {
    result = await runExperiment(parsed, { progress: bar.update });
  } finally {
    bar.stop();
  }
  const rows = result.series.runs as unknown as CompareRow[];
  const written = await writeReport(reportDir, result);
  const doc = { seed: opts.seed, accesses: opts.accesses, rows };
  writeAtomic(join(out, 'compare.json'), JSON.stringify(doc, null, 2) + '\n');
  if (opts.json) { console.log(JSON.stringify(doc, null, 2)); return; }
  console.log(`native vs shadow paging vs nested paging (EPT); ${opts.accesses} accesses per run, seed ${opts.seed}\n`);
  console.log(compareTable(rows));
  console.log('\n' + COMPARE_NOTE);
  console.log(`wrote ${join(out, 'compare.json')}`);
  console.log(`report: ${written.index}`);
}

export function program(): Command {
  const p = new Command('memvisor')
    .description('x86-64 guest memory virtualizer on WebAssembly-emulated hardware')
    .version(packageInfo().version, '-V, --version', 'print the memvisor version')
    .showHelpAfterError();
  p.command('run')
    .description('run scenario files of any kind (sweeps too) and write their reports (default: the built-in demonstration)')
    .argument('[scenarios...]', 'scenario JSON files')
    .option('-o, --out <dir>', 'report directory (default: out/<scenario name>; with several files: <dir>/<scenario name>)')
    .option('--seed <n>', 'override the scenario seed', intArg)
    .option('-q, --quiet', 'no progress bar and no warnings')
    .option('--json', 'print the result as JSON instead of the summary')
    .option('--stats', 'also write stats.txt: every counter of every VM and vCPU with a description and unit')
    .option('-j, --jobs <n>', `runs at once, on worker threads (default: the available cores, ${defaultJobs()} here)`, positiveIntArg)
    .option('--shard <K/N>', 'run slice K of N of the runs (join the slices with memvisor merge)')
    .action(async (files: string[], opts) => { await runCli(files, opts); });
  p.command('merge')
    .description('join the folders of a sharded sweep (memvisor run --shard K/N) into the report of the whole sweep')
    .argument('<dirs...>', 'the shards\' output folders')
    .option('-o, --out <dir>', 'report directory (default: out/<scenario name>)')
    .option('-q, --quiet', 'no summary')
    .option('--json', 'print sweep.json instead of the summary')
    .action(async (dirs: string[], opts) => { await mergeCommand(dirs, opts); });
  p.command('compare')
    .description('run the same guest workloads natively, under shadow paging and under EPT')
    .option('-n, --accesses <n>', 'accesses per workload and mode (at least 1)', positiveIntArg, 200_000)
    .option('--seed <n>', 'seed of the access streams', intArg, 1)
    .option('-o, --out <dir>', 'output directory', 'out')
    .option('--json', 'print the results as JSON instead of a table')
    .action(runCompare);
  p.command('validate')
    .description('check a scenario file (every point of a sweep) and print it with defaults filled in')
    .argument('<scenario>', 'scenario JSON file')
    .action(validateCli);
  p.command('boot')
    .description('boot a machine-code kernel (Limine protocol ELF; default: the shipped OS), stream its console, print the counters')
    .argument('[kernel]', 'kernel ELF file')
    .option('--mode <mode>', 'paging: native, shadow or nested', 'nested')
    .option('--memory <size>', 'guest memory, e.g. 64MiB', '64MiB')
    .option('--cmdline <text>', 'kernel command line', '')
    .option('-o, --out <dir>', 'also write result.json and an HTML report here')
    .option('--timeout <t>', 'stop after virtual seconds (10s) or instructions (1e9)', '60s')
    .option('--max-instructions <n>', 'also stop after this many instructions', '2e9')
    .option('--no-checker', 'run without the TLB coherence checker (faster; no stale-use findings)')
    .option('--input <text>', 'serial input queued for the guest (a shell script; \\n separates lines)')
    .option('--balloon-target <size>', 'host balloon target from the start, e.g. 16MiB')
    .option('-q, --quiet', 'console only, no summary')
    .action(async (kernel: string | undefined, opts) => { await bootCommand(kernel, opts); });
  p.command('experiments')
    .description('list the scenario kinds this build can run; with a kind, every field of its scenario files')
    .argument('[kind]', 'a scenario kind, e.g. translation')
    .action((kind?: string) => experimentsCommand(kind));
  p.command('serve')
    .description('serve the browser page (walk explorer, TLB view, experiments) on localhost')
    .option('-p, --port <n>', 'port', intArg, 5173)
    .option('--build', 'rebuild web/dist first')
    .action(serveCommand);
  return p;
}

/** A closed pipe (`memvisor compare | head -2`) ends the command quietly, as for any Unix tool. */
const guarded = new WeakSet<NodeJS.WriteStream>();
function exitOnClosedPipe(stream: NodeJS.WriteStream): void {
  if (guarded.has(stream)) return;
  guarded.add(stream);
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw e;
  });
}

export async function main(argv = process.argv): Promise<void> {
  exitOnClosedPipe(process.stdout);
  exitOnClosedPipe(process.stderr);
  try {
    await program().parseAsync(argv);
  } catch (e) {
    console.error(`memvisor: ${(e as Error).message}`);
    process.exitCode = 1;
  }
}
