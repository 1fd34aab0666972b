// The translation kind's summary carries each run's cycles/access and walks/1000 (what a
// sweep averages over seeds), equal to the runs' rows, named by position not label.
import { describe, expect, it } from 'vitest';
import '../../src/experiment/catalogue.js';
import { runScenario } from '../../src/experiment/runner.js';

const base = { kind: 'translation', name: 't', memory: '64MiB', accesses: 500 };

describe('translation summary figures', () => {
  it('one run: cycles/access and walks/1000; several: runs[i]: …, each equal to its row', async () => {
    const one = await runScenario({ ...base, runs: [{ pattern: 'random', workingSet: '1MiB' }] });
    expect(one.summary['cycles/access']).toBe(one.series.runs[0].cyclesPerAccess);
    expect(one.summary['walks/1000']).toBe(one.series.runs[0].walksPer1000);
    const two = await runScenario({ ...base, runs: [{ pattern: 'random', workingSet: '1MiB' }, { pattern: 'random', workingSet: '1MiB', psc: false }] });
    for (const i of [0, 1]) {
      expect(two.summary[`runs[${i}]: cycles/access`]).toBe(two.series.runs[i].cyclesPerAccess);
      expect(two.summary[`runs[${i}]: walks/1000`]).toBe(two.series.runs[i].walksPer1000);
    }
    // Without paging-structure caches a walk reads every level: more cycles for the same walks.
    expect(two.summary['runs[1]: cycles/access']).toBeGreaterThan(two.summary['runs[0]: cycles/access'] as number);
    expect(two.summary['cycles/access']).toBeUndefined();
  });
});

describe('runScenario and a sweep', () => {
  it('refuses a scenario with a sweep rather than silently running the base once', async () => {
    const sc = { ...base, runs: [{ pattern: 'random', workingSet: '1MiB' }], sweep: { seeds: [1, 2] } };
    await expect(runScenario(sc, { source: 's.json' })).rejects.toThrow(
      's.json is not a valid scenario:\n  sweep: this runs one scenario; run a sweep with `memvisor run <file>` (or drop "sweep")');
  });
});
