// Active-memory sampling (§5.3): traps on n random private present gfns per period, a
// touch clears its trap and counts; f = t/n folded into fast / slow moving averages and
// a partial fast average; estimate = max. Exact averages for all-or-nothing touch
// patterns, convergence within the binomial (hypergeometric) error for a fixed touched
// fraction, the real vCPU exit path in nested and shadow mode, and traps that someone
// else's remap or unmap removes.
import { describe, it, expect } from 'vitest';
import { Hypervisor, P2M, needsResolve, type Vm } from '../../../src/hypervisor/index.js';
import { ActiveSampler } from '../../../src/hypervisor/pagers/sampling.js';
import { Rng } from '../../../src/util/rng.js';
import type { Gfn } from '../../../src/core/addr.js';
import { PAGE_2M } from '../../../src/core/bits.js';
import { guestTables, boot } from '../../helpers/guest.js';

const MiB = 2 ** 20;
const DATA = 0x400; // first data gfn (4 MiB; the guest page tables sit at 1-2 MiB)

/** A nested (or shadow) VM with `pages` present data gfns from DATA on, nothing else backed. */
async function vmWith(pages: number, mode: 'nested' | 'shadow' = 'nested') {
  const hv = await Hypervisor.create({ hostMemoryBytes: 64 * MiB });
  const vm = hv.createVm({ memoryBytes: 16 * MiB, mode });
  vm.prefault(BigInt(DATA) << 12n, BigInt(pages) << 12n);
  const gfns = Array.from({ length: pages }, (_, i) => (DATA + i) as Gfn);
  return { hv, vm, gfns };
}

/** The guest touches each gfn (an exit only where the p2m says so). */
function touch(vm: Vm, gfns: readonly Gfn[]): void {
  for (const g of gfns) if (needsResolve(vm.p2m.raw(g), false)) expect(vm.resolve(g, false)).not.toBeNull();
}

const trappedInP2m = (vm: Vm): number => vm.p2m.count(P2M.TRAPPED, P2M.TRAPPED);

describe('sampling traps', () => {
  it('traps n distinct present private gfns, unmaps them from the EPT, and a touch restores the mapping', async () => {
    const { vm, gfns } = await vmWith(1000);
    const s = new ActiveSampler({ seed: 3 });
    s.attach(vm);
    const traps = s.trapped(vm);
    expect(traps).toHaveLength(100);
    expect(new Set(traps).size).toBe(100);
    expect(trappedInP2m(vm)).toBe(100);
    for (const g of traps) {
      expect(g >= DATA && g < DATA + 1000).toBe(true);
      expect(vm.ept!.lookup(g)).toBeNull();
    }
    const g = traps[0];
    expect(vm.resolve(g, true)).toBe(50);
    expect(vm.p2m.raw(g) & P2M.TRAPPED).toBe(0);
    expect(vm.ept!.lookup(g)).toMatchObject({ hfn: vm.p2m.lookup(g), rights: 7n });
    expect(s.estimates(vm).current).toMatchObject({ sampled: 100, touched: 1 });
    touch(vm, gfns);
    expect(s.estimates(vm).current.touched).toBe(100);
    expect(trappedInP2m(vm)).toBe(0);
  });

  it('skips shared and page-table gfns; samples all candidates when fewer than n', async () => {
    const { vm, gfns } = await vmWith(60);
    for (const g of gfns.slice(0, 10)) vm.p2m.setState(g, P2M.PAGE_TABLE);
    for (const g of gfns.slice(10, 20)) vm.p2m.setState(g, P2M.SHARED);
    const s = new ActiveSampler();
    s.attach(vm);
    expect(s.trapped(vm)).toEqual(gfns.slice(20));
    touch(vm, gfns.slice(20, 30));
    expect(s.periodEnd(vm)).toEqual({ sampled: 40, touched: 10, lost: 0, fraction: 0.25, endedAt: 30 });
  });

  it('clears every remaining trap at period end and arms a fresh sample; stop leaves none', async () => {
    const { vm } = await vmWith(1000);
    const s = new ActiveSampler({ seed: 5 });
    s.attach(vm);
    const first = s.trapped(vm);
    s.periodEnd(vm);
    const second = s.trapped(vm);
    expect(second).toHaveLength(100);
    expect(second).not.toEqual(first);
    expect(trappedInP2m(vm)).toBe(100);
    for (const g of first) if (!second.includes(g)) expect(vm.p2m.raw(g) & P2M.TRAPPED).toBe(0);
    s.stop(vm);
    expect(trappedInP2m(vm)).toBe(0);
    expect(s.has(vm)).toBe(false);
  });

  it('is deterministic for a seed, with independent streams per VM', async () => {
    const a = await vmWith(1000), b = await vmWith(1000);
    const s1 = new ActiveSampler({ seed: 9 }), s2 = new ActiveSampler({ seed: 9 });
    s1.attach(a.vm); s2.attach(b.vm);
    expect(s1.trapped(a.vm)).toEqual(s2.trapped(b.vm)); // both VMs have id 0 on their own hosts
    const hv = a.hv, other = hv.createVm({ memoryBytes: 16 * MiB, mode: 'nested' });
    other.prefault(BigInt(DATA) << 12n, 1000n << 12n);
    s1.attach(other);
    expect(s1.trapped(other)).not.toEqual(s1.trapped(a.vm));
  });

  it('a trap someone else removes (unmap to swap, remap to a shared frame) is lost; coming back within the period is a touch', async () => {
    const { hv, vm } = await vmWith(1000);
    const s = new ActiveSampler({ seed: 11 });
    s.attach(vm);
    const [g1, g2, g3] = s.trapped(vm);
    // A swapper takes g1 and g2: unmap drops TRAPPED by construction.
    for (const g of [g1, g2]) hv.frames.free(vm.p2m.unmap(g, P2M.SWAPPED, 7)!, vm.id);
    expect(vm.p2m.raw(g1) & P2M.TRAPPED).toBe(0);
    // A sharer remaps g3 to another frame: map drops TRAPPED too.
    const old = vm.p2m.lookup(g3)!;
    vm.p2m.map(g3, hv.frames.alloc(vm.id), P2M.SHARED);
    hv.frames.free(old, vm.id);
    // The guest touches g1: swap-in maps it again.
    vm.p2m.map(g1, hv.frames.alloc(vm.id));
    expect(s.trapped(vm)).toHaveLength(97);
    expect(s.periodEnd(vm)).toMatchObject({ sampled: 100, touched: 1, lost: 2, fraction: 0.01 });
    expect(s.untrap(vm, s.trapped(vm)[0])).toBe(true);
    expect(trappedInP2m(vm)).toBe(99);
  });

  it('refuses native VMs, double attach, time going backwards; tick ends a period after 30 s of VM time', async () => {
    const hv = await Hypervisor.create({ hostMemoryBytes: 64 * MiB });
    const s = new ActiveSampler();
    expect(() => s.attach(hv.createVm({ memoryBytes: 4 * MiB, mode: 'native' }))).toThrow(/native/);
    const { vm } = await vmWith(200);
    s.attach(vm, 10);
    expect(() => s.attach(vm)).toThrow(/already sampled/);
    expect(s.tick(vm, 39.999)).toBeNull();
    expect(s.tick(vm, 40)).toMatchObject({ sampled: 100, touched: 0, fraction: 0, endedAt: 40 });
    expect(s.tick(vm, 69)).toBeNull();
    expect(() => s.tick(vm, 39)).toThrow('VM time went backwards: 39 < period start 40');
    expect(() => new ActiveSampler({ fastGain: 0 })).toThrow('fastGain must be in (0, 1], got 0');
    expect(() => new ActiveSampler({ samples: 0 })).toThrow(/samples/);
  });
});

