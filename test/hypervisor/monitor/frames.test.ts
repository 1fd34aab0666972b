// Host frame allocator: pools, deterministic order, accounting, errors; a property test
// against a model (a set of free frames per pool and an owner map).
import { describe, it, expect, beforeAll } from 'vitest';
import fc from 'fast-check';
import { assertProperty } from '../../helpers/seeds.js';
import { Machine, hpaOf, type Hfn } from '../../../src/index.js';
import { HostFrames, HV_OWNER, OutOfFramesError } from '../../../src/hypervisor/index.js';

let m: Machine;
beforeAll(async () => { m = await Machine.create({ memoryBytes: 64 * 4096 }); });
const make = (hv = 16) => new HostFrames(m.memory, { totalFrames: 64, hypervisorFrames: hv });

describe('host frame allocator', () => {
  it('puts the hypervisor region at the top and hands out lowest frames first', () => {
    const f = make();
    expect(f.hypervisorStart).toBe(48);
    expect([f.alloc(1), f.alloc(1), f.alloc(2)]).toEqual([0, 1, 2]);
    expect([f.alloc(HV_OWNER), f.alloc(HV_OWNER)]).toEqual([48, 49]);
  });

  it('reuses the most recently freed frame first (LIFO), deterministically', () => {
    const f = make();
    const a = [f.alloc(1), f.alloc(1), f.alloc(1), f.alloc(1)];
    f.free(a[1], 1); f.free(a[3], 1);
    expect([f.alloc(1), f.alloc(1), f.alloc(1)]).toEqual([a[3], a[1], 4]);
  });

  it('counts frames by owner and pool', () => {
    const f = make();
    for (let i = 0; i < 5; i++) f.alloc(1);
    for (let i = 0; i < 3; i++) f.alloc(2);
    f.alloc(HV_OWNER);
    expect(f.counts()).toEqual({ total: 64, free: 55, vmFree: 40, hypervisorFree: 15, hypervisor: 1, byVm: { 1: 5, 2: 3 } });
    expect(f.ownerOf(0 as Hfn)).toBe(1);
    expect(f.ownerOf(5 as Hfn)).toBe(2);
  });

  it('zeroes frames on allocation (a frame may hold a previous owner\'s bytes)', () => {
    const f = make();
    const h = f.alloc(1);
    m.memory.fill(hpaOf(h), 0xab, 4096);
    f.free(h, 1);
    const h2 = f.alloc(2);
    expect(h2).toBe(h);
    expect(m.memory.read(hpaOf(h2), 4096).every((b) => b === 0)).toBe(true);
  });

  it('reports an empty pool: tryAlloc gives null, alloc throws OutOfFramesError', () => {
    const f = make(60);
    for (let i = 0; i < 4; i++) f.alloc(1);
    expect(f.tryAlloc(1)).toBeNull();
    expect(() => f.alloc(7)).toThrow(OutOfFramesError);
    expect(() => f.alloc(7)).toThrow(/out of host frames in the vm pool \(allocating for VM 7\)/);
    expect(f.tryAlloc(HV_OWNER)).toBe(4); // the other pool is unaffected
  });

  it('rejects double frees and frees by the wrong owner', () => {
    const f = make();
    const h = f.alloc(1);
    expect(() => f.free(h, 2)).toThrow(/VM 2 frees host frame 0x0 owned by VM 1/);
    f.free(h, 1);
    expect(() => f.free(h, 1)).toThrow(/double free/);
  });

  it('claims a particular range (a native VM) and refuses frames already owned', () => {
    const f = make();
    f.claimRange(1, 0, 8);
    expect(f.counts().byVm).toEqual({ 1: 8 });
    expect(f.alloc(2)).toBe(8);
    expect(() => f.claimRange(3, 8, 2)).toThrow(/not free/);
    expect(() => f.claimRange(3, 47, 2)).toThrow(/outside the pool/);
  });

  it('finds aligned contiguous runs for large pages, or null', () => {
    const f = make();
    f.alloc(1); // frame 0 taken: the first 16-aligned run starts at 16
    expect(f.tryAllocContiguous(2, 16, 16)).toBe(16);
    expect(f.usedBy(2)).toBe(16);
    expect(f.tryAllocContiguous(2, 16, 16)).toBe(32);
    expect(f.tryAllocContiguous(2, 16, 16)).toBeNull(); // 0..15 has frame 0, 48.. is the hypervisor's
    const h = f.alloc(3); // singles keep working around the runs
    expect(h).toBeGreaterThanOrEqual(1);
    expect(h).toBeLessThan(16);
  });

  it('matches a model under random alloc/free/claim sequences', () => {
    const op = fc.oneof(
      fc.record({ k: fc.constant('alloc' as const), owner: fc.constantFrom(1, 2, 3, HV_OWNER) }),
      fc.record({ k: fc.constant('free' as const), pick: fc.nat() }),
      fc.record({ k: fc.constant('claim' as const), owner: fc.constantFrom(1, 2), start: fc.nat(63), n: fc.integer({ min: 1, max: 4 }) }),
    );
    assertProperty(fc.property(fc.array(op, { maxLength: 200 }), (ops) => {
      const f = make();
      const owned = new Map<number, number>(); // hfn → owner
      for (const o of ops) {
        if (o.k === 'alloc') {
          const h = f.tryAlloc(o.owner);
          const inPool = (x: number) => (o.owner === HV_OWNER ? x >= 48 : x < 48);
          const freeInPool = [...Array(64).keys()].filter((x) => inPool(x) && !owned.has(x));
          if (h === null) { expect(freeInPool).toEqual([]); continue; }
          expect(freeInPool).toContain(h);
          owned.set(h, o.owner);
        } else if (o.k === 'free') {
          const keys = [...owned.keys()];
          if (keys.length === 0) continue;
          const h = keys[o.pick % keys.length];
          f.free(h as Hfn, owned.get(h)!);
          owned.delete(h);
        } else {
          const range = [...Array(o.n).keys()].map((i) => o.start + i);
          const ok = range.every((x) => x < 48 && !owned.has(x));
          if (!ok) { expect(() => f.claimRange(o.owner, o.start, o.n)).toThrow(); continue; }
          f.claimRange(o.owner, o.start, o.n);
          for (const x of range) owned.set(x, o.owner);
        }
        const c = f.counts();
        expect(c.free).toBe(64 - owned.size);
        expect(c.hypervisor).toBe([...owned.values()].filter((x) => x === HV_OWNER).length);
        for (const who of [1, 2, 3]) expect(f.usedBy(who)).toBe([...owned.values()].filter((x) => x === who).length);
      }
      for (const [h, who] of owned) expect(f.ownerOf(h as Hfn)).toBe(who);
    }), { numRuns: 200, seed: 0xf4a_3e50 });
  });
});
