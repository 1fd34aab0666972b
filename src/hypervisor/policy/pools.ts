// Hierarchical resource pools (ESX-style): min-funding revocation applied level by level.
//
//                       host budget
//                     ┌─────┴─────┐            level 1: the root's children compete
//                 pool A        pool B                  (shares, floor, ceiling, f)
//               ┌───┴───┐     ┌───┴───┐        level 2: each pool's children divide
//             a-idle  a-busy  b1      b2               what the pool got
//
// At each pool, its memory (its target from the level above) is divided among its
// children by computeTargets: min-funding revocation with the idle memory tax, each child
// with its shares among its siblings, its floor, its ceiling and its active fraction. So a
// pool's members compete for the pool's memory first: what an idle member gives up to the
// tax, or a capped member cannot use, goes to its siblings in the pool, and leaves the pool
// only when none of them can take it.
//
// A child pool as a client of its parent:
// - floor   = max(pool min, Σ children's floors);
// - ceiling = min(pool max, pool limit, Σ children's ceilings);
// - f       = the largest active fraction among its members (recursively): a pool pays the
//             price of its most active member, whose use the pool's memory goes to first.
//             An all-idle pool is taxed as an idle VM is; a pool with an active member
//             keeps its share-based entitlement, and its idle members' memory goes to that
//             member. (Limitation: if that member is at its ceiling, the idle members keep
//             what it cannot take instead of giving it to other pools.)
// - pages   = Σ its members' pages (used only with from: 'current').
//
// Flat flatten() + computeTargets is the approximation this replaces in the manager:
// there, an idle VM's memory goes to every VM in proportion to its effective shares.

import { computeTargets, floorOf, ceilingOf, flatten, isPool, validateAllocation, DEFAULT_TAU,
  type PoolSpec, type PoolChild, type TargetVm } from './policy.js';

export interface PoolTargets {
  /** Target frames per VM id. */
  frames: Map<string, number>;
  /** Target frames per pool (the root's is its share of the host budget). */
  pools: Map<string, number>;
  /** Frames the floors exceed the budget by (0 unless admission was bypassed). */
  shortfall: number;
}

interface Node {
  key: string; name: string; shares: number; floor: number; ceiling: number; pages: number; f: number;
  children: Node[]; vm?: TargetVm;
}

/** Builds the client tree; VMs named in the tree but not in `vms` are left out (not powered on). */
function build(spec: PoolChild, byId: Map<string, TargetVm>): Node | null {
  if (!isPool(spec)) {
    const v = byId.get(spec.vm);
    if (!v) return null;
    return { key: `vm:${spec.vm}`, name: spec.vm, shares: spec.shares, floor: floorOf(v.alloc), ceiling: ceilingOf(v.alloc),
      pages: v.pages, f: v.activeFraction, children: [], vm: v };
  }
  const children = spec.children.map((c) => build(c, byId)).filter((c): c is Node => c !== null);
  const cap = Math.min(spec.max ?? Infinity, spec.limit ?? Infinity);
  const floor = Math.max(spec.min ?? 0, children.reduce((a, c) => a + c.floor, 0));
  const ceiling = Math.min(cap, children.reduce((a, c) => a + c.ceiling, 0));
  if (floor > ceiling && children.length) {
    throw new RangeError(`pool "${spec.name}": its floor ${floor} (min, members' floors) exceeds its ceiling ${ceiling} (max, limit, members' ceilings)`);
  }
  return { key: `pool:${spec.name}`, name: spec.name, shares: spec.shares, floor: Math.min(floor, ceiling), ceiling,
    pages: children.reduce((a, c) => a + c.pages, 0), f: children.reduce((a, c) => Math.max(a, c.f), 0), children };
}

/** Divides `budget` frames of pool `n` among its children, level by level. */
function divide(n: Node, budget: number, tau: number, from: 'max' | 'current', out: PoolTargets): void {
  out.pools.set(n.name, budget);
  const clients = n.children.filter((c) => c.ceiling > 0);
  for (const c of n.children) if (c.ceiling === 0) assign(c, 0, tau, from, out);
  if (!clients.length) return;
  const t = computeTargets(budget, clients.map((c) => ({
    id: c.key, alloc: { min: c.floor, max: c.ceiling, shares: c.shares }, pages: c.pages, activeFraction: c.f,
  })), tau, { from });
  out.shortfall += t.shortfall;
  for (const c of clients) assign(c, t.frames.get(c.key)!, tau, from, out);
}

function assign(c: Node, frames: number, tau: number, from: 'max' | 'current', out: PoolTargets): void {
  if (c.vm) out.frames.set(c.vm.id, frames);
  else divide(c, frames, tau, from, out);
}

/**
 * Target frames per VM with hierarchical pools (see the header). `vms` are the VMs
 * powered on; each must be a leaf of the tree (its tree shares are used; alloc.shares is
 * ignored), and tree leaves not in `vms` are skipped. The root gets min(budget, its
 * ceiling), at least its floor.
 */
export function computePoolTargets(budget: number, root: PoolSpec, vms: readonly TargetVm[], tau = DEFAULT_TAU,
  o: { from?: 'max' | 'current' } = {}): PoolTargets {
  const { shares } = flatten(root); // checks names, shares, min/max/limit and duplicates
  const byId = new Map<string, TargetVm>();
  for (const v of vms) {
    validateAllocation(v.alloc, `VM "${v.id}"`);
    if (!shares.has(v.id)) throw new Error(`${v.id} is not in the resource-pool tree`);
    if (byId.has(v.id)) throw new RangeError(`VM id "${v.id}" appears twice`);
    byId.set(v.id, v);
  }
  const out: PoolTargets = { frames: new Map(), pools: new Map(), shortfall: 0 };
  const tree = build(root, byId)!;
  const top = Math.max(tree.floor, Math.min(budget, tree.ceiling));
  out.shortfall = Math.max(0, tree.floor - budget);
  divide(tree, top, tau, o.from ?? 'max', out);
  return out;
}

/** The frames a pool tree's floors reserve for these VMs: max(pool min, members' floors), level by level. */
export function poolFloor(root: PoolSpec, vms: readonly TargetVm[]): number {
  return build(root, new Map(vms.map((v) => [v.id, v])))!.floor;
}