describe('moving averages', () => {
  it('exact fast / slow / estimate for all-or-nothing touches: quick to rise, slow to fall', async () => {
    const { vm, gfns } = await vmWith(500);
    const s = new ActiveSampler({ seed: 1 });
    s.attach(vm);
    expect(s.estimate(vm)).toBe(1); // unknown yet: treated as all active
    const period = (f: 0 | 1) => { if (f) touch(vm, gfns); s.periodEnd(vm); return s.estimates(vm); };
    expect(period(0)).toMatchObject({ fast: 0, slow: 0, estimate: 0, periods: 1 });
    const up = [period(1), period(1), period(1)];
    expect(up.map((e) => e.fast)).toEqual([0.5, 0.75, 0.875]);
    expect(up.map((e) => e.slow)).toEqual([0.125, 0.234375, 0.330078125]);
    expect(up.map((e) => e.estimate)).toEqual([0.5, 0.75, 0.875]); // follows the fast average up
    const down = [period(0), period(0), period(0)];
    expect(down.map((e) => e.fast)).toEqual([0.4375, 0.21875, 0.109375]);
    const slow = [0.330078125 * 0.875, 0.330078125 * 0.875 ** 2, 0.330078125 * 0.875 ** 3];
    expect(down.map((e) => e.slow)).toEqual(slow);
    expect(down.map((e) => e.estimate)).toEqual([0.4375, slow[1], slow[2]]); // then the slow one down
    expect(s.activeFrames(vm)).toBe(Math.round(slow[2] * 500));
    expect(s.activeFrames(vm, 1000)).toBe(Math.round(slow[2] * 1000));
  });

  it('the partial fast average raises the estimate within the period', async () => {
    const { vm, gfns } = await vmWith(500);
    const s = new ActiveSampler({ seed: 2 });
    s.attach(vm);
    s.periodEnd(vm); s.periodEnd(vm); // idle: all averages 0
    const traps = s.trapped(vm);
    touch(vm, traps.slice(0, 40));   // 40 of the 100 samples touched so far
    expect(s.estimates(vm)).toMatchObject({ fast: 0, slow: 0, partial: 0.2, estimate: 0.2 });
    touch(vm, gfns);
    expect(s.estimates(vm)).toMatchObject({ partial: 0.5, estimate: 0.5 });
  });

  it('converges to the touched fraction within the sampling error; fast reacts faster than slow', async () => {
    const N = 2000, n = 100;
    const { vm, gfns } = await vmWith(N);
    const s = new ActiveSampler({ seed: 21 });
    s.attach(vm);
    const order = new Rng(99).shuffle([...gfns]);
    const run = (q: number, periods: number) => {
      const set = order.slice(0, q * N), fs: number[] = [];
      for (let i = 0; i < periods; i++) { touch(vm, set); fs.push(s.periodEnd(vm).fraction!); }
      return fs;
    };
    // Per-period f is hypergeometric: variance q(1−q)/n · (N−n)/(N−1); an EWMA with gain g
    // of independent periods has variance g/(2−g) times that. Bounds at 4 standard deviations.
    const sd = (q: number) => Math.sqrt((q * (1 - q)) / n * (N - n) / (N - 1));
    const fs = run(0.3, 60);
    const mean = fs.slice(20).reduce((a, b) => a + b, 0) / 40;
    expect(Math.abs(mean - 0.3)).toBeLessThan(4 * sd(0.3) / Math.sqrt(40));
    const e = s.estimates(vm);
    expect(Math.abs(e.slow! - 0.3)).toBeLessThan(4 * sd(0.3) * Math.sqrt(0.125 / 1.875));
    expect(Math.abs(e.fast! - 0.3)).toBeLessThan(4 * sd(0.3) * Math.sqrt(0.5 / 1.5));
    // Step up to 0.9: after two periods the fast average has covered ~3/4 of the step,
    // the slow one ~1/4; the estimate follows the fast one.
    run(0.9, 2);
    const up = s.estimates(vm);
    expect(up.fast! - 0.3).toBeGreaterThan(0.6 * 0.75 - 4 * sd(0.6) / 2);
    expect(up.slow! - 0.3).toBeLessThan(0.6 * (1 - 0.875 ** 2) + 4 * sd(0.6) / 2);
    expect(up.estimate).toBeGreaterThanOrEqual(up.fast!);
    run(0.9, 40);
    expect(Math.abs(s.estimate(vm) - 0.9)).toBeLessThan(4 * sd(0.9) * Math.sqrt(0.5 / 1.5) + 0.01);
    // Step down to 0.1: the fast average drops at once, the estimate follows the slow one.
    run(0.1, 3);
    const down = s.estimates(vm);
    expect(down.fast!).toBeLessThan(0.25);
    expect(down.slow!).toBeGreaterThan(0.45);
    expect(down.estimate).toBe(Math.max(down.slow!, down.fast!, down.partial!));
    expect(down.estimate).toBe(down.slow);
  });
});

