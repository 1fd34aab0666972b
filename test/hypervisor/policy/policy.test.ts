// Allocation policy: validation, admission control (§6.1), hierarchical shares, the idle
// memory tax ρ (§5.2), and min-funding revocation (§5.1) with exact fixed points, the
// Figure 7 experiment in frames, and a property test against the no-profitable-trade rule.
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { assertProperty } from '../../helpers/seeds.js';
import {
  allocationProblems, validateAllocation, admit, flatten, idleCost, rho, computeTargets, conventionalShares,
  floorOf, ceilingOf, type VmAllocation, type TargetVm,
} from '../../../src/hypervisor/policy/policy.js';

const MiB = 256; // frames per MiB
const alloc = (min: number, max: number, shares = 1000, extra: Partial<VmAllocation> = {}): VmAllocation => ({ min, max, shares, ...extra });

describe('allocation validation', () => {
  it('accepts a valid allocation and reports floor and ceiling', () => {
    const a = alloc(100, 1000, 10, { reservation: 200, limit: 800 });
    expect(allocationProblems(a)).toEqual([]);
    expect([floorOf(a), ceilingOf(a)]).toEqual([200, 800]);
    expect([floorOf(alloc(100, 1000)), ceilingOf(alloc(100, 1000))]).toEqual([100, 1000]);
  });

  it('names each problem', () => {
    expect(allocationProblems(alloc(600, 500))).toEqual(['min (600) exceeds max (500)']);
    expect(allocationProblems(alloc(0, 500, 0))[0]).toMatch(/shares must be a finite number > 0, got 0/);
    expect(allocationProblems(alloc(0, 500, -5))[0]).toMatch(/shares .* got -5/);
    expect(allocationProblems(alloc(-1, 500))[0]).toMatch(/min must be a whole number of frames >= 0, got -1/);
    expect(allocationProblems(alloc(0, 0))[0]).toMatch(/max must be .* >= 1, got 0/);
    expect(allocationProblems(alloc(1.5, 500))[0]).toMatch(/min .* got 1.5/);
    expect(allocationProblems(alloc(0, 500, 1, { reservation: 501 }))).toEqual(['reservation (501) exceeds max (500)']);
    expect(allocationProblems(alloc(100, 500, 1, { limit: 99 }))).toEqual(['limit (99) is below the guaranteed floor (100)']);
    expect(() => validateAllocation(alloc(600, 500), 'vm1')).toThrow('vm1: invalid allocation: min (600) exceeds max (500)');
  });

  it('ESX 2.5 share conventions: 5 / 10 / 20 shares per MiB', () => {
    expect(conventionalShares(256 * MiB)).toBe(2560);
    expect(conventionalShares(1024 * MiB, 'low')).toBe(5120);
    expect(conventionalShares(1024 * MiB, 'high')).toBe(20480);
  });
});

describe('admission control', () => {
  const host = { frames: 1000, overheadPerVm: 10, swapFrames: 500 };
  const existing = [alloc(300, 500)]; // reserves 310 frames of memory and 200 of swap

  it('admits when min + overhead fits memory and max − min fits swap, exactly at the limit too', () => {
    expect(admit(host, existing, alloc(600, 700))).toEqual({ ok: true, memoryReserved: 920, memoryFree: 80, overheadReserved: 20, overheadFree: 80, swapReserved: 300, swapFree: 200 });
    expect(admit(host, existing, alloc(680, 980))).toEqual({ ok: true, memoryReserved: 1000, memoryFree: 0, overheadReserved: 20, overheadFree: 0, swapReserved: 500, swapFree: 0 });
  });

  it('refuses one frame over, naming the resource', () => {
    const mem = admit(host, existing, alloc(681, 681));
    expect(mem.ok).toBe(false);
    expect(!mem.ok && mem.reason).toBe('not enough unreserved memory: the candidate needs min 2.66 MiB (681 frames) + overhead 0.039 MiB (10 frames) = 2.699 MiB (691 frames), ' +
      '2.695 MiB (690 frames) is unreserved of 3.906 MiB (1000 frames) (min + overhead of all VMs would be 3.91 MiB (1001 frames))');
    const swap = admit(host, existing, alloc(0, 301));
    expect(!swap.ok && swap.reason).toBe('not enough swap: the candidate needs max − min 1.176 MiB (301 frames), 1.172 MiB (300 frames) is unreserved of 1.953 MiB (500 frames) ' +
      '(max − min of all VMs would be 1.957 MiB (501 frames))');
  });

  it('uses the reservation as the floor and refuses an invalid candidate with its problem', () => {
    expect(admit(host, [], alloc(0, 900, 1, { reservation: 400 }))).toMatchObject({ ok: true, memoryReserved: 410, swapReserved: 500 });
    expect(admit(host, [], alloc(5, 4))).toEqual({ ok: false, reason: 'invalid allocation: min (5) exceeds max (4)' });
    expect(() => admit({ ...host, frames: -1 }, [], alloc(0, 1))).toThrow(/host frames/);
  });
});

