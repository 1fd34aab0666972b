// Hierarchical resource pools: min-funding revocation level by level. Memory an idle VM
// gives up to the idle tax goes to its siblings in its pool first; an all-idle pool is
// taxed as an idle VM is; pool min / max bound the members' total.
import { describe, it, expect } from 'vitest';
import { computePoolTargets, poolFloor } from '../../../src/hypervisor/policy/pools.js';
import { computeTargets, flatten, type PoolSpec, type TargetVm } from '../../../src/hypervisor/policy/policy.js';

const vm = (id: string, f: number, max = 1000, min = 0): TargetVm => ({ id, alloc: { min, max, shares: 1 }, pages: 250, activeFraction: f });
const tree = (a: Partial<PoolSpec> = {}, b: Partial<PoolSpec> = {}): PoolSpec => ({
  name: 'host', shares: 1, children: [
    { name: 'A', shares: 1, children: [{ vm: 'a-idle', shares: 1 }, { vm: 'a-busy', shares: 1 }], ...a },
    { name: 'B', shares: 1, children: [{ vm: 'b1', shares: 1 }, { vm: 'b2', shares: 1 }], ...b },
  ],
});
const obj = (m: Map<string, number>) => Object.fromEntries([...m].sort());

describe('hierarchical pools', () => {
  const vms = [vm('a-idle', 0), vm('a-busy', 1), vm('b1', 1), vm('b2', 1)];

  it('an idle VM\'s memory goes to its sibling in the pool first (τ = 0.75: the sibling gets 4× the idle VM)', () => {
    const t = computePoolTargets(1000, tree(), vms, 0.75);
    // Level 1: both pools have an active member, equal shares: 500 each. Level 2: in A,
    // ρ balance at τ = 0.75 gives a-busy 4 × a-idle: 400 / 100; B's two active VMs 250 each.
    expect(obj(t.frames)).toEqual({ 'a-busy': 400, 'a-idle': 100, b1: 250, b2: 250 });
    expect(obj(t.pools)).toEqual({ A: 500, B: 500, host: 1000 });
    // Flat (the old approximation): the idle VM's memory is spread over all three active VMs (1 : 4 : 4 : 4 of 1000).
    const { shares } = flatten(tree());
    const flat = computeTargets(1000, vms.map((v) => ({ ...v, shares: shares.get(v.id) })), 0.75).frames;
    for (const id of ['a-busy', 'b1', 'b2']) expect(Math.abs(flat.get(id)! - 4000 / 13)).toBeLessThanOrEqual(1);
    expect(Math.abs(flat.get('a-idle')! - 1000 / 13)).toBeLessThanOrEqual(1);
  });

  it('at τ = 0 nothing is taxed: shares alone, 250 each', () => {
    expect(obj(computePoolTargets(1000, tree(), vms, 0).frames)).toEqual({ 'a-busy': 250, 'a-idle': 250, b1: 250, b2: 250 });
  });

  it('an all-idle pool is taxed as an idle VM is: its memory goes to the other pool (1 : 4)', () => {
    const idle = [vm('a-idle', 0), vm('a-busy', 0), vm('b1', 1), vm('b2', 1)];
    const t = computePoolTargets(1000, tree(), idle, 0.75);
    expect(obj(t.pools)).toEqual({ A: 200, B: 800, host: 1000 });
    expect(obj(t.frames)).toEqual({ 'a-busy': 100, 'a-idle': 100, b1: 400, b2: 400 });
  });

  it('a pool max caps its members together; what it leaves goes to the other pool', () => {
    const t = computePoolTargets(1000, tree({ max: 300 }), vms, 0.75);
    expect(obj(t.frames)).toEqual({ 'a-busy': 240, 'a-idle': 60, b1: 350, b2: 350 });
  });

  it('a pool min reserves memory for its members together, even when they are idle', () => {
    const idle = [vm('a-idle', 0), vm('a-busy', 0), vm('b1', 1), vm('b2', 1)];
    const t = computePoolTargets(1000, tree({ min: 600 }), idle, 0.75);
    expect(obj(t.frames)).toEqual({ 'a-busy': 300, 'a-idle': 300, b1: 200, b2: 200 });
    expect(poolFloor(tree({ min: 600 }), idle)).toBe(600);
    expect(poolFloor(tree(), [vm('a-idle', 0, 1000, 70), vm('b1', 1, 1000, 30)])).toBe(100);
  });

  it('VMs capped at their max leave the rest to their sibling first', () => {
    const capped = [vm('a-idle', 1, 100), vm('a-busy', 1), vm('b1', 1), vm('b2', 1)];
    expect(obj(computePoolTargets(1000, tree(), capped, 0).frames)).toEqual({ 'a-busy': 400, 'a-idle': 100, b1: 250, b2: 250 });
  });

  it('refuses a VM outside the tree, a pool min above its max, and duplicate names', () => {
    expect(() => computePoolTargets(1000, tree(), [...vms, vm('c', 1)])).toThrow('c is not in the resource-pool tree');
    expect(() => computePoolTargets(1000, tree({ min: 500, max: 400 }), vms)).toThrow('pool "A": min 500 exceeds its max / limit 400');
    expect(() => computePoolTargets(1000, tree({ name: 'B' }), vms)).toThrow('pool name "B" appears twice');
  });
});
