// Double paging (ESX §3.1) with the guest kernel under memory pressure: the host swaps
// random frames of a small VM, then the guest's clock evicts user pages to its own swap
// disk — some of them frames the host already swapped, which the host must read back
// only for the guest to write them out again. Guest data survives both levels of paging.
import { describe, it, expect, afterEach } from 'vitest';
import { HostSwap, P2M } from '../../../../src/hypervisor/index.js';
import { bootKernel } from '../../../guests/setup.js';

const R = 0x40_0000n;
const PAGES = 1100; // more than the 4 MiB VM's 1024 frames: the guest must swap

const swaps: HostSwap[] = [];
afterEach(() => { while (swaps.length) swaps.pop()!.close(); });

/** Stores p + 1 into the first word of each page in [from, to) (faulting them in). */
function touch(k: Awaited<ReturnType<typeof bootKernel>>['k'], from: number, to: number): void {
  for (let p = from; p < to; p += 64) {
    const b = k.batch.clear();
    for (let q = p; q < Math.min(p + 64, to); q++) b.store(Number(R) + q * 4096, BigInt(q + 1));
    k.runBatch(b);
  }
}

describe.each(['nested', 'shadow'] as const)('double paging (%s)', (mode) => {
  it('counts guest page-outs of host-swapped frames; the data survives both levels of paging', async () => {
    const { hv, vm, k } = await bootKernel(mode, 4);
    const swap = new HostSwap(hv, { seed: 3 });
    swaps.push(swap);
    const seen: { gfn: number; hostSwapped: boolean }[] = [];
    k.swap.beforePageOut = (gfn) => seen.push({ gfn, hostSwapped: (vm.p2m.raw(gfn as never) & P2M.SWAPPED) !== 0 });
    const unwatch = swap.watchGuest(vm, k.swap); // chains the spy above
    k.mmap(k.current, R, BigInt(PAGES) * 4096n);
    touch(k, 0, 600);
    expect(k.counters.swapOuts).toBe(0);
    expect(swap.swapOut(vm, 300)).toBe(300);
    expect(swap.stats(vm).doubleSwaps).toBe(0);

    touch(k, 600, PAGES); // the guest's clock now evicts, host-swapped victims included
    const st = swap.stats(vm);
    expect(k.swap.stats.swapOuts).toBeGreaterThan(0);
    expect(seen).toHaveLength(k.swap.stats.swapOuts);
    expect(st.doubleSwaps).toBe(seen.filter((s) => s.hostSwapped).length);
    expect(st.doubleSwaps).toBeGreaterThan(0);
    expect(st.swapIns).toBeGreaterThanOrEqual(st.doubleSwaps); // each one forced a host swap-in
    for (const s of seen.filter((x) => x.hostSwapped)) {
      expect(vm.p2m.raw(s.gfn as never) & P2M.SWAPPED).toBe(0); // read back in for the guest's write
    }

    // Every page reads back its value (guest swap-ins, host swap-ins, or both).
    for (let p = 0; p < PAGES; p += 256) {
      const n = Math.min(256, PAGES - p);
      const b = k.batch.clear();
      for (let q = p; q < p + n; q++) b.load(Number(R) + q * 4096);
      k.runBatch(b);
      for (let i = 0; i < n; i++) expect(b.value(i)).toBe(BigInt(p + i + 1));
    }
    expect(hv.frames.usedBy(vm.id)).toBe(vm.p2m.backed);

    const spy = seen.length;
    unwatch();
    const before = swap.stats(vm).doubleSwaps;
    swap.swapOut(vm, 200);
    touch(k, 0, 200);
    expect(swap.stats(vm).doubleSwaps).toBe(before); // no longer watching...
    expect(seen.length).toBeGreaterThan(spy);        // ...but the hook it chained is back in place
  });
});

describe('double paging control', () => {
  it('without host swapping there is no double paging (nested)', async () => {
    const { hv, vm, k } = await bootKernel('nested', 4);
    const swap = new HostSwap(hv);
    swaps.push(swap);
    swap.watchGuest(vm, k.swap);
    k.mmap(k.current, R, BigInt(PAGES) * 4096n);
    touch(k, 0, PAGES);
    expect(k.swap.stats.swapOuts).toBeGreaterThan(0);
    expect(swap.stats(vm)).toMatchObject({ doubleSwaps: 0, swapOuts: 0, swapIns: 0 });
  });
});
