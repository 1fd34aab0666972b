// The command line's edges: output locations checked before a run, closed pipes, refused
// arguments, --version, no carriage returns off a terminal, JSON errors with line and column.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { main } from '../../src/cli/main.js';
import { jsonErrorWhere, progressWanted } from '../../src/cli/run.js';
import { runCli } from '../helpers/cli-bin.js';

const ENTRY = fileURLToPath(new URL('../helpers/cli-entry.ts', import.meta.url));
const TSX = new URL('../../node_modules/tsx/dist/loader.mjs', import.meta.url).href;
const TINY = { kind: 'translation', name: 'tiny', memory: '64MiB', accesses: 200, runs: [{ pattern: 'random', workingSet: '64KiB' }] };

let root: string;
let err: string[];
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'memvisor-edges-'));
  err = [];
  vi.spyOn(console, 'log').mockImplementation(() => {});
  vi.spyOn(console, 'error').mockImplementation((...a) => { err.push(a.join(' ')); });
});
afterEach(() => {
  vi.restoreAllMocks();
  process.exitCode = undefined;
  rmSync(root, { recursive: true, force: true });
});
const cli = (...args: string[]) => main(['node', 'memvisor', ...args]);
const isRoot = process.getuid?.() === 0;

describe('the output location is checked before the run', () => {
  it('--out under a file fails at once, naming the --out the user gave', async () => {
    writeFileSync(join(root, 'afile'), 'x');
    writeFileSync(join(root, 's.json'), JSON.stringify(TINY));
    await cli('run', join(root, 's.json'), '--out', join(root, 'afile', 'sub'), '--quiet');
    expect(process.exitCode).toBe(1);
    expect(err.join('\n')).toBe(`memvisor: cannot write to ${join(root, 'afile', 'sub')}: ${join(root, 'afile')} is a file, not a folder`);
    expect(readdirSync(root).sort()).toEqual(['afile', 's.json']);
  });

  // Root may write anywhere, so permissions cannot make a folder read-only for it; the
  // removal failure itself is covered for every user in test/report/write-readonly.test.ts.
  it.runIf(!isRoot)('a read-only parent fails at once; a read-only previous report is refused and left as it was', async () => {
    writeFileSync(join(root, 's.json'), JSON.stringify(TINY));
    const ro = join(root, 'ro');
    mkdirSync(ro);
    chmodSync(ro, 0o555);
    try {
      await cli('run', join(root, 's.json'), '--out', join(ro, 'r'), '--quiet');
      expect(err.at(-1)).toBe(`memvisor: cannot write to ${join(ro, 'r')}: ${ro} is not writable`);
      chmodSync(ro, 0o755);
      await cli('run', join(root, 's.json'), '--out', join(ro, 'r'), '--quiet');
      chmodSync(join(ro, 'r'), 0o555);
      process.exitCode = undefined;
      await cli('run', join(root, 's.json'), '--out', join(ro, 'r'), '--quiet');
      expect(process.exitCode).toBe(1);
      expect(err.at(-1)).toMatch(/it is read-only/);
      expect(readdirSync(ro)).toEqual(['r']); // no .tmp-* or .old folders
    } finally {
      chmodSync(ro, 0o755);
      if (existsSync(join(ro, 'r'))) chmodSync(join(ro, 'r'), 0o755);
    }
  }, 60_000);
});

describe('JSON syntax errors give line and column', () => {
  it.each([
    ['{\n  "a": 1\n  "b": 2}', "line 3, column 3: Expected ',' or '}' after property value"],
    ['{ "kind": "demo", ', 'line 1, column 19: Expected double-quoted property name'],
    ['{\n "a": tru}', "line 2, column 10: Unexpected token '}'"],
    ['{"a": [1,\n2,,3]}', "line 2, column 3: Unexpected token ','"],
    ['{"a": 1', "line 1, column 8: Expected ',' or '}' after property value"],
    ['{\n"a": t', 'line 2, column 7: the file ends early'],
  ])('%j', (text, where) => {
    let message = '';
    try { JSON.parse(text); } catch (e) { message = (e as Error).message; }
    expect(jsonErrorWhere(text, message)).toBe(where);
  });

  it('the CLI names file, line and column', async () => {
    writeFileSync(join(root, 'bad.json'), '{\n  "kind": "demo"\n  "name": "x"\n}');
    await cli('validate', join(root, 'bad.json'));
    expect(err[0]).toBe(`memvisor: ${join(root, 'bad.json')} is not valid JSON: line 3, column 3: Expected ',' or '}' after property value`);
  });
});

describe('arguments and terminals', () => {
  it('compare -n 0 is refused before anything runs; --version prints the package version', () => {
    const r = runCli(['compare', '-n', '0', '--out', join(root, 'c')]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/option '-n, --accesses <n>' argument '0' is invalid\. expected a whole number of at least 1/);
    expect(existsSync(join(root, 'c'))).toBe(false);
    const v = runCli(['--version']);
    expect(v.stdout.trim()).toBe(JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version);
  }, 30_000);

  it('draws progress only on an interactive terminal outside CI', () => {
    const ci = process.env.CI;
    delete process.env.CI;
    try {
      expect(progressWanted(true, { isTTY: true })).toBe(true);
      expect(progressWanted(true, { isTTY: false })).toBe(false);
      expect(progressWanted(true, {})).toBe(false);
      expect(progressWanted(false, { isTTY: true })).toBe(false);
      process.env.CI = 'true';
      expect(progressWanted(true, { isTTY: true })).toBe(false);
    } finally {
      if (ci === undefined) delete process.env.CI; else process.env.CI = ci;
    }
  });

  it('`compare | head -2` ends quietly when the reader closes the pipe; stderr off a terminal has no \\r', async () => {
    const env = { ...process.env };
    delete env.CI; // progress would be drawn if stderr were a terminal: it is a pipe here
    const child = spawn(process.execPath, ['--import', TSX, ENTRY, 'compare', '-n', '200', '--out', join(root, 'c')], { env });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d) => { stderr += d; });
    let lines = '';
    child.stdout.setEncoding('utf8').on('data', (d) => {
      lines += d;
      if (lines.split('\n').length > 2) child.stdout.destroy(); // what head -2 does
    });
    const status = await new Promise<number | null>((res) => child.on('close', (code) => res(code)));
    expect(stderr).toBe('');
    expect(status).toBe(0);
    expect(lines).toMatch(/^native vs shadow paging vs nested paging/);
  }, 120_000);
});
