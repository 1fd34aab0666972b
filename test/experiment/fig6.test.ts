// Figure 6 (active-memory sampling vs a toucher's working set): the real working set is
// what the schedule says; each period's f = t/n is within a binomial tolerance of the true
// fraction; the fast average settles on it after a few periods; the max estimate reacts
// faster to an increase than to a decrease; bad scenarios name their field.
import { beforeAll, describe, expect, it } from 'vitest';
import type { ExperimentResult, Row } from '../../src/report/result.js';
import { runScenario } from '../../src/experiment/runner.js';
import { parseExperimentScenario } from '../../src/experiment/registry.js';
import { renderPlotSvg } from '../../src/report/render.js';
import { ScenarioError } from '../../src/scenario/schema.js';
import { runSamplingToucher, samplingToucherParams } from '../../src/experiment/sampling-toucher.js';
import '../../src/experiment/catalogue.js';

const SCHEDULE = [{ seconds: 6, MiB: 1 }, { seconds: 10, MiB: 5 }, { seconds: 16, MiB: 1 }];
const TINY = {
  kind: 'sampling-toucher', name: 'fig6-tiny', seed: 3, vmMiB: 8, prefillMiB: 6, schedule: SCHEDULE,
  periodSeconds: 1, samples: 200, hz: 2e6, warmupPeriods: 1,
};

