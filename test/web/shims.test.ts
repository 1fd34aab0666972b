// The browser build's stand-ins for node:crypto and node:fs (web/src/shims), which the
// swap file uses in the page: SHA-256 equals Node's on random inputs, and the in-memory
// files read back what was written at any offset, as fs.readSync/writeSync do.
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { createHash } from 'node:crypto';
import { sha256, createHash as shimHash } from '../../web/src/shims/node-crypto.js';
import * as memfs from '../../web/src/shims/node-fs.js';
import * as path from 'node:path';
import * as shimPath from '../../web/src/shims/node-path.js';
import { Worker as ShimWorker } from '../../web/src/shims/node-worker-threads.js';

const SEED = Number(process.env.SHIM_SEED ?? 1);

describe('browser shims', () => {
  it('sha256 equals node:crypto on random inputs (lengths 0..300, across block boundaries)', () => {
    fc.assert(fc.property(fc.uint8Array({ minLength: 0, maxLength: 300 }), (d) => {
      expect(Buffer.from(sha256(d)).toString('hex')).toBe(createHash('sha256').update(d).digest('hex'));
    }), { seed: SEED, numRuns: 300 });
    const page = new Uint8Array(4096).map((_, i) => i * 7);
    expect(shimHash('sha256').update(page).digest().readBigUInt64LE(0)).toBe(createHash('sha256').update(page).digest().readBigUInt64LE(0));
  });

  it('in-memory files: writes at offsets read back; reads past the end are short', () => {
    const dir = memfs.mkdtempSync('/tmp/memvisor-swap-');
    const fd = memfs.openSync(dir + '/swap');
    memfs.ftruncateSync(fd, 3 * 4096);
    fc.assert(fc.property(fc.integer({ min: 0, max: 2 }), fc.uint8Array({ minLength: 4096, maxLength: 4096 }), (slot, data) => {
      expect(memfs.writeSync(fd, data, 0, 4096, slot * 4096)).toBe(4096);
      const back = new Uint8Array(4096);
      expect(memfs.readSync(fd, back, 0, 4096, slot * 4096)).toBe(4096);
      expect(back).toEqual(data);
    }), { seed: SEED, numRuns: 50 });
    expect(memfs.readSync(fd, new Uint8Array(4096), 0, 4096, 3 * 4096 - 100)).toBe(100);
    memfs.closeSync(fd);
    memfs.rmSync(dir);
    expect(memfs.existsSync(dir + '/swap')).toBe(false);
  });

  it('path.resolve / relative / isAbsolute agree with node:path on the paths a trace field makes; no worker threads', () => {
    for (const [dir, p] of [['/', 'traces/a.lackey'], ['/s/x', 'traces/a.lackey.gz'], ['/s/x', '/abs/t.lackey'], ['/s', 'a/b/c']]) {
      expect(shimPath.resolve(dir, p)).toBe(path.resolve(dir, p));
      expect(shimPath.isAbsolute(p)).toBe(path.isAbsolute(p));
      expect(shimPath.relative(dir, shimPath.resolve(dir, p))).toBe(p.startsWith('/') ? p : path.relative(dir, path.resolve(dir, p)));
    }
    expect(memfs.existsSync('/traces/a.lackey')).toBe(false); // so validation says the trace is not found
    expect(() => memfs.statSync('/x')).toThrow(/trace files need Node/);
    expect(() => new (ShimWorker as unknown as new () => unknown)()).toThrow(/trace files need Node/);
  });
});
