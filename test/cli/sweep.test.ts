// Sweeps end to end through the CLI (in this process; --jobs 2 starts real worker threads):
// the same files with --jobs 1 and --jobs 2, shards 1/2 + 2/2 merged equal to the whole run,
// per-point statistics equal to the runs' own figures, and bad sweeps refused before a run.
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../src/cli/main.js';
import { runCli } from '../helpers/cli-bin.js';
import { meanCi95 } from '../../src/util/stats.js';
import type { SweepDoc } from '../../src/report/sweep.js';

/** A tiny overcommitted host: 2 simulated seconds, about a third of a second each. */
const HOST = {
  kind: 'host', name: 'sw', hostMiB: 12, seconds: 2,
  vms: [
    { name: 'web', memMiB: 8, workload: { type: 'throughput', cacheFraction: 0.7, zipfS: 0.9 }, shares: 2000 },
    { name: 'idle', memMiB: 8, workload: { type: 'filler', fraction: 0.9 } },
  ],
  policy: { tau: 0.75, samplePeriod: 1 },
};
const SWEEP = { ...HOST, sweep: { vary: { 'vms[0].shares': [1000, 4000] }, seeds: { from: 1, count: 2 } } };
const PLAIN = { ...HOST, name: 'plain', seed: 5 };

let root: string;
let out: string[];
let err: string[];
beforeAll(() => { root = mkdtempSync(join(tmpdir(), 'memvisor-sweep-')); });
afterAll(() => { rmSync(root, { recursive: true, force: true }); });

async function cli(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  out = []; err = [];
  const log = vi.spyOn(console, 'log').mockImplementation((...a) => { out.push(a.join(' ')); });
  const error = vi.spyOn(console, 'error').mockImplementation((...a) => { err.push(a.join(' ')); });
  process.exitCode = undefined;
  try {
    await main(['node', 'memvisor', ...args]);
    return { code: process.exitCode ?? 0, out: out.join('\n'), err: err.join('\n') };
  } finally {
    log.mockRestore(); error.mockRestore();
    process.exitCode = undefined;
  }
}

function file(name: string, json: unknown): string {
  const path = join(root, name);
  writeFileSync(path, typeof json === 'string' ? json : JSON.stringify(json));
  return path;
}

/** Every file under dir, relative path → content. */
function tree(dir: string): Record<string, string> {
  const files: Record<string, string> = {};
  const walk = (d: string, prefix: string) => {
    for (const n of readdirSync(d).sort()) {
      const p = join(d, n);
      if (statSync(p).isDirectory()) walk(p, `${prefix}${n}/`);
      else files[`${prefix}${n}`] = readFileSync(p, 'utf8');
    }
  };
  walk(dir, '');
  return files;
}

const doc = (dir: string): SweepDoc => JSON.parse(readFileSync(join(dir, 'sweep.json'), 'utf8'));

