import { describe, it, expect } from 'vitest';
import '../../src/experiment/catalogue.js';
import { runScenario } from '../../src/experiment/runner.js';
import { parseExperimentScenario, listExperiments } from '../../src/experiment/registry.js';
import { compare, DEFAULT_WORKLOADS } from '../../src/experiment/compare.js';
import { compareTable } from '../../src/experiment/compare-experiment.js';

const workloads = [DEFAULT_WORKLOADS[1], DEFAULT_WORKLOADS[7]];

describe('the compare kind in the catalogue', () => {
  it('runs the same rows as compare() and prints the same table', async () => {
    const r = await runScenario({ kind: 'compare', name: 'cmp', seed: 3, accesses: 4000, workloads });
    const rows = await compare(workloads, 4000, 3);
    expect(r.series.runs).toEqual(rows);
    expect(r.plots.map((p) => p.id)).toEqual(['cycles-per-access']);
    const def = listExperiments().find((e) => e.kind === 'compare')!;
    expect(def.formatSummary!(r)).toContain(compareTable(rows));
  });

  it('defaults to the built-in workloads and rejects an unknown pattern by path', () => {
    expect(parseExperimentScenario({ kind: 'compare', name: 'c' }).params.workloads).toEqual(DEFAULT_WORKLOADS);
    expect(() => parseExperimentScenario({ kind: 'compare', name: 'c', workloads: [{ ...workloads[0], pattern: 'diagonal' }] }))
      .toThrow(/workloads\[0\]\.pattern/);
  });

  it('every kind is registered once, from the catalogue', () => {
    expect(listExperiments().map((e) => e.kind)).toEqual(
      ['balloon-perf', 'compare', 'host', 'idle-tax', 'reclaim-compare', 'sampling-toucher', 'sharing-vms', 'translation']);
  });
});