describe('Figure 6: sampling tracks the working set', () => {
  let res: ExperimentResult, periods: Row[];
  beforeAll(async () => {
    res = await runScenario(TINY);
    periods = res.series.periods;
  });
  const num = (r: Record<string, unknown>, k: string) => Number(r[k]);
  /** Phase index and periods since the phase began, for a period ending at t. */
  const where = (t: number) => {
    let start = 0;
    for (const [i, ph] of SCHEDULE.entries()) {
      if (t <= start + ph.seconds + 0.01) return { i, since: Math.round(t - start) };
      start += ph.seconds;
    }
    return { i: SCHEDULE.length - 1, since: 99 };
  };

  it('measures the exact working set: every page of the set in force, each period', () => {
    expect(periods.length).toBe(32);
    for (const r of periods) expect(num(r, 'realPages')).toBe(SCHEDULE[where(num(r, 't')).i].MiB * 256);
    expect(new Set(periods.map((r) => r.backedMiB)).size).toBe(1); // prefilled: backed memory does not move
  });

  it('samples each period within a binomial tolerance of the true fraction', () => {
    for (const r of periods) {
      const p = num(r, 'realFraction'), n = num(r, 'sampled');
      expect(n).toBe(200);
      // 4 sd, plus the few guest page-table pages the walks touch besides the toucher's pages.
      const tol = 4 * Math.sqrt((p * (1 - p)) / n) + 0.01;
      expect(Math.abs(num(r, 'f') - p)).toBeLessThanOrEqual(tol);
    }
  });

  it('settles the fast average on the true fraction after a few periods of a phase', () => {
    const settled = periods.filter((r) => where(num(r, 't')).since >= 5);
    expect(settled.length).toBeGreaterThan(10);
    for (const r of settled) {
      const p = num(r, 'realFraction'), backed = num(r, 'backedMiB');
      // fast has variance g/(2−g) of one period's (1/3 for g = 1/2); 4 sd plus the (1/2)^5 transient left of a step.
      const tol = 4 * Math.sqrt((p * (1 - p)) / 200 / 3) + 0.6 / 32 + 0.01;
      expect(Math.abs(num(r, 'fastMiB') / backed - p)).toBeLessThanOrEqual(tol);
      expect(num(r, 'estimateMiB')).toBeGreaterThanOrEqual(num(r, 'fastMiB'));
    }
  });

  it('responds faster to the increase than to the decrease', () => {
    const steps = res.series.steps;
    expect(steps.map((s) => s.direction)).toEqual(['increase', 'decrease']);
    const [up, down] = steps;
    expect(up.reached90).toBe(1);
    expect(num(up, 'lag90')).toBeLessThanOrEqual(4); // fast and partial: 1 − 2^-(k+1) of the step after k periods, plus noise
    expect(num(down, 'lag50')).toBeGreaterThan(num(up, 'lag90')); // the slow average holds the estimate up
    expect(num(down, 'lag90')).toBeGreaterThan(2 * num(up, 'lag90'));
    // After the decrease the estimate stays above the real set while the slow average decays.
    const after = periods.filter((r) => where(num(r, 't')).i === 2 && where(num(r, 't')).since <= 4);
    for (const r of after) expect(num(r, 'estimateMiB')).toBeGreaterThan(num(r, 'realMiB') + 1);
  });

  it('renders the plot', async () => {
    const svg = await renderPlotSvg(res.plots[0], res.series);
    expect(svg).toContain('real working set');
    expect(svg.match(/<path/g)!.length).toBeGreaterThan(5);
  });

  it('a zero page thread makes the estimate spike, then decay (tiny run)', async () => {
    const r = await runScenario({ ...TINY, schedule: [{ seconds: 6, MiB: 1 }, { seconds: 14, MiB: 1 }], zeroPageThreadAt: 8 });
    const [z] = r.series.zpt;
    expect(num(z, "startedAt")).toBeCloseTo(8, 1); // the first batch at or after 8 s
    expect(num(z, 'zeroedMiB')).toBeCloseTo(5, 0); // the 6 MiB region outside the 1 MiB set
    expect(num(z, 'peakMiB') - num(z, 'beforeMiB')).toBeGreaterThan(0.5 * 0.6 * num(z, 'zeroedMiB'));
    expect(z.halfDecayReached).toBe(1);
    expect(r.plots[0].vegaLite).toHaveProperty('layer');
    expect(await renderPlotSvg(r.plots[0], r.series)).toContain('ZPT');
    // Without it, no spike series.
    expect(res.series.zpt).toBeUndefined();
  });

  it('rejects bad scenarios, naming the field', () => {
    const bad = (o: Record<string, unknown>) => {
      try { parseExperimentScenario({ ...TINY, ...o }, 'bad.json'); } catch (e) {
        expect(e).toBeInstanceOf(ScenarioError);
        return (e as ScenarioError).problems.join('\n');
      }
      throw new Error('accepted');
    };
    expect(bad({ schedule: [{ seconds: 5, MiB: 1 }, { seconds: 5, MiB: 7 }] })).toMatch(/^schedule\[1\]\.MiB: 7 MiB does not fit/m);
    expect(bad({ periodSeconds: 1.5 })).toMatch(/^periodSeconds: /m);
    expect(bad({ samples: 0 })).toMatch(/^samples: /m);
    expect(bad({ schedule: [] })).toMatch(/^schedule: /m);
    expect(bad({ zeroPageThreadAt: 32 })).toMatch(/^zeroPageThreadAt: 32 s is not before the schedule's end/m);
    // A prefill of no page never finishes, so the run used to fail after 600 simulated seconds ("raise hz").
    expect(bad({ prefillMiB: 0 })).toBe('prefillMiB: 0 MiB is less than one page (4 KiB = 0.00390625 MiB): the schedule and ' +
      'the sampling start when the toucher\'s prefill is done, so it must write at least one page');
    expect(bad({ prefillMiB: 0.001 })).toMatch(/^prefillMiB: 0\.001 MiB is less than one page/);
  });

  it('a prefill that takes longer than 600 simulated seconds (80 MiB at the lowest hz) still runs', async () => {
    // It used to stop at a fixed 600 s ("raise hz"); the allowance now grows with the prefill.
    const { kind: _k, name: _n, seed: _s, ...params } = { ...TINY, vmMiB: 84, prefillMiB: 80, hz: 1e5, schedule: [{ seconds: 1, MiB: 1 }], samples: 20 };
    const r = await runSamplingToucher(samplingToucherParams.parse(params), 3);
    expect(r.t0).toBeGreaterThan(600);
    expect(r.periods.length).toBe(1);
  }, 120_000);

  it('runs with the smallest prefill validation accepts (one page)', async () => {
    const r = await runScenario({ ...TINY, vmMiB: 4, prefillMiB: 1 / 256, schedule: [{ seconds: 2, MiB: 1 }], samples: 20 });
    expect(r.series.periods.length).toBe(2);
  }, 60_000);
});