describe('through a vCPU', () => {
  const VA = 0x4000_0000n;

  for (const mode of ['nested', 'shadow'] as const) {
    it(`${mode}: the guest's own accesses exit on trapped pages and count as touches`, async () => {
      const hv = await Hypervisor.create({ hostMemoryBytes: 64 * MiB });
      const vm = hv.createVm({ memoryBytes: 16 * MiB, mode });
      const pt = guestTables(vm);
      pt.mapRange(VA, BigInt(DATA) << 12n, 2 * MiB, PAGE_2M);
      boot(vm.vcpus[0], pt.root);
      vm.prefault(BigInt(DATA) << 12n, 2n * BigInt(MiB));
      const b = hv.machine.createBatch(1024);
      for (let p = 0; p < 512; p++) b.load(VA + BigInt(p) * 4096n); // warm: shadow marks its page tables
      expect(vm.vcpus[0].run(b)).toEqual({ reason: 'end' });
      const s = new ActiveSampler({ seed: 4 });
      s.attach(vm);
      const traps = s.trapped(vm);
      expect(traps).toHaveLength(100);
      for (const g of traps) expect(vm.p2m.raw(g) & P2M.PAGE_TABLE).toBe(0);
      if (mode === 'shadow') expect(vm.p2m.count(P2M.PAGE_TABLE, P2M.PAGE_TABLE)).toBeGreaterThan(0); // excluded above
      expect(traps.filter((g) => g < DATA)).toEqual([]); // (nested: this seed samples no guest page-table frame)
      // The guest touches the first half of its 2 MiB (pages DATA .. DATA+255).
      const half = (g: number) => g >= DATA && g < DATA + 256;
      b.clear();
      for (let p = 0; p < 256; p++) b.store(VA + BigInt(p) * 4096n + 8n, BigInt(p));
      const before = vm.stats.resolves;
      expect(vm.vcpus[0].run(b)).toEqual({ reason: 'end' });
      const hits = traps.filter(half).length;
      expect(vm.stats.resolves - before).toBe(hits);
      expect(s.estimates(vm).current.touched).toBe(hits);
      expect(s.trapped(vm)).toEqual(traps.filter((g) => !half(g)));
      for (let p = 0; p < 256; p++) expect(vm.memory.read64((BigInt(DATA + p) << 12n) + 8n)).toBe(BigInt(p));
    });
  }
});
