// The sweep field spelled out: the cartesian product in order, padded point ids, seed lists,
// paths set into the file; and --shard's slices, which together hold every run exactly once.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { parsePath, parseSweep, planSweep, pointScenario } from '../../src/scenario/sweep.js';
import { parseShard, shardOf } from '../../src/cli/sweep.js';
import { ScenarioError } from '../../src/scenario/schema.js';
import { assertProperty } from '../helpers/seeds.js';

const FILE = { kind: 'host', name: 'x', seed: 9, vms: [{ name: 'a', shares: 1 }, { name: 'b' }] };

describe('planSweep', () => {
  it('the first path varies slowest, the last fastest; ids are padded to one width', () => {
    const json = { ...FILE, sweep: { vary: { a: [1, 2, 3, 4, 5, 6], b: ['x', 'y'] } } };
    const plan = planSweep(json, parseSweep(json, 'f')!, 'f');
    expect(plan.points).toHaveLength(12);
    expect(plan.points.slice(0, 3)).toEqual([
      { id: 'p00', params: { a: 1, b: 'x' } }, { id: 'p01', params: { a: 1, b: 'y' } }, { id: 'p02', params: { a: 2, b: 'x' } }]);
    expect(plan.points[11]).toEqual({ id: 'p11', params: { a: 6, b: 'y' } });
    expect(plan.seeds).toEqual([9]); // the file's seed when the sweep names none
    expect(plan.base).not.toHaveProperty('sweep');
  });

  it('seeds as a list or { from, count }; no vary is one point with the file as written', () => {
    const a = { ...FILE, sweep: { seeds: { from: 4, count: 3 } } };
    expect(planSweep(a, parseSweep(a, 'f')!, 'f')).toMatchObject({ points: [{ id: 'p0', params: {} }], seeds: [4, 5, 6] });
    const b = { ...FILE, sweep: { seeds: [7, 3] } };
    expect(planSweep(b, parseSweep(b, 'f')!, 'f').seeds).toEqual([7, 3]);
  });

  it('pointScenario sets nested paths, creates missing objects, sets the seed, leaves the plan untouched', () => {
    const json = { ...FILE, sweep: { vary: { 'vms[1].shares': [5], 'policy.tau': [0.5], 'vms[0].workload': [{ type: 'idle' }] } } };
    const plan = planSweep(json, parseSweep(json, 'f')!, 'f');
    const s = pointScenario(plan, plan.points[0], 3, 'f');
    expect(s).toEqual({ kind: 'host', name: 'x', seed: 3, vms: [{ name: 'a', shares: 1, workload: { type: 'idle' } }, { name: 'b', shares: 5 }], policy: { tau: 0.5 } });
    expect(plan.base).toEqual({ kind: 'host', name: 'x', seed: 9, vms: [{ name: 'a', shares: 1 }, { name: 'b' }] });
  });

  it('a path through something that is not an object or array is named', () => {
    const json = { ...FILE, label: 'q', sweep: { vary: { 'label.first': ['q'], 'vms.x': [1] } } };
    const plan = planSweep(json, parseSweep(json, 'f')!, 'f');
    expect(() => pointScenario(plan, plan.points[0], 1, 'f')).toThrow(ScenarioError);
    expect(() => pointScenario(plan, plan.points[0], 1, 'f')).toThrow('sweep.vary["label.first"]: label is not an object in the file');
  });

  it('more than 10 000 runs is refused', () => {
    const json = { ...FILE, sweep: { vary: { a: Array.from({ length: 101 }, (_, i) => i) }, seeds: { from: 0, count: 100 } } };
    expect(() => planSweep(json, parseSweep(json, 'f')!, 'f')).toThrow('sweep: 101 points × 100 seeds = 10100 runs, more than 10000');
  });

  it('parsePath reads keys and indices', () => {
    expect(parsePath('vms[0].workload.cacheFraction')).toEqual(['vms', 0, 'workload', 'cacheFraction']);
    expect(parsePath('runs[12]')).toEqual(['runs', 12]);
  });
});

describe('--shard K/N', () => {
  it('the N slices are disjoint and together hold every run once, in order', () => {
    assertProperty(fc.property(fc.nat(50), fc.integer({ min: 1, max: 9 }), (len, n) => {
      const items = Array.from({ length: len }, (_, i) => i);
      const slices = Array.from({ length: n }, (_, k) => shardOf(items, { index: k + 1, count: n }));
      expect(slices.flat().sort((a, b) => a - b)).toEqual(items);
      for (const s of slices) expect([...s].sort((a, b) => a - b)).toEqual(s);
      // Balanced: slice sizes differ by at most one.
      const sizes = slices.map((s) => s.length);
      expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(1);
    }), { seed: 1515 });
  });

  it('parses K/N and refuses anything else', () => {
    expect(parseShard('2/5')).toEqual({ index: 2, count: 5 });
    expect(parseShard(' 1 / 1 ')).toEqual({ index: 1, count: 1 });
    for (const bad of ['0/2', '3/2', '1/0', '1', 'a/b', '1/2/3', '-1/2']) expect(() => parseShard(bad)).toThrow(/expected K\/N/);
  });
});

describe('the sweep field in the reference and the JSON Schema', () => {
  it('memvisor experiments <kind> lists sweep.vary and sweep.seeds for every kind', async () => {
    const { kindReference } = await import('../../src/cli/run.js');
    for (const kind of ['host', 'translation', 'idle-tax']) {
      const text = kindReference(kind);
      expect(text).toMatch(/^sweep\.vary +object +path → list of values +\{\} +field path → the values it takes/m);
      expect(text).toMatch(/^sweep\.seeds +array of integer \(1 or more items\) \| object +optional +the seeds each point runs with/m);
    }
  });

  it('every kind of schema/scenario.schema.json accepts a sweep with vary and seeds', async () => {
    const { scenarioJsonSchema } = await import('../../scripts/scenario-schema.js');
    const schema = scenarioJsonSchema();
    for (const branch of schema.allOf) {
      const sweep = branch.then.properties.sweep;
      expect(sweep).toMatchObject({ type: 'object', additionalProperties: false });
      expect(Object.keys(sweep.properties)).toEqual(['vary', 'seeds']);
      expect(sweep.properties.seeds.anyOf[1]).toMatchObject({ required: ['from', 'count'] });
    }
  });
});