describe('resource pools', () => {
  it('flattens hierarchical shares and turns limits into groups', () => {
    const f = flatten({
      name: 'root', shares: 1000, children: [
        { name: 'A', shares: 3, limit: 500, children: [{ vm: 'a1', shares: 1 }, { vm: 'a2', shares: 3 }] },
        { vm: 'b', shares: 1 },
      ],
    });
    expect(Object.fromEntries(f.shares)).toEqual({ a1: 187.5, a2: 562.5, b: 250 });
    expect(f.groups).toEqual([{ pool: 'A', limit: 500, members: ['a1', 'a2'] }]);
  });

  it('refuses duplicate names and non-positive shares', () => {
    expect(() => flatten({ name: 'r', shares: 1, children: [{ vm: 'x', shares: 1 }, { vm: 'x', shares: 2 }] })).toThrow('VM "x" appears twice');
    expect(() => flatten({ name: 'r', shares: 1, children: [{ vm: 'x', shares: 0 }] })).toThrow('VM "x" in pool "r": shares must be > 0, got 0');
    expect(() => flatten({ name: 'r', shares: 1, children: [{ name: 'r', shares: 1, children: [] }] })).toThrow('pool name "r" appears twice');
  });

  it('a pool limit caps its members\' targets; the rest goes to others', () => {
    const { shares, groups } = flatten({
      name: 'root', shares: 1000, children: [
        { name: 'A', shares: 1, limit: 300, children: [{ vm: 'a1', shares: 1 }, { vm: 'a2', shares: 1 }] },
        { vm: 'b', shares: 1 },
      ],
    });
    const vms: TargetVm[] = ['a1', 'a2', 'b'].map((id) => ({ id, alloc: alloc(0, 1000), pages: 0, activeFraction: 1, shares: shares.get(id) }));
    // Unlimited: a1 = a2 = 250, b = 500 (shares 250 : 250 : 500). Limit 300 leaves A 150 + 150.
    expect(Object.fromEntries(computeTargets(1000, vms, 0).frames)).toEqual({ a1: 250, a2: 250, b: 500 }); // without the group
    expect(Object.fromEntries(computeTargets(1000, vms, 0, { groups }).frames)).toEqual({ a1: 150, a2: 150, b: 700 });
    expect(Object.fromEntries(computeTargets(1000, vms, 0, { groups, from: 'current' }).frames)).toEqual({ a1: 150, a2: 150, b: 700 });
  });
});

describe('idle memory tax', () => {
  it('k = 1/(1 − τ); ρ = S / (P (f + k (1 − f)))', () => {
    expect(idleCost(0.75)).toBe(4);
    expect(idleCost(0)).toBe(1);
    expect(rho(1000, 100, 1)).toBe(10);          // fully active: S/P
    expect(rho(1000, 100, 0)).toBe(2.5);         // fully idle: S/(4P)
    expect(rho(1000, 100, 0.25)).toBe(1000 / 325); // f + 4(1 − f) = 3.25 (not the fact sheet's 2.5)
    expect(rho(1000, 100, 0, 0)).toBe(10);       // τ = 0: pure shares per page
    expect(rho(1000, 0, 0.5)).toBe(Infinity);
  });

  it('refuses τ = 1 (infinite idle cost) and other bad input', () => {
    expect(() => idleCost(1)).toThrow('tax rate tau must be in [0, 1), got 1 (at tau = 1 an idle page would cost infinitely many active pages; use e.g. 0.99)');
    expect(() => rho(1, 1, 0.5, -0.1)).toThrow('tax rate tau must be in [0, 1), got -0.1');
    expect(() => rho(1, 1, 1.2)).toThrow('active fraction f must be in [0, 1], got 1.2');
    expect(() => rho(0, 1, 1)).toThrow('shares must be > 0');
  });
});

