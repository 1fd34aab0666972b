// Replacing a report whose old folder cannot be removed (read-only, for a user other than
// root): the failure is injected into rmSync so the test holds for every user. The command
// must fail, keep the old report exactly as it was, and leave no .tmp-* or .old folder.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

const fail = vi.hoisted(() => ({ old: false }));
vi.mock('node:fs', async (importOriginal) => {
  const fs = await importOriginal<typeof import('node:fs')>();
  const rmSync: typeof fs.rmSync = (path, opts) => {
    if (fail.old && String(path).endsWith('.old')) {
      throw Object.assign(new Error(`EACCES: permission denied, unlink '${String(path)}/result.json'`), { code: 'EACCES' });
    }
    return fs.rmSync(path, opts);
  };
  return { ...fs, rmSync, default: { ...fs, rmSync } };
});

const { mkdtempSync, readdirSync, readFileSync, rmSync } = await import('node:fs');
const { tmpdir } = await import('node:os');
const { join } = await import('node:path');
const { commitDirectory } = await import('../../src/report/write.js');

let root: string;
beforeEach(() => { root = mkdtempSync(join(tmpdir(), 'memvisor-ro-')); });
afterEach(() => { fail.old = false; rmSync(root, { recursive: true, force: true }); });

describe('replacing a report whose old folder cannot be removed', () => {
  it('fails naming the folder, keeps the old report and leaves nothing behind', () => {
    const dir = join(root, 'r');
    commitDirectory(dir, new Map([['result.json', '{"old":true}\n'], ['a.csv', 'x\n1\n']]));
    fail.old = true;
    expect(() => commitDirectory(dir, new Map([['result.json', '{"new":true}\n']])))
      .toThrow(new RegExp(`^cannot write the report to ${dir}: the previous report could not be removed \\(EACCES`));
    expect(readdirSync(root)).toEqual(['r']);
    expect(readdirSync(dir).sort()).toEqual(['a.csv', 'result.json']);
    expect(readFileSync(join(dir, 'result.json'), 'utf8')).toBe('{"old":true}\n');
    fail.old = false;
    commitDirectory(dir, new Map([['result.json', '{"new":true}\n']]));
    expect(readdirSync(dir)).toEqual(['result.json']);
    expect(readdirSync(root)).toEqual(['r']);
  });
});
