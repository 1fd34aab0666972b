// The `migration` scenario kind: runs of a small VM compare EPT D-bit and write-protect
// tracking; round 0's records follow the VM's layout exactly; the round limit and the
// convergence rule hold; bad scenarios name their field; the shipped scenario validates.
import { beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import type { ExperimentResult, Row } from '../../src/report/result.js';
import { runScenario } from '../../src/experiment/runner.js';
import { parseExperimentScenario } from '../../src/experiment/registry.js';
import { renderPlotSvg } from '../../src/report/render.js';
import { ScenarioError } from '../../src/scenario/schema.js';
import { recordBytes } from '../../src/hypervisor/migration/wire.js';
import '../../src/experiment/catalogue.js';

const PAGES_PER_MIB = 256;
const TINY = {
  kind: 'migration', name: 'migration-tiny', seed: 5, vmMiB: 8, dataMiB: 2, dupMiB: 0.5, zeroMiB: 0.25, swapMiB: 0.25,
  hotMiB: 0.5, writesPerSecond: 5000, bandwidthMiBps: 100, stopPages: 64, maxRounds: 8,
  runs: [
    { mode: 'nested', tracking: 'ept-dirty' }, { mode: 'shadow', tracking: 'write-protect' },
    { mode: 'nested', tracking: 'ept-dirty', bandwidthMiBps: 4, writesPerSecond: 200_000 },
  ],
};

describe('the migration scenario', () => {
  let res: ExperimentResult, runs: Row[];
  beforeAll(async () => {
    res = await runScenario(TINY);
    runs = res.series.runs;
  }, 120_000);
  const n = (r: Row, k: string) => Number(r[k]);

  it('round 0 sends the layout: zero flags, one shared page and references, swap references, the rest whole', () => {
    for (const r of runs) {
      expect(n(r, 'zeroFlags')).toBeGreaterThanOrEqual(0.25 * PAGES_PER_MIB); // later rounds may add first-touched zeros
      expect(n(r, 'sharedFirst')).toBe(1);
      expect(n(r, 'sharedRefs')).toBe(0.5 * PAGES_PER_MIB - 1);
      expect(n(r, 'swapRefs')).toBeGreaterThanOrEqual(0);
      expect(n(r, 'swapReads')).toBe(0);
    }
    const r0 = res.series.rounds.filter((x) => x.round === 0 && x.measure === 'sent');
    // round 0: 2 MiB of data (its 64 swapped pages as references) + 3 table pages whole, 128 duplicates, 64 zeros
    const whole = 2 * PAGES_PER_MIB - 64 + 3;
    const bytes = whole * recordBytes('page') + 64 * recordBytes('swap-ref') + recordBytes('shared') +
      127 * recordBytes('shared-ref') + 64 * recordBytes('zero');
    for (const x of r0) expect(Number(x.MiB)).toBeCloseTo(bytes / 2 ** 20, 4);
  });

  it('EPT D bits cost the guest no exit; write protection one per logged write', () => {
    const [ept, wp] = runs;
    expect(n(ept, 'exitsDuring')).toBe(0);
    expect(n(ept, 'wpFaults')).toBe(0);
    expect(n(ept, 'invepts')).toBeGreaterThan(0);
    expect(n(wp, 'wpFaults')).toBeGreaterThan(0);
    expect(n(wp, 'exitsDuring')).toBeGreaterThanOrEqual(n(wp, 'wpFaults'));
    expect(n(wp, 'cyclesPerWriteDuring')).toBeGreaterThan(10 * n(ept, 'cyclesPerWriteDuring'));
  });

  it('a link that keeps up converges; one that cannot runs to the round limit with a longer downtime', () => {
    const [ept, , slow] = runs;
    expect(n(ept, 'converged')).toBe(1);
    expect(n(slow, 'converged')).toBe(0);
    expect(n(slow, 'rounds')).toBe(TINY.maxRounds + 1);
    expect(n(slow, 'downtimeMs')).toBeGreaterThan(10 * n(ept, 'downtimeMs'));
    // a converged run's last copy is at most stopPages pages (and the vCPU state)
    const last = res.series.rounds.filter((x) => x.run === ept.run && x.stopAndCopy === 1)[0];
    expect(Number(last.pages)).toBeLessThanOrEqual(TINY.stopPages);
  });

  it('renders its plots', async () => {
    for (const p of res.plots) expect(await renderPlotSvg(p, res.series)).toMatch(/^<svg/);
  });

  it('names bad fields', () => {
    const bad = (over: Record<string, unknown>) => () => parseExperimentScenario({ ...TINY, ...over });
    expect(bad({ runs: [{ mode: 'shadow', tracking: 'ept-dirty' }] })).toThrow(/runs\[0\]\.tracking: EPT D bits need nested paging/);
    expect(bad({ hotMiB: 4 })).toThrow(/hotMiB: the hot set must lie inside the data/);
    expect(bad({ bandwidthMiBps: 0 })).toThrow(ScenarioError);
    expect(bad({ dataMiB: 7 })).toThrow(/dataMiB: .* do not fit a 8 MiB VM/);
  });

  it('the shipped scenario validates', () => {
    const json = JSON.parse(readFileSync(new URL('../../scenarios/migration.json', import.meta.url), 'utf8'));
    expect(parseExperimentScenario(json).experiment.kind).toBe('migration');
  });
});
