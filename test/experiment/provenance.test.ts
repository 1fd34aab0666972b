// result.json says what made it: memvisor's version, the clone's commit, Node, the seed and
// the full normalized scenario, all stamped by the runner.
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import '../../src/experiment/catalogue.js';
import { runScenario } from '../../src/experiment/runner.js';

const version = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version;

describe('provenance in the result', () => {
  it('records version, git commit, Node, the seed as run and the scenario with defaults and sizes normalized', async () => {
    const r = await runScenario({
      kind: 'translation', name: 'prov', memory: '64MiB', accesses: 100, runs: [{ pattern: 'random', workingSet: '16KiB' }],
    }, { seed: 42 });
    // A clone has a commit; a source tree without .git (an unpacked tarball) records none.
    const inClone = existsSync(new URL('../../.git', import.meta.url));
    const git = inClone
      ? { gitCommit: execFileSync('git', ['rev-parse', 'HEAD'], { encoding: 'utf8' }).trim(), gitDirty: expect.any(Boolean) } : {};
    expect(r.provenance).toEqual({
      memvisor: version,
      ...git,
      node: process.version,
      seed: 42,
      scenario: {
        kind: 'translation', name: 'prov', seed: 42, memory: 64 * 2 ** 20, accesses: 100,
        runs: [{ pattern: 'random', workingSet: 16384, pageSize: '4K', levels: 4, psc: true, tlb: true, writeRatio: 0 }],
      },
    });
  });
});
