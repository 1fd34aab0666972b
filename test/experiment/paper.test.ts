// The paper's experiments run end to end with tiny parameters: the shapes the paper
// reports must show, and bad scenarios are refused with the field named.
import { describe, it, expect } from 'vitest';
import '../../src/experiment/catalogue.js';
import { runScenario } from '../../src/experiment/runner.js';
import { parseExperimentScenario } from '../../src/experiment/registry.js';
import { ScenarioError } from '../../src/scenario/schema.js';

const num = (r: { summary: Record<string, number | string> }, k: string) => r.summary[k] as number;

describe('paper experiments', () => {
  // Figure 7 runs at full scale against the paper's values in fig7.test.ts.

  // Figure 2 runs at full scale against the paper's values in fig2.test.ts; here, tiny VMs.
  it('Figure 2: a ballooned VM comes close to one configured with the same size; less memory, less throughput', async () => {
    const r = await runScenario({ kind: 'balloon-perf', name: 't', maxMiB: 8, sizesMiB: [4, 6, 8], warmupUnits: 500, units: 1000 });
    const rows = r.series.throughput;
    const tp = (size: number, vm: string) => rows.find((x) => x.sizeMiB === size && x.vm === vm)!.throughput as number;
    for (const s of [4, 6]) expect(Math.abs(tp(s, 'ballooned') - tp(s, 'configured'))).toBeLessThanOrEqual(0.1 * tp(s, 'configured'));
    expect(tp(4, 'configured')).toBeLessThan(tp(6, 'configured'));
    expect(tp(6, 'configured')).toBeLessThan(tp(8, 'configured'));
    expect(rows.find((x) => x.sizeMiB === 6 && x.vm === 'ballooned')!.balloonFrames).toBe(2 * 256);
  }, 60_000);

  it('reclamation compared: each technique moves pages only through its own mechanism', async () => {
    // 12 s: the swap daemon's writes take disk time, so the "low" episode at ~7 s lasts until
    // they complete, and the balloons are asked for only after it.
    const r = await runScenario({ kind: 'reclaim-compare', name: 't', vmMiB: 8, seconds: 12 });
    const run = (t: string) => r.series.runs.find((x) => x.technique === t)!;
    expect(run('balloon').balloonedFrames).toBeGreaterThan(0);
    expect(run('swap').balloonedFrames).toBe(0);
    expect(run('swap').hostSwapOuts).toBeGreaterThan(0);
    expect(run('sharing').sharedSaved).toBeGreaterThan(0);
    expect(run('balloon').sharedSaved).toBe(0);
  }, 60_000);

  it('impossible parameters are refused with the field named', () => {
    const bad = (json: object) => { try { parseExperimentScenario(json); return ''; } catch (e) { expect(e).toBeInstanceOf(ScenarioError); return String((e as Error).message); } };
    expect(bad({ kind: 'idle-tax', name: 't', taus: [1, 0] })).toMatch(/taus\.?\[?0\]?/);
    expect(bad({ kind: 'balloon-perf', name: 't', maxMiB: 8, sizesMiB: [12] })).toMatch(/sizesMiB.*12 MiB is above maxMiB/);
    expect(bad({ kind: 'reclaim-compare', name: 't', techniques: ['magic'] })).toMatch(/techniques/);
    expect(bad({ kind: 'idle-tax', name: 't', vmMiB: 8, extra: 1 })).toMatch(/extra/);
  });
});