describe('memvisor run with a sweep, several files and --jobs', () => {
  let serial: string;
  beforeAll(async () => {
    serial = join(root, 'serial');
    const r = await cli('run', file('sweep.json', SWEEP), file('plain.json', PLAIN), '--out', serial, '--jobs', '1', '--quiet', '--stats');
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
  }, 120_000);

  it('writes one folder per file: the sweep with a report per run, the plain file as a single run writes it', () => {
    expect(readdirSync(serial).sort()).toEqual(['plain', 'sw']);
    const files = Object.keys(tree(join(serial, 'sw')));
    for (const f of ['sweep.json', 'points.csv', 'runs.csv', 'index.html', 'runs/p0-seed1/result.json', 'runs/p1-seed2/index.html', 'runs/p1-seed2/stats.txt']) {
      expect(files).toContain(f);
    }
    expect(files.filter((f) => f.endsWith('/result.json')).sort()).toEqual(
      ['runs/p0-seed1/result.json', 'runs/p0-seed2/result.json', 'runs/p1-seed1/result.json', 'runs/p1-seed2/result.json']);
    expect(existsSync(join(serial, 'plain', 'sweep.json'))).toBe(false);
    expect(JSON.parse(readFileSync(join(serial, 'plain', 'result.json'), 'utf8')).seed).toBe(5);
  });

  it("each run's scenario is the file with the point's value and the seed set", () => {
    for (const [point, shares] of [['p0', 1000], ['p1', 4000]] as const) {
      for (const seed of [1, 2]) {
        const r = JSON.parse(readFileSync(join(serial, 'sw', 'runs', `${point}-seed${seed}`, 'result.json'), 'utf8'));
        expect(r.seed).toBe(seed);
        expect(r.config.vms[0].shares).toBe(shares);
        expect(r.config.vms[1].shares).toBe(HOST.vms[1].shares ?? r.config.vms[1].shares);
        expect(r.config).not.toHaveProperty('sweep');
      }
    }
    // The seeds matter: the two seeds of a point give different throughput.
    const a = JSON.parse(readFileSync(join(serial, 'sw', 'runs', 'p0-seed1', 'result.json'), 'utf8')).summary;
    const b = JSON.parse(readFileSync(join(serial, 'sw', 'runs', 'p0-seed2', 'result.json'), 'utf8')).summary;
    expect(a['web: units/s']).not.toBe(b['web: units/s']);
  });

  it("sweep.json's statistics are the mean and 95 % Student-t interval of the runs' own figures", () => {
    const d = doc(join(serial, 'sw'));
    expect(d.points.map((p) => [p.id, p.label, p.runs.length])).toEqual([['p0', 'vms[0].shares=1000', 2], ['p1', 'vms[0].shares=4000', 2]]);
    for (const p of d.points) {
      const values = [1, 2].map((s) => JSON.parse(readFileSync(join(serial, 'sw', 'runs', `${p.id}-seed${s}`, 'result.json'), 'utf8')).summary['web: units/s']);
      const s = p.stats['web: units/s'];
      expect(s).toEqual(meanCi95(values));
      // Two runs: df 1, t = 12.706, half-width 12.706 · |a − b| / 2.
      expect(s.ciHigh! - s.mean).toBeCloseTo(12.706 * Math.abs(values[0] - values[1]) / 2, 6);
    }
    const csv = readFileSync(join(serial, 'sw', 'points.csv'), 'utf8').split('\n');
    expect(csv[0]).toBe('point,label,vms[0].shares,metric,n,mean,sd,ciLow,ciHigh');
    const html = readFileSync(join(serial, 'sw', 'index.html'), 'utf8');
    expect(html).toContain('95 % Student-t');
    expect(html).toContain('<a href="runs/p1-seed2/index.html">');
  });

  it('--jobs 2 (worker threads) writes exactly the same files as --jobs 1', async () => {
    const parallel = join(root, 'parallel');
    const r = await cli('run', file('sweep.json', SWEEP), file('plain.json', PLAIN), '--out', parallel, '--jobs', '2', '--quiet', '--stats');
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(tree(parallel)).toEqual(tree(serial));
  }, 120_000);

  it('shards 1/2 and 2/2, merged, are the whole run file for file', async () => {
    const s1 = join(root, 'shard1'), s2 = join(root, 'shard2'), merged = join(root, 'merged');
    expect((await cli('run', file('sweep.json', SWEEP), '--out', s1, '--shard', '1/2', '--jobs', '1', '--quiet', '--stats')).code).toBe(0);
    expect((await cli('run', file('sweep.json', SWEEP), '--out', s2, '--shard', '2/2', '--jobs', '1', '--quiet', '--stats')).code).toBe(0);
    // Runs 0 and 2 (p0 seed 1, p1 seed 1) in shard 1; runs 1 and 3 in shard 2.
    expect(readdirSync(join(s1, 'runs')).sort()).toEqual(['p0-seed1', 'p1-seed1']);
    expect(readdirSync(join(s2, 'runs')).sort()).toEqual(['p0-seed2', 'p1-seed2']);
    expect(doc(s1).shard).toEqual({ index: 1, count: 2 });

    const partial = await cli('merge', s1, '--out', merged);
    expect(partial.code).toBe(1);
    expect(partial.err).toBe('memvisor: merge: 2 runs are in none of the folders (the sweep was cut into 2 shards; merged: 1/2): p0 seed 2, p1 seed 2');
    expect(existsSync(merged)).toBe(false);

    const r = await cli('merge', s2, s1, '--out', merged, '--json');
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(tree(merged)).toEqual(tree(join(serial, 'sw')));
    expect(JSON.parse(r.out)).toEqual(doc(merged));
  }, 120_000);

  it('merge refuses folders of different sweeps, and folders that are no sweep', async () => {
    const other = join(root, 'other');
    const changed = { ...SWEEP, sweep: { ...SWEEP.sweep, seeds: [1] } };
    expect((await cli('run', file('other.json', changed), '--out', other, '--shard', '1/1', '--jobs', '1', '--quiet')).code).toBe(0);
    const r = await cli('merge', join(serial, 'sw'), other, '--out', join(root, 'm2'));
    expect(r.err).toBe(`memvisor: ${other} is not a slice of the same sweep as ${join(serial, 'sw')} (its scenario, sweep or seeds differ)`);
    const p = await cli('merge', join(serial, 'plain'), '--out', join(root, 'm3'));
    expect(p.err).toMatch(/plain holds no sweep\.json/);
  }, 120_000);
});

