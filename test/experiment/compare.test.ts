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
    expect(r.series.runs).toEqual(rows.map(({ exitsByReason: _e, ...row }) => row));
    expect(r.plots.map((p) => p.id)).toEqual(['cycles-per-access', 'misses-per-level', 'refs-per-walk', 'exits-by-reason']);
    const def = listExperiments().find((e) => e.kind === 'compare')!;
    expect(def.formatSummary!(r)).toContain(compareTable(rows));
  });

  it('reports the host page size, misses per level, references per walk by page mix and exits by reason', async () => {
    const mix = [DEFAULT_WORKLOADS[2], DEFAULT_WORKLOADS[3], DEFAULT_WORKLOADS[7]]; // 64 MiB on 2M and 4K host pages; pt-heavy
    const r = await runScenario({ kind: 'compare', name: 'cmp', seed: 1, accesses: 20000, workloads: mix });
    const runs = r.series.runs;
    const row = (w: string, mode: string) => runs.find((x) => x.workload === w && x.mode === mode)!;
    expect(row(mix[0].name, 'native').hostPage).toBe('-');
    expect(row(mix[0].name, 'nested').hostPage).toBe('2M');
    expect(row(mix[1].name, 'nested').hostPage).toBe('4K');
    // A cold 2D walk with 4K pages in both dimensions reads up to 24 entries; 2M host pages shorten it.
    expect(Number(row(mix[1].name, 'nested').refsPerWalk)).toBeGreaterThan(Number(row(mix[0].name, 'nested').refsPerWalk));
    const misses = r.series.misses.filter((m) => m.workload === mix[0].name && m.mode === 'native');
    expect(misses.map((m) => m.level)).toEqual(['L1 TLB', 'L2 TLB (walks)']);
    expect(misses[1].missesPer1000).toBe(row(mix[0].name, 'native').tlbMissesPer1000);
    expect(Number(misses[0].missesPer1000)).toBeGreaterThanOrEqual(Number(misses[1].missesPer1000)); // an L2 miss was an L1 miss
    const exits = r.series.exits;
    expect(exits.filter((e) => e.mode === 'native')).toEqual([]);
    const shadowPt = exits.filter((e) => e.workload === mix[2].name && e.mode === 'shadow').map((e) => e.reason).sort();
    expect(shadowPt).toEqual(expect.arrayContaining(['CR3', 'INVLPG']));
    expect(r.series.walks.map((w) => w.pages)).toContain('guest 4K, host 4K');
  }, 120_000);

  it('defaults to the built-in workloads and rejects an unknown pattern by path', () => {
    expect(parseExperimentScenario({ kind: 'compare', name: 'c' }).params.workloads).toEqual(DEFAULT_WORKLOADS);
    expect(() => parseExperimentScenario({ kind: 'compare', name: 'c', workloads: [{ ...workloads[0], pattern: 'diagonal' }] }))
      .toThrow(/workloads\[0\]\.pattern/);
    // Zero accesses would print an all-zero table: refused like `memvisor compare -n 0`.
    expect(() => parseExperimentScenario({ kind: 'compare', name: 'c', accesses: 0 })).toThrow(/accesses: Number must be greater than or equal to 1/);
  });

  it('every kind is registered once, from the catalogue', () => {
    expect(listExperiments().map((e) => e.kind)).toEqual(
      ['balloon-perf', 'compare', 'host', 'idle-tax', 'io-remap', 'large-pages', 'migration', 'numa', 'os-guests', 'reclaim-compare', 'sampling-toucher', 'sharing-os', 'sharing-vms', 'translation']);
  });
});
