// The p2m: entry layout and state bits in Wasm memory, listeners, views that survive
// memory growth, and a property test against a Map.
import { describe, it, expect, beforeAll } from 'vitest';
import fc from 'fast-check';
import { assertProperty } from '../../helpers/seeds.js';
import { Machine, type Gfn, type Hfn } from '../../../src/index.js';
import { P2m, P2M, frameField, stateBits, isUnbacked } from '../../../src/hypervisor/index.js';

let m: Machine;
beforeAll(async () => { m = await Machine.create({ memoryBytes: 1 << 20 }); });
const g = (n: number) => n as Gfn;
const h = (n: number) => n as Hfn;

describe('p2m', () => {
  it('starts all unbacked (zero words in linear memory)', () => {
    const p = new P2m(m.core, 16);
    expect(p.raw(g(3))).toBe(0);
    expect(isUnbacked(p.raw(g(3)))).toBe(true);
    expect(p.lookup(g(3))).toBeNull();
    expect(p.backed).toBe(0);
  });

  it('stores hfn in bits 23:0 and states in bits 29:24, in the core\'s memory', () => {
    const p = new P2m(m.core, 16);
    p.map(g(5), h(0xabcde), P2M.WRITE_PROTECTED);
    const word = new Uint32Array(m.core.memory.buffer, p.ptr, 16)[5];
    expect(word).toBe(0x0300_0000 | 0xabcde); // P (24) | WP (25) | hfn
    expect(p.lookup(g(5))).toBe(0xabcde);
    expect(stateBits(word)).toBe(P2M.PRESENT | P2M.WRITE_PROTECTED);
    expect(p.backed).toBe(1);
  });

  it('sets and clears state bits; PRESENT only through map/unmap', () => {
    const p = new P2m(m.core, 16);
    p.map(g(1), h(7));
    p.setState(g(1), P2M.SHARED | P2M.PAGE_TABLE);
    expect(p.state(g(1))).toBe(P2M.PRESENT | P2M.SHARED | P2M.PAGE_TABLE);
    p.setState(g(1), 0, P2M.SHARED);
    expect(p.state(g(1))).toBe(P2M.PRESENT | P2M.PAGE_TABLE);
    expect(() => p.setState(g(1), P2M.PRESENT)).toThrow(/not a state change/);
    expect(() => p.map(g(1), h(7), P2M.SWAPPED)).toThrow(/contradict present/);
  });

  it('unmaps to unbacked, swapped (with a slot) or ballooned, keeping the page-table bit', () => {
    const p = new P2m(m.core, 16);
    p.map(g(2), h(9));
    p.setState(g(2), P2M.PAGE_TABLE);
    expect(p.unmap(g(2), P2M.SWAPPED, 1234)).toBe(9);
    expect(p.raw(g(2))).toBe(P2M.SWAPPED | P2M.PAGE_TABLE | 1234);
    expect(frameField(p.raw(g(2)))).toBe(1234);
    expect(isUnbacked(p.raw(g(2)))).toBe(false);
    p.map(g(3), h(10));
    expect(p.unmap(g(3), P2M.BALLOONED)).toBe(10);
    expect(p.lookup(g(3))).toBeNull();
    expect(p.unmap(g(4))).toBeNull();
    expect(p.backed).toBe(0);
    expect(() => p.unmap(g(3), 0, 5)).toThrow(/swap slot/);
  });

  it('notifies listeners of each change with the old and new words, and unsubscribes', () => {
    const p = new P2m(m.core, 16);
    const seen: [number, number, number][] = [];
    const off = p.onChange((gfn, before, after) => seen.push([gfn, before, after]));
    p.map(g(1), h(3));
    p.map(g(1), h(3)); // no change, no notification
    p.setState(g(1), P2M.WRITE_PROTECTED);
    p.unmap(g(1));
    off();
    p.map(g(2), h(4));
    expect(seen).toEqual([
      [1, 0, P2M.PRESENT | 3],
      [1, P2M.PRESENT | 3, P2M.PRESENT | P2M.WRITE_PROTECTED | 3],
      [1, P2M.PRESENT | P2M.WRITE_PROTECTED | 3, 0],
    ]);
  });

  it('keeps working after the core\'s linear memory grows (the view is re-created)', () => {
    const p = new P2m(m.core, 64);
    p.map(g(63), h(42));
    const before = m.core.memory.buffer;
    m.createBatch(1 << 16); // ~1.5 MiB of core memory: forces a grow
    expect(m.core.memory.buffer).not.toBe(before);
    expect(p.lookup(g(63))).toBe(42);
    p.map(g(62), h(41));
    expect(new Uint32Array(m.core.memory.buffer, p.ptr, 64)[62]).toBe(P2M.PRESENT | 41);
  });

  it('iterates and counts by mask', () => {
    const p = new P2m(m.core, 8);
    p.map(g(0), h(1)); p.map(g(3), h(2), P2M.SHARED); p.map(g(5), h(3));
    const shared: number[] = [];
    p.forEach((gfn) => shared.push(gfn), P2M.SHARED, P2M.SHARED);
    expect(shared).toEqual([3]);
    expect(p.count(P2M.PRESENT, P2M.PRESENT)).toBe(3);
    expect(p.count(P2M.PRESENT | P2M.SWAPPED | P2M.BALLOONED, 0)).toBe(5);
  });

  it('rejects gfns outside the map and hfns that do not fit', () => {
    const p = new P2m(m.core, 8);
    expect(() => p.raw(g(8))).toThrow(/outside the p2m/);
    expect(() => p.map(g(0), h(1 << 24))).toThrow(/does not fit/);
  });

  it('behaves like a Map under random operations, listeners included', () => {
    const N = 32;
    const op = fc.oneof(
      fc.tuple(fc.constant('map' as const), fc.nat(N - 1), fc.nat(0xffffff), fc.constantFrom(0, P2M.WRITE_PROTECTED, P2M.SHARED)),
      fc.tuple(fc.constant('unmap' as const), fc.nat(N - 1), fc.constantFrom(0, P2M.BALLOONED), fc.constant(0)),
      fc.tuple(fc.constant('state' as const), fc.nat(N - 1), fc.constantFrom(P2M.PAGE_TABLE, P2M.WRITE_PROTECTED), fc.boolean().map(Number)),
    );
    assertProperty(fc.property(fc.array(op, { maxLength: 100 }), (ops) => {
      const p = new P2m(m.core, N);
      const model = new Map<number, number>();
      const mirror = new Map<number, number>(); // rebuilt from notifications only
      p.onChange((gfn, _b, after) => mirror.set(gfn, after));
      for (const [k, gfn, a, b] of ops) {
        const old = model.get(gfn) ?? 0;
        if (k === 'map') model.set(gfn, P2M.PRESENT | b | a | (old & P2M.PAGE_TABLE));
        else if (k === 'unmap') model.set(gfn, a | (old & P2M.PAGE_TABLE));
        else model.set(gfn, b ? old | a : old & ~a);
        if (k === 'map') p.map(g(gfn), h(a), b);
        else if (k === 'unmap') p.unmap(g(gfn), a);
        else p.setState(g(gfn), b ? a : 0, b ? 0 : a);
      }
      for (let i = 0; i < N; i++) {
        expect(p.raw(g(i))).toBe(model.get(i) ?? 0);
        expect(mirror.get(i) ?? 0).toBe(model.get(i) ?? 0);
      }
      expect(p.backed).toBe([...model.values()].filter((w) => w & P2M.PRESENT).length);
    }), { numRuns: 150, seed: 0x92b_0150 });
  });
});
