// A user's own program as a workload: lackey trace files in the translation kind
// (runs[].trace) and the host kind (workload { type: "trace" }). Paths are relative to the
// scenario file; validation refuses a missing file, a bad line (file, line, field) and a trace
// that does not fit memory; a run replays exactly the trace's records and pages.
import { describe, it, expect, afterAll } from 'vitest';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync, gzipSync } from 'node:zlib';
import '../../src/experiment/catalogue.js';
import { parseExperimentScenario } from '../../src/experiment/registry.js';
import { runExperiment } from '../../src/experiment/runner.js';
import { loadScenario } from '../../src/cli/run.js';
import { runCli } from '../helpers/cli-bin.js';
import { independentCounts } from '../helpers/trace-counts.js';

const MALLOC = fileURLToPath(new URL('../data/malloc-sum.lackey', import.meta.url));
const SCENARIOS = fileURLToPath(new URL('../../scenarios/', import.meta.url));
const text = readFileSync(MALLOC, 'utf8');
const dir = mkdtempSync(join(tmpdir(), 'memvisor-trace-exp-'));
mkdirSync(join(dir, 'data'));
writeFileSync(join(dir, 'data', 'malloc.lackey.gz'), gzipSync(text));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Ops the replay makes, counted without the replayer: pieces of <= 8 bytes within a page, a modify twice. */
function independentOps(t: string): number {
  let ops = 0;
  for (const line of t.split('\n')) {
    const m = /^(I | L| S| M)\s+([0-9a-f]+),(\d+)$/.exec(line);
    if (!m) continue;
    let a = parseInt(m[2], 16);
    const end = a + Number(m[3]);
    let pieces = 0;
    while (a < end) { a += Math.min(8, end - a, 4096 - (a % 4096)); pieces++; }
    ops += m[1] === ' M' ? 2 * pieces : pieces;
  }
  return ops;
}

const translation = (run: object, memory: number | string = '64MiB') =>
  ({ kind: 'translation', name: 'tr', memory, runs: [{ trace: 'data/malloc.lackey.gz', ...run }] });
const problems = (json: object, d: string | undefined = dir): string => {
  try { parseExperimentScenario(json, 's.json', { dir: d }); return ''; } catch (e) { return (e as Error).message; }
};

