// The memvisor command line.

import { Command, InvalidArgumentError } from 'commander';
import { readFileSync, mkdirSync, writeFileSync, renameSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Machine } from '../core/machine.js';
import { parseScenario, type Scenario } from '../scenario/schema.js';
import { runTranslation, type TranslationResult } from '../experiment/translation.js';
import { table } from './table.js';
import { compare, type CompareRow } from '../experiment/compare.js';

export const DEFAULT_SCENARIO = fileURLToPath(new URL('../../scenarios/tlb-reach.json', import.meta.url));

export function loadScenario(path: string): Scenario {
  let text: string;
  try { text = readFileSync(path, 'utf8'); } catch (e) {
    throw new Error(`cannot read scenario ${path}: ${(e as Error).message}`);
  }
  let json: unknown;
  try { json = JSON.parse(text); } catch (e) {
    throw new Error(`${path} is not valid JSON: ${(e as Error).message}`);
  }
  return parseScenario(json, path);
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

function toCsv(rows: TranslationResult[]): string {
  const keys = Object.keys(rows[0]) as (keyof TranslationResult)[];
  const esc = (v: unknown) => (typeof v === 'string' && /[",\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : String(v));
  return [keys.join(','), ...rows.map((r) => keys.map((k) => esc(r[k])).join(','))].join('\n') + '\n';
}

async function run(file: string | undefined, opts: { out: string; json?: boolean; seed?: number }): Promise<void> {
  const sc = loadScenario(file ?? DEFAULT_SCENARIO);
  if (opts.seed !== undefined) sc.seed = opts.seed;
  const m = await Machine.create({ memoryBytes: sc.memory });
  const results: TranslationResult[] = [];
  for (const [i, r] of sc.runs.entries()) {
    if (!opts.json) process.stderr.write(`\r[${i + 1}/${sc.runs.length}] ${r.pattern} ${r.pageSize}      `);
    results.push(runTranslation(m, sc, r, i));
  }
  if (!opts.json) process.stderr.write('\r' + ' '.repeat(60) + '\r');
  const out = resolve(opts.out);
  mkdirSync(out, { recursive: true });
  const doc = { scenario: sc.name, seed: sc.seed, accessesPerRun: sc.accesses, results };
  writeAtomic(join(out, `${sc.name}.json`), JSON.stringify(doc, null, 2) + '\n');
  writeAtomic(join(out, `${sc.name}.csv`), toCsv(results));
  if (opts.json) { console.log(JSON.stringify(doc, null, 2)); return; }
  console.log(`${sc.name}: ${sc.description ?? ''}\nseed ${sc.seed}, ${sc.accesses} accesses per run\n`);
  console.log(table(
    ['run', 'L1 miss/1k', 'walks/1k', 'refs/walk', 'PSC hits/1k', 'cycles/access', 'sim M acc/s'],
    results.map((r) => [r.label, r.l1MissesPer1000.toFixed(1), r.walksPer1000.toFixed(1), r.refsPerWalk.toFixed(2),
      r.pscHitsPer1000.toFixed(1), r.cyclesPerAccess.toFixed(2), (r.simAccessesPerSec / 1e6).toFixed(1)]),
  ));
  console.log(`\nwrote ${join(out, sc.name + '.json')} and .csv`);
}

async function runCompare(opts: { accesses: number; seed: number; json?: boolean; out: string }): Promise<void> {
  const rows: CompareRow[] = await compare(undefined, opts.accesses, opts.seed, (i, n, label) => {
    if (!opts.json) process.stderr.write(`\r[${i + 1}/${n}] ${label}`.padEnd(60));
  });
  if (!opts.json) process.stderr.write('\r' + ' '.repeat(60) + '\r');
  const out = resolve(opts.out);
  mkdirSync(out, { recursive: true });
  const doc = { seed: opts.seed, accesses: opts.accesses, rows };
  writeAtomic(join(out, 'compare.json'), JSON.stringify(doc, null, 2) + '\n');
  if (opts.json) { console.log(JSON.stringify(doc, null, 2)); return; }
  console.log(`native vs shadow paging vs nested paging (EPT); ${opts.accesses} accesses per run, seed ${opts.seed}\n`);
  console.log(table(
    ['workload', 'mode', 'TLB misses/1k', 'refs/walk', 'exits/1k', 'cycles/access'],
    rows.map((r) => [r.workload, r.mode, r.tlbMissesPer1000.toFixed(1), r.refsPerWalk.toFixed(2),
      r.exitsPer1000.toFixed(2), r.cyclesPerAccess.toFixed(1)]),
  ));
  console.log('\nTLB misses = walks (L2 TLB misses); refs/walk counts guest and EPT references;' +
    '\nexits = shadow faults, CR3/INVLPG intercepts and EPT exits; cycles from the cost model.');
  console.log(`wrote ${join(out, 'compare.json')}`);
}

export function program(): Command {
  const p = new Command('memvisor')
    .description('x86-64 guest memory virtualizer on WebAssembly-emulated hardware')
    .showHelpAfterError();
  p.command('run')
    .description('run a scenario file (default: the built-in TLB-reach demonstration)')
    .argument('[scenario]', 'scenario JSON file')
    .option('-o, --out <dir>', 'output directory', 'out')
    .option('--seed <n>', 'override the scenario seed', intArg)
    .option('--json', 'print the results as JSON instead of a table')
    .action(run);
  p.command('compare')
    .description('run the same guest workloads natively, under shadow paging and under EPT')
    .option('-n, --accesses <n>', 'accesses per workload and mode', intArg, 200_000)
    .option('--seed <n>', 'seed of the access streams', intArg, 1)
    .option('-o, --out <dir>', 'output directory', 'out')
    .option('--json', 'print the results as JSON instead of a table')
    .action(runCompare);
  p.command('validate')
    .description('check a scenario file and print it with defaults filled in')
    .argument('<scenario>', 'scenario JSON file')
    .action((file: string) => { console.log(JSON.stringify(loadScenario(file), null, 2)); });
  return p;
}

export async function main(argv = process.argv): Promise<void> {
  try {
    await program().parseAsync(argv);
  } catch (e) {
    console.error(`memvisor: ${(e as Error).message}`);
    process.exitCode = 1;
  }
}