describe('min-funding revocation', () => {
  const pair = (fIdle: number, fActive: number, max: number, minIdle = 0): TargetVm[] => [
    { id: 'active', alloc: alloc(0, max), pages: max, activeFraction: fActive },
    { id: 'idle', alloc: alloc(minIdle, max), pages: max, activeFraction: fIdle },
  ];
  const t = (total: number, vms: TargetVm[], tau: number, o = {}) => Object.fromEntries(computeTargets(total, vms, tau, o).frames);

  it('unconstrained fixed point: equal at τ = 0, P_active = 4·P_idle at τ = 0.75 (ρ equal)', () => {
    expect(t(5000, pair(0, 1, 10000), 0)).toEqual({ active: 2500, idle: 2500 });
    const r = t(5000, pair(0, 1, 10000), 0.75);
    expect(r).toEqual({ active: 4000, idle: 1000 });
    expect(rho(1000, r.idle, 0)).toBe(rho(1000, r.active, 1)); // S/(P_i·4) = S/P_a
  });

  it('Figure 7 in frames: two 256 MiB VMs sharing 358 MiB converge on 179 MiB each at τ = 0; at τ = 0.75 the active one gets its max', () => {
    const vms = pair(0.05, 1, 256 * MiB);
    expect(t(358 * MiB, vms, 0)).toEqual({ active: 179 * MiB, idle: 179 * MiB });
    // Unconstrained, P_a = 3.85·P_i would exceed max: active capped at 256 MiB, idle keeps 358 − 256 = 102 MiB.
    expect(t(358 * MiB, vms, 0.75)).toEqual({ active: 256 * MiB, idle: 102 * MiB });
    // Active fraction 0.05 at half the active VM's size: 0.05 + 4·0.95 = 3.85, so P_a = 3.85·P_i without the cap.
    expect(t(4850, pair(0.05, 1, 10000), 0.75)).toEqual({ active: 3850, idle: 1000 });
    // The idle VM's min binds ("VM1 reduced to min size").
    expect(t(358 * MiB, pair(0.05, 1, 256 * MiB, 128 * MiB), 0.75)).toEqual({ active: 230 * MiB, idle: 128 * MiB });
  });

  it('from current allocations: trades pages to the same fixed point, gradually with maxMoves', () => {
    const vms = pair(0.05, 1, 256 * MiB).map((v) => ({ ...v, pages: 179 * MiB }));
    const step = computeTargets(358 * MiB, vms, 0.75, { from: 'current', maxMoves: 1000 });
    expect(Object.fromEntries(step.frames)).toEqual({ active: 179 * MiB + 1000, idle: 179 * MiB - 1000 });
    expect(step).toMatchObject({ traded: 1000, revoked: 0, granted: 0, free: 0 });
    const full = computeTargets(358 * MiB, vms, 0.75, { from: 'current' });
    expect(Object.fromEntries(full.frames)).toEqual({ active: 256 * MiB, idle: 102 * MiB });
    expect(full.traded).toBe(77 * MiB);
    // At τ = 0 the current (equal) allocation is already the fixed point: nothing moves.
    expect(computeTargets(358 * MiB, vms, 0, { from: 'current' }).traded).toBe(0);
  });

  it('grants free memory to the highest ρ, revokes overcommit from the lowest, never past floor or ceiling', () => {
    const vms: TargetVm[] = [
      { id: 'a', alloc: alloc(100, 400, 2000), pages: 100, activeFraction: 1 },
      { id: 'b', alloc: alloc(100, 400, 1000), pages: 100, activeFraction: 1 },
    ];
    // 600 frames: b's ρ = 1000/P, a's = 2000/P → a gets twice b's pages: 400 (its max) and 200.
    expect(computeTargets(600, vms, 0.75, { from: 'current' })).toMatchObject({ granted: 400, revoked: 0, free: 0 });
    expect(t(600, vms, 0.75, { from: 'current' })).toEqual({ a: 400, b: 200 });
    expect(computeTargets(1000, vms, 0.75)).toMatchObject({ free: 200, shortfall: 0 });
    expect(computeTargets(150, vms, 0.75)).toMatchObject({ shortfall: 50, free: 0 });
    expect(t(150, vms, 0.75)).toEqual({ a: 100, b: 100 });
  });

  // Found by the property over other seeds: with every VM at 0 pages all ρ are infinite,
  // and the page went to the lowest id instead of the VM that pays most for it.
  it('grants a page to the VM whose ρ one page richer is highest, from zero pages too', () => {
    const vms: TargetVm[] = [0, 0, 0.5].map((f, i) => ({ id: `vm${i}`, alloc: alloc(0, 1, 1), pages: 0, activeFraction: f }));
    // τ = 0.5, k = 2: one page is worth ρ = 1 / (1 · 2) = 0.5 to an idle VM, 1 / (0.5 + 2 · 0.5) = 2/3 to vm2.
    expect(t(1, vms, 0.5, { from: 'current' })).toEqual({ vm0: 0, vm1: 0, vm2: 1 });
    expect(t(1, vms, 0.5)).toEqual({ vm0: 0, vm1: 0, vm2: 1 });
    expect(t(2, vms, 0.5, { from: 'current' })).toEqual({ vm0: 1, vm1: 0, vm2: 1 });
  });

  it('breaks ties by id and refuses bad input', () => {
    const vms: TargetVm[] = ['b', 'a'].map((id) => ({ id, alloc: alloc(0, 10), pages: 10, activeFraction: 1 }));
    expect(t(15, vms, 0)).toEqual({ a: 7, b: 8 }); // the last page is revoked from "a"
    expect(() => computeTargets(10, [vms[0], vms[0]], 0)).toThrow('VM id "b" appears twice');
    expect(() => computeTargets(10, [{ ...vms[0], alloc: alloc(5, 1) }], 0)).toThrow('VM "b": invalid allocation: min (5) exceeds max (1)');
    expect(() => computeTargets(10, [{ ...vms[0], activeFraction: 2 }], 0)).toThrow('active fraction f must be in [0, 1], got 2');
    expect(() => computeTargets(10, vms, 1)).toThrow(/tau must be in \[0, 1\)/);
  });

  // The oracle: bounds hold, memory is used up to what the ceilings allow, and no page
  // could move from one VM to another that would still pay strictly more for it.
  it('property: targets are bounded, use the memory, and leave no profitable trade', () => {
    const vmArb = fc.record({
      min: fc.integer({ min: 0, max: 300 }), extra: fc.integer({ min: 1, max: 500 }),
      shares: fc.integer({ min: 1, max: 5000 }), f: fc.constantFrom(0, 0.05, 0.25, 0.5, 1), pages: fc.integer({ min: 0, max: 900 }),
    });
    assertProperty(fc.property(fc.array(vmArb, { minLength: 1, maxLength: 6 }), fc.integer({ min: 0, max: 3000 }),
      fc.constantFrom(0, 0.5, 0.75), fc.constantFrom('max' as const, 'current' as const), (specs, total, tau, from) => {
        const vms: TargetVm[] = specs.map((s, i) => ({ id: `vm${i}`, alloc: alloc(s.min, s.min + s.extra, s.shares), pages: s.pages, activeFraction: s.f }));
        const r = computeTargets(total, vms, tau, { from });
        const P = vms.map((v) => r.frames.get(v.id)!);
        const floors = vms.reduce((s, v) => s + v.alloc.min, 0), ceilings = vms.reduce((s, v) => s + v.alloc.max, 0);
        vms.forEach((v, i) => { expect(P[i]).toBeGreaterThanOrEqual(v.alloc.min); expect(P[i]).toBeLessThanOrEqual(v.alloc.max); });
        const sum = P.reduce((a, b) => a + b, 0);
        expect(sum).toBe(Math.max(floors, Math.min(total, ceilings)));
        expect(r.shortfall).toBe(Math.max(0, floors - total));
        expect(r.free).toBe(Math.max(0, total - sum));
        const cost = (f: number) => f + (1 / (1 - tau)) * (1 - f);
        for (let i = 0; i < vms.length; i++) {
          for (let j = 0; j < vms.length; j++) {
            if (i === j || P[i] >= vms[i].alloc.max || P[j] <= vms[j].alloc.min) continue;
            const buyerAfter = vms[i].alloc.shares / ((P[i] + 1) * cost(vms[i].activeFraction));
            expect(buyerAfter).toBeLessThanOrEqual(rho(vms[j].alloc.shares, P[j], vms[j].activeFraction, tau) * (1 + 1e-12));
          }
        }
      }), { numRuns: 200, seed: 7 });
  });
});