describe('bad sweeps are refused before anything runs', () => {
  it.each([
    [{ vary: { 'vms[5].shares': [1, 2] } }, 'sweep.vary["vms[5].shares"]: vms has 2 items in the file, so [5] does not exist'],
    [{ vary: { 'vms[0].shares': [1000, -3] } }, 'sweep point p1 (vms[0].shares=-3): vms[0].shares: Number must be greater than 0'],
    [{ vary: { 'policy.taux': [0.5] } }, 'sweep point p0 (policy.taux=0.5): policy.taux: unknown field'],
    [{ vary: { seed: [1, 2] } }, 'sweep.vary: "seed": "seed" cannot be varied (list seeds in sweep.seeds)'],
    [{ vary: { 'vms..x': [1] } }, 'sweep.vary: "vms..x" is not a field path'],
    [{ vary: { hostMiB: [] } }, 'sweep.vary.hostMiB: give at least one value'],
    [{ seeds: [1, 1] }, 'sweep.seeds: seeds must be distinct'],
    [{ seeds: { from: 1 } }, 'sweep.seeds'],
    [{ varry: {} }, 'sweep.varry: unknown field'],
  ])('%j', async (sweep, problem) => {
    const dir = join(root, 'never');
    const r = await cli('run', file('bad.json', { ...HOST, sweep }), '--out', dir, '--quiet');
    expect(r.code).toBe(1);
    expect(r.err).toContain(`bad.json is not a valid scenario:`);
    expect(r.err).toContain(problem);
    expect(existsSync(dir)).toBe(false);
  });

  it('--seed is refused when the sweep lists its seeds; --shard must be K/N', async () => {
    const f = file('seeded.json', SWEEP);
    expect((await cli('run', f, '--seed', '3', '--quiet')).err).toMatch(/--seed: the file's sweep lists its seeds/);
    expect((await cli('run', f, '--shard', '3/2', '--quiet')).err).toMatch(/^memvisor: --shard 3\/2: expected K\/N with 1 ≤ K ≤ N/);
    const j = runCli(['run', f, '--jobs', '0']);
    expect(j.status).toBe(1);
    expect(j.stderr).toMatch(/option '-j, --jobs <n>' argument '0' is invalid/);
  });

  it('validate checks every point: a problem of every point is listed once, the others by point', async () => {
    const { hostMiB: _h, ...noHost } = HOST;
    const r = await cli('validate', file('v.json', { ...noHost, sweep: { vary: { 'vms[0].memMiB': [8, 2, 0] } } }));
    expect(r.err).toBe([`memvisor: ${join(root, 'v.json')} is not a valid scenario:`,
      '  hostMiB: Required',
      '  sweep point p1 (vms[0].memMiB=2): vms[0].memMiB: Number must be greater than or equal to 4',
      '  sweep point p2 (vms[0].memMiB=0): vms[0].memMiB: Number must be greater than or equal to 4'].join('\n'));
    const ok = await cli('validate', file('ok.json', SWEEP));
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.out.slice(0, ok.out.indexOf('\nsweep:'))).vms[0].shares).toBe(1000);
    expect(ok.out).toContain('sweep: 2 points × 2 seeds (1, 2) = 4 runs; above: point p0, seed 1\n  p0  vms[0].shares=1000\n  p1  vms[0].shares=4000');
  });

  it('two files with the same name would share a folder: refused', async () => {
    const r = await cli('run', file('a.json', HOST), file('b.json', HOST), '--out', join(root, 'dup'), '--quiet');
    expect(r.err).toMatch(/a\.json and .*b\.json would both write .*dup\/sw: give the scenarios different names/);
  });
});
