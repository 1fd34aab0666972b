import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { main } from '../../src/cli/main.js';
import { DEMO_SCENARIO } from './demo.js';
import { runCli } from '../helpers/cli-bin.js';

let root: string;
let out: string[];
let err: string[];
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'memvisor-cli-'));
  out = []; err = [];
  vi.spyOn(console, 'log').mockImplementation((...a) => { out.push(a.join(' ')); });
  vi.spyOn(console, 'error').mockImplementation((...a) => { err.push(a.join(' ')); });
});
afterEach(() => {
  vi.restoreAllMocks();
  process.exitCode = undefined;
  rmSync(root, { recursive: true, force: true });
});

const cli = (...args: string[]) => main(['node', 'memvisor', ...args]);
function scenarioFile(json: unknown, name = 's.json'): string {
  const path = join(root, name);
  writeFileSync(path, typeof json === 'string' ? json : JSON.stringify(json));
  return path;
}

describe('memvisor run', () => {
  it('runs a scenario file, writes the report and prints the summary and index.html path', async () => {
    const dir = join(root, 'report');
    await cli('run', scenarioFile(DEMO_SCENARIO), '--out', dir, '--seed', '11', '--quiet');
    expect(process.exitCode).toBeUndefined();
    expect(JSON.parse(readFileSync(join(dir, 'result.json'), 'utf8'))).toMatchObject({ scenario: 'demo-run', seed: 11 });
    const text = out.join('\n');
    expect(text).toMatch(/Demo experiment\nscenario demo-run, seed 11/);
    expect(text).toMatch(/steps\s+5/);
    expect(text).toContain(`report: ${join(dir, 'index.html')}`);
  });

  it('runs translation scenarios as before (same table) and now also writes their report', async () => {
    const dir = join(root, 'tlb');
    const runs = [{ pattern: 'random', workingSet: '64KiB' }, { pattern: 'sequential', workingSet: '4MiB', pageSize: '2M' }];
    await cli('run', scenarioFile({ kind: 'translation', name: 'tiny', memory: '64MiB', accesses: 2000, runs }), '--out', dir, '--quiet');
    expect(process.exitCode).toBeUndefined();
    expect(out.join('\n')).toMatch(/run +L1 miss\/1k +walks\/1k[\s\S]*random 64 KiB 4K 4-level[\s\S]*sequential 4 MiB 2M 4-level/);
    expect(readdirSync(dir).sort()).toEqual(['cycles-per-access.svg', 'index.html', 'result.json', 'runs.csv', 'walks-per-1000.svg']);
    const csv = readFileSync(join(dir, 'runs.csv'), 'utf8').split('\n');
    expect(csv[0]).toMatch(/^label,pattern,workingSet,pageSize,levels,psc,accesses,/);
    expect(csv[1]).toMatch(/^random 64 KiB 4K 4-level,random,65536,4K,4,true,2000,/);
    expect(readFileSync(join(dir, 'cycles-per-access.svg'), 'utf8').match(/aria-roledescription="bar"/g)).toHaveLength(2);
  });

  it('without an argument runs the registry default scenario into out/<name>', async () => {
    const cwd = process.cwd();
    process.chdir(root);
    try { await cli('run', '--quiet'); } finally { process.chdir(cwd); }
    expect(process.exitCode).toBeUndefined();
    expect(readdirSync(join(root, 'out', 'demo-run'))).toContain('index.html');
  });

  it('exits non-zero with the field path, no stack, and writes nothing on an invalid scenario', async () => {
    const dir = join(root, 'report');
    await cli('run', scenarioFile({ ...DEMO_SCENARIO, vms: [{ name: 'a', min: 5, max: 1 }] }), '--out', dir, '--quiet');
    expect(process.exitCode).toBe(1);
    expect(err.join('\n')).toBe(`memvisor: ${join(root, 's.json')} is not a valid scenario:\n  vms[0].min: must be <= max`);
    expect(existsSync(dir)).toBe(false);
  });

  it('exits non-zero on malformed JSON and on an unreadable file', async () => {
    await cli('run', scenarioFile('{ "kind": "demo", '), '--out', join(root, 'r'));
    expect(process.exitCode).toBe(1);
    expect(err[0]).toMatch(/^memvisor: .*s\.json is not valid JSON: /);
    await cli('run', join(root, 'missing.json'), '--out', join(root, 'r'));
    expect(err[1]).toMatch(/^memvisor: cannot read scenario .*missing\.json/);
    expect(readdirSync(root)).toEqual(['s.json']);
  });

  it('validate prints the scenario with defaults filled in, for any kind', async () => {
    await cli('validate', scenarioFile(DEMO_SCENARIO));
    expect(JSON.parse(out.join('\n'))).toEqual({ ...DEMO_SCENARIO, steps: 5, label: 'demo, "quoted"' });
    await cli('validate', scenarioFile({ kind: 'demo', name: 'x' }));
    expect(process.exitCode).toBe(1);
    expect(err.join('\n')).toContain('vms: Required');
  });
});

describe('the memvisor command as a process', () => {
  it('exits non-zero on a malformed file with a one-line-per-problem message and writes nothing', () => {
    const file = scenarioFile({ kind: 'translation', name: 'tlb', runs: [{ pattern: 'random', workingSet: 'lots' }] });
    const dir = join(root, 'out');
    const r = runCli(['run', file, '--out', dir], { env: { ...process.env, CI: 'true' } });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('is not a valid scenario:\n  runs[0].workingSet: a size such as "64KiB"');
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
    expect(r.stdout).toBe('');
    expect(existsSync(dir)).toBe(false);
  });
});

describe('summary numbers', () => {
  it('keeps the digits of whole parts and drops only fraction zeros', async () => {
    const { fmtNumber } = await import('../../src/cli/run.js');
    expect(fmtNumber(1949.75)).toBe('1950');
    expect(fmtNumber(195)).toBe('195');
    expect(fmtNumber(100.5)).toBe('100.5');
    expect(fmtNumber(2.5)).toBe('2.5');
    expect(fmtNumber(0.01018)).toBe('0.01018');
    expect(fmtNumber(120.0001)).toBe('120');
    expect(fmtNumber(-3.25)).toBe('-3.25');
  });
});
