// Figure 6 with the shipped scenario (seed 1) against what the paper says and the EWMAs
// predict (fig6Predictions, FIG6_TOLERANCE — the tolerances the report states): an increase
// is covered within the fast average's periods, a decrease within the slow average's, and
// the zero page thread's sweep makes the estimate spike by about fast gain × zeroed memory,
// then decay, with the slow average holding it above the real set for a while.
import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import '../../src/experiment/catalogue.js';
import { runScenario } from '../../src/experiment/runner.js';
import { fig6Predictions, FIG6_TOLERANCE, samplingToucherParams } from '../../src/experiment/sampling-toucher.js';

describe('Figure 6 (sampling) at the paper\'s shape and the averages\' predictions', () => {
  it('fast up, slow down, and a zero-page-thread spike that decays', async () => {
    const scenario = JSON.parse(readFileSync(new URL('../../scenarios/fig6-sampling.json', import.meta.url), 'utf8'));
    const { kind: _k, name: _n, seed: _s, description: _d, $schema: _x, ...params } = scenario;
    const p = samplingToucherParams.parse(params);
    const pr = fig6Predictions(p), T = FIG6_TOLERANCE, per = p.periodSeconds;
    const r = await runScenario(scenario);
    const [up, down] = r.series.steps;
    expect(up.direction).toBe('increase');
    expect(up.reached90).toBe(1);
    expect(up.lag90 as number).toBeLessThanOrEqual(pr.up90 + T.up90Periods * per);
    expect(down.reached90).toBe(1);
    expect(Math.abs((down.lag50 as number) - pr.down50)).toBeLessThanOrEqual(T.downPeriods * per);
    expect(Math.abs((down.lag90 as number) - pr.down90)).toBeLessThanOrEqual(T.downPeriods * per);

    const [z] = r.series.zpt;
    const spike = (z.peakMiB as number) - (z.beforeMiB as number), zeroed = z.zeroedMiB as number;
    expect(z.startedAt as number).toBeCloseTo(p.zeroPageThreadAt!, 1); // the first batch at or after it
    expect(zeroed).toBeGreaterThan(20); // the free memory: the region outside the 4 MiB set
    expect(spike).toBeGreaterThanOrEqual(T.spikeShare * pr.spikeFraction * zeroed);
    expect(spike).toBeLessThanOrEqual(zeroed);
    expect(z.halfDecayReached).toBe(1);
    // Decay: the real set is back to 4 MiB the period after the sweep, the estimate falls
    // back slowly; 10 s after the peak the slow average still holds it above the real set.
    const tl = r.series.timeline.filter((x) => x.estimator === 'estimate (max)');
    const at = (t: number) => tl.filter((x) => (x.t as number) <= t).at(-1)!.MiB as number;
    const peakAt = z.peakAt as number;
    expect(at(peakAt + 10)).toBeLessThan(z.peakMiB as number);
    expect(at(peakAt + 10)).toBeGreaterThan((z.beforeMiB as number) + 0.5);
  }, 300_000);
});
