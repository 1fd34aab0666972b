import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { ScenarioError } from '../../src/scenario/schema.js';
import {
  getDefaultScenario, listExperiments, parseExperimentScenario, registerExperiment, scenarioConfig, unregisterExperiment,
} from '../../src/experiment/registry.js';
import { runScenario, RunAborted } from '../../src/experiment/runner.js';
import '../../src/experiment/catalogue.js';
import { DEMO_SCENARIO } from './demo.js';

function problems(json: unknown): string[] {
  try { parseExperimentScenario(json, 'x.json'); } catch (e) {
    expect(e).toBeInstanceOf(ScenarioError);
    return (e as ScenarioError).problems;
  }
  throw new Error('expected the scenario to be rejected');
}

describe('experiment registry', () => {
  it('rejects a duplicate kind, a bad kind name and defaults the schema does not define', () => {
    const def = { kind: 'demo', title: 'again', schema: z.object({}), run: () => ({ summary: {}, series: {}, plots: [] }) };
    expect(() => registerExperiment(def)).toThrow('experiment kind "demo" is already registered');
    expect(() => registerExperiment({ ...def, kind: 'bad kind' })).toThrow(/must be letters, digits/);
    expect(() => registerExperiment({ ...def, kind: 'typo', defaults: { stpes: 1 } as never })).toThrow(/defaults has "stpes"/);
    expect(() => registerExperiment({ ...def, kind: 'hdr', schema: z.object({ seed: z.number() }) })).toThrow(/header field "seed"/);
    const kinds = listExperiments().map((e) => e.kind);
    expect(kinds).toEqual([...kinds].sort());
    expect(kinds).toEqual(expect.arrayContaining(['demo', 'translation', 'idle-tax', 'balloon-perf']));
    expect(kinds.filter((k) => k === 'demo')).toHaveLength(1);
  });

  it('validates a scenario: header, parameters, defaults filled in', () => {
    const p = parseExperimentScenario(DEMO_SCENARIO, 'demo.json');
    expect(p.experiment.kind).toBe('demo');
    expect(scenarioConfig(p)).toEqual({ ...DEMO_SCENARIO, steps: 5, label: 'demo, "quoted"' });
    expect(getDefaultScenario()).toEqual(DEMO_SCENARIO);
  });

  it('names the field path of every problem, including superRefine cross-field checks', () => {
    const bad = {
      ...DEMO_SCENARIO, name: 'has space', seed: -1, steps: 'many', extra: 1,
      vms: [{ name: 'a', min: 1, max: 2 }, { name: 'b', min: 9, max: 3 }, { name: 'c', min: 0, max: 1, shares: 2 }],
    };
    const p = problems(bad);
    expect(p).toContain('extra: unknown field for kind "demo"');
    expect(p).toContain('vms[2].shares: unknown field');
    expect(p.some((l) => l.startsWith('name: a name of letters'))).toBe(true);
    expect(p.some((l) => l.startsWith('seed: '))).toBe(true);
    expect(p).toContain('steps: Expected number, received string');
    // Cross-field checks run once the structure is valid.
    expect(problems({ ...DEMO_SCENARIO, vms: [{ name: 'a', min: 1, max: 2 }, { name: 'b', min: 9, max: 3 }] }))
      .toEqual(['vms[1].min: must be <= max']);
  });

  it('says which kinds exist when the kind is unknown or missing, and rejects non-objects', () => {
    const known = listExperiments().map((e) => e.kind).join(', ');
    expect(known).toMatch(/demo.*translation/);
    expect(problems({ kind: 'figure99', name: 'x' })).toEqual([`kind: unknown experiment kind "figure99" (known kinds: ${known})`]);
    expect(problems({ name: 'x' })).toEqual([`kind: required (one of: ${known})`]);
    expect(problems([1])[0]).toMatch(/^\(top level\): expected a JSON object/);
    expect(() => parseExperimentScenario({ kind: 'nope' }, 'bad.json')).toThrow(/^bad\.json is not a valid scenario:\n {2}kind:/);
  });

  it('validates translation scenarios through the registry as before', () => {
    const tlb = JSON.parse(readFileSync(new URL('../../scenarios/tlb-reach.json', import.meta.url), 'utf8'));
    const p = parseExperimentScenario(tlb);
    expect(p.experiment.kind).toBe('translation');
    expect(p.params.memory).toBe(512 * 2 ** 20);
    expect(problems({ ...tlb, runs: [{ pattern: 'zigzag', workingSet: '1MiB' }] })[0]).toMatch(/^runs\[0\]\.pattern: /);
  });
});

describe('runner', () => {
  it('stamps name and seed, fills title and config, and applies a seed override', async () => {
    const r = await runScenario(DEMO_SCENARIO, { seed: 3 });
    expect(r.scenario).toBe('demo-run');
    expect(r.title).toBe('Demo experiment');
    expect(r.seed).toBe(3);
    expect(r.config).toMatchObject({ kind: 'demo', seed: 3, steps: 5 });
    const again = await runScenario(DEMO_SCENARIO, { seed: 3 });
    expect(again).toEqual(r);
    expect((await runScenario(DEMO_SCENARIO)).series).not.toEqual(r.series);
    await expect(runScenario(DEMO_SCENARIO, { seed: -2 })).rejects.toThrow(/seed:/);
  });

  it('reports clamped progress and stops at the next progress call once aborted', async () => {
    const seen: number[] = [];
    await runScenario(DEMO_SCENARIO, { progress: (f) => seen.push(f) });
    expect(seen).toEqual([0, 0.2, 0.4, 0.6, 0.8, 1]);
    const ac = new AbortController();
    await expect(runScenario(DEMO_SCENARIO, { signal: ac.signal, progress: (f) => { if (f >= 0.4) ac.abort(); } }))
      .rejects.toBeInstanceOf(RunAborted);
  });

  it('rejects an experiment result that is malformed, naming the experiment and field', async () => {
    registerExperiment({ kind: 'broken', title: 'b', schema: z.object({}).strict(), run: () => ({ summary: { x: NaN }, series: {}, plots: [] }) });
    try {
      await expect(runScenario({ kind: 'broken', name: 'b' })).rejects.toThrow(/experiment "broken" produced an invalid experiment result:\n {2}summary\.x:/);
    } finally {
      expect(unregisterExperiment('broken')).toBe(true);
    }
  });
});