describe('trace files in translation scenarios', () => {
  it('replays exactly the trace: records by kind, distinct pages and ops match an independent count', async () => {
    const exp = independentCounts(text);
    const p = parseExperimentScenario(translation({ pageSize: '4K' }), 's.json', { dir });
    expect((p.params as { runs: { trace: string }[] }).runs[0].trace).toBe(join(dir, 'data', 'malloc.lackey.gz'));
    const r = await runExperiment(p);
    const row = r.series.runs[0];
    expect(row).toMatchObject({ pattern: 'trace', traceRecords: exp.accesses, traceFetches: exp.I, traceLoads: exp.L,
      traceStores: exp.S, traceModifies: exp.M, tracePages: exp.pages, workingSet: exp.pages * 4096 });
    expect(row.accesses).toBe(independentOps(text));
    // Every distinct page is walked at least once (its first touch misses every TLB).
    expect(Math.round(Number(row.walksPer1000) * Number(row.accesses) / 1000)).toBeGreaterThanOrEqual(exp.pages);
  });

  it('resolves the path against the scenario file, whatever the working directory', () => {
    const file = join(dir, 's.json');
    writeFileSync(file, JSON.stringify(translation({})));
    expect((loadScenario(file).params as { runs: { trace: string }[] }).runs[0].trace).toBe(join(dir, 'data', 'malloc.lackey.gz'));
    const cli = runCli(['validate', file], { cwd: '/' });
    expect(cli.status).toBe(0);
    expect(JSON.parse(cli.stdout).runs[0].trace).toBe(join(dir, 'data', 'malloc.lackey.gz'));
    const run = runCli(['run', file, '--out', join(dir, 'out'), '--quiet'], { cwd: '/' });
    expect(run.status).toBe(0);
    expect(run.stdout).toMatch(/^tr: \nseed 1, each trace replayed once\n/);
    expect(run.stdout).toMatch(/^trace malloc\.lackey\.gz 4K 4-level +\d/m);
    // From elsewhere (no folder given: the working directory), the same relative path is not there.
    expect(problems(translation({}), join(dir, 'data'))).toMatch(/runs\[0\]\.trace: trace file .*data\/data\/malloc\.lackey\.gz not found$/);
  });

  it('refuses a bad line naming the file, line and field, and a trace run with pattern fields', () => {
    const lines = text.split('\n');
    lines[2000] = ' L 1fff000778,eight';
    writeFileSync(join(dir, 'data', 'bad.lackey'), lines.join('\n'));
    expect(problems(translation({ trace: 'data/bad.lackey' })))
      .toMatch(/^s\.json is not a valid scenario:\n {2}runs\[0\]\.trace: \S*data\/bad\.lackey:2001: size: "eight" is not a decimal byte count$/);
    writeFileSync(join(dir, 'data', 'empty.lackey'), '==1== Lackey\n# nothing\n');
    expect(problems(translation({ trace: 'data/empty.lackey' }))).toMatch(/runs\[0\]\.trace: \S*empty\.lackey has no trace records/);
    const both = problems(translation({ pattern: 'random', workingSet: '1MiB', writeRatio: 0.5 }));
    expect(both).toContain('runs[0].pattern: not used with "trace" (the trace gives the addresses)');
    expect(both).toContain('runs[0].workingSet: not used with "trace" (the trace gives the addresses)');
    expect(both).toContain('runs[0].writeRatio: not used with "trace" (the trace gives its own loads and stores)');
    expect(problems({ kind: 'translation', name: 'tr', runs: [{ pageSize: '4K' }] })).toContain('runs[0].pattern: required (or "trace": a lackey trace file to replay)');
  });

  it('refuses a trace whose pages do not fit memory, with sizes in MiB/GiB', () => {
    const exp = independentCounts(text);
    expect(exp.pages2M).toBe(5);
    // 2 MiB pages: data from 32 MiB, five 2 MiB pages → 42 MiB.
    expect(problems(translation({ pageSize: '2M' }, '40MiB'))).toBe('s.json is not a valid scenario:\n  runs[0].trace: the trace touches ' +
      '5 distinct 2M pages (10 MiB), which need 42 MiB of memory (data from 32 MiB), but the scenario\'s memory is 40 MiB');
    expect(problems(translation({ pageSize: '2M' }, '42MiB'))).toBe('');
    expect(problems(translation({ pageSize: '1G' }, '512MiB'))).toBe('s.json is not a valid scenario:\n  runs[0].pageSize: a 1 GiB page is larger than ' +
      'the scenario\'s memory (512 MiB)');
    // 1 GiB pages: data from 1 GiB (clear of the page tables); code and heap in one GiB, the stack in another.
    expect(problems(translation({ pageSize: '1G' }, '1GiB'))).toBe('s.json is not a valid scenario:\n  runs[0].trace: the trace touches 2 distinct ' +
      '1G pages (2 GiB), which need 3 GiB of memory (data from 1 GiB), but the scenario\'s memory is 1 GiB');
  });

  it('the shipped trace-mawk scenario replays the recorded program exactly', async () => {
    const p = loadScenario(join(SCENARIOS, 'trace-mawk.json'));
    const params = p.params as { runs: unknown[] };
    const r = await runExperiment({ ...p, params: { ...params, runs: params.runs.slice(0, 1) } });
    const exp = independentCounts(gunzipSync(readFileSync(join(SCENARIOS, 'traces', 'mawk-count.lackey.gz'))).toString('latin1'));
    expect(r.series.runs[0]).toMatchObject({ traceRecords: 600_000, traceFetches: exp.I, traceLoads: exp.L, traceStores: exp.S,
      traceModifies: exp.M, tracePages: exp.pages });
    expect(r.summary['trace mawk-count.lackey.gz 4K 4-level: trace I / L / S / M, pages']).toBe(`${exp.I} / ${exp.L} / ${exp.S} / ${exp.M}, ${exp.pages}`);
  }, 60_000);
});

describe('trace files in host scenarios', () => {
  const host = (workload: object) => ({ kind: 'host', name: 'th', hostMiB: 12, seconds: 1,
    vms: [{ name: 'prog', memMiB: 8, workload: { type: 'trace', file: 'data/malloc.lackey.gz', ...workload } }] });

  it('validates the file like the translation kind, naming the field', () => {
    expect(problems(host({ file: 'data/none.lackey' }))).toMatch(/vms\[0\]\.workload\.file: trace file \S*data\/none\.lackey not found/);
    expect(problems(host({ file: 'data/bad.lackey' }))).toMatch(/vms\[0\]\.workload\.file: \S*bad\.lackey:2001: size:/);
    expect(problems(host({}))).toBe('');
  });

  it('a VM replays the whole trace once (loop false): records by kind and pages as counted independently', async () => {
    const exp = independentCounts(text);
    const r = await runExperiment(parseExperimentScenario(host({ loop: false }), 'h.json', { dir }));
    expect(r.summary['prog: trace records replayed (I / L / S / M)']).toBe(`${exp.accesses} (${exp.I} / ${exp.L} / ${exp.S} / ${exp.M})`);
    expect(r.summary['prog: trace pages touched']).toBe(exp.pages);
    expect(r.summary['prog: trace passes started']).toBe(1);
  }, 60_000);

  it('with loop (the default) the trace starts again when it ends', async () => {
    const exp = independentCounts(text);
    const r = await runExperiment(parseExperimentScenario(host({}), 'h.json', { dir }));
    const passes = Number(r.summary['prog: trace passes started']);
    expect(passes).toBeGreaterThan(1);
    const replayed = Number(String(r.summary['prog: trace records replayed (I / L / S / M)']).split(' ')[0]);
    expect(replayed).toBeGreaterThan((passes - 1) * exp.accesses);
    expect(replayed).toBeLessThanOrEqual(passes * exp.accesses);
    expect(r.summary['prog: trace pages touched']).toBe(exp.pages);
  }, 60_000);
});
