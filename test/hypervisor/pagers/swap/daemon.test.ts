// The asynchronous swap daemon (ESX §3.3): clustered writes to contiguous slots, one
// disk transfer per cluster costing the shared disk model's latency + bandwidth; pages
// stay resident (and readable) until their write completes; a page written meanwhile
// keeps its new bytes and its slot is freed.
import { describe, it, expect, afterEach } from 'vitest';
import type { Gfn } from '../../../../src/core/addr.js';
import { DEFAULT_DISK, transferCycles, pageTransferCycles } from '../../../../src/core/disk-model.js';
import { P2M, HostSwap, type Vm } from '../../../../src/hypervisor/index.js';
import { SwapDaemon, SWAP_CLUSTER_PAGES } from '../../../../src/hypervisor/pagers/swap-daemon.js';
import { Scheduler } from '../../../../src/hypervisor/policy/scheduler.js';
import { swapRig, SWAP_MODES, DATA, range, fillPages, readPages, pattern } from './rig.js';

const swaps: HostSwap[] = [];
afterEach(() => { while (swaps.length) swaps.pop()!.close(); });

const expected = (tag: number, gfns: number[], words = 4): bigint[] =>
  gfns.flatMap((g) => range(0, words).map((w) => pattern(tag, g, w)));
const swapped = (vm: Vm): number[] => {
  const out: number[] = [];
  vm.p2m.forEach((g) => out.push(g), P2M.SWAPPED, P2M.SWAPPED);
  return out;
};
const CLUSTER_CYCLES = transferCycles(DEFAULT_DISK, SWAP_CLUSTER_PAGES * 4096);

async function rig(mode: 'nested' | 'shadow', pages = 64) {
  const r = await swapRig(mode);
  swaps.push(r.swap);
  const sched = new Scheduler({ hz: 2e9 });
  const done: number[] = [];
  const daemon = new SwapDaemon(r.swap, r.hv, sched, { onSwapped: (_vm, n) => done.push(n) });
  const data = range(DATA, pages);
  fillPages(r.hv, r.vm, data);
  return { ...r, sched, daemon, data, done };
}

describe('cluster size', () => {
  it('is 16 pages: one 64 KiB transfer costs 211 072 cycles on the default disk, 16 single-page writes 1 411 072', () => {
    expect(SWAP_CLUSTER_PAGES).toBe(16);
    expect(CLUSTER_CYCLES).toBe(80_000 + 131_072);
    expect(16 * pageTransferCycles()).toBe(1_411_072);
  });
});

describe.each(SWAP_MODES)('swap daemon (%s)', (mode) => {
  it('coalesces 48 pages into 3 clustered transfers of contiguous slots, each taking the disk model\'s time', async () => {
    const { hv, vm, swap, sched, daemon, done } = await rig(mode);
    const used = hv.frames.usedBy(vm.id), vmFree = hv.frames.counts().vmFree;
    daemon.setTarget(vm, 48);
    expect(swap.file.stats.writeOps).toBe(1);          // the first cluster went to disk at once...
    expect(daemon.inFlight(vm)).toBe(16);
    expect(hv.frames.usedBy(vm.id)).toBe(used);          // ...but its pages stay resident until it completes
    expect(swapped(vm)).toEqual([]);
    sched.runFor((CLUSTER_CYCLES - 1) / 2e9);
    expect(swapped(vm)).toEqual([]);                     // one cycle early: nothing swapped yet
    sched.runFor(1 / 2e9);
    expect(swapped(vm)).toHaveLength(16);
    sched.runFor(2 * CLUSTER_CYCLES / 2e9);
    expect(done).toEqual([16, 16, 16]);
    expect(swap.file.stats).toMatchObject({ writeOps: 3, writes: 48 });
    expect(daemon.stats).toEqual({ clusters: 3, pagesWritten: 48, pagesSwapped: 48, cancelled: 0, sharedInstead: 0, diskCycles: 3 * CLUSTER_CYCLES });
    expect(sched.now).toBe(3 * CLUSTER_CYCLES);
    // Frame accounting, exactly: 48 frames back in the pool, 48 slots in use.
    expect(hv.frames.usedBy(vm.id)).toBe(used - 48);
    expect(hv.frames.counts().vmFree).toBe(vmFree + 48);
    expect(swap.file.inUse).toBe(48);
    expect(swap.stats(vm)).toMatchObject({ swapOuts: 48, slotsInUse: 48, bytesWritten: 48 * 4096 });
    // Each cluster sits in 16 contiguous slots.
    const slots = swap.slotsOf(vm);
    expect(slots).toEqual(range(0, 48));
    expect(daemon.pending(vm)).toBe(0);
    expect(daemon.busy).toBe(false);
  });

  it('a page under write-out is still readable (no swap-in); after the write the guest reads all back through swap-ins', async () => {
    const { hv, vm, swap, sched, daemon, data } = await rig(mode);
    daemon.setTarget(vm, 16);
    expect(readPages(hv, vm, data)).toEqual(expected(1, data));
    expect(swap.stats(vm).swapIns).toBe(0);
    sched.runFor(CLUSTER_CYCLES / 2e9);
    expect(swapped(vm)).toHaveLength(16);
    expect(readPages(hv, vm, data)).toEqual(expected(1, data)); // checksums verified on each swap-in
    expect(swap.stats(vm)).toMatchObject({ swapIns: 16, slotsInUse: 0 });
  });

  it('a page written during its write-out keeps its new bytes and frees its slot; a rewrite of the same bytes is harmless', async () => {
    const { hv, vm, swap, sched, daemon, data } = await rig(mode);
    daemon.setTarget(vm, 16);
    const cluster = daemon.writing(vm);
    expect(cluster).toHaveLength(16);
    const [dirty, same] = cluster.filter((g) => data.includes(g)); // victims may also be the guest's own pages
    fillPages(hv, vm, [dirty], 2);                     // new bytes: the write is void
    fillPages(hv, vm, [same], 1);                      // the same bytes: the disk copy is still right
    const used = hv.frames.usedBy(vm.id);
    sched.runFor(CLUSTER_CYCLES / 2e9);
    expect(swapped(vm).sort((x, y) => x - y)).toEqual(cluster.filter((g) => g !== dirty).sort((x, y) => x - y));
    expect(daemon.stats).toMatchObject({ pagesWritten: 16, pagesSwapped: 15, cancelled: 1 });
    expect(hv.frames.usedBy(vm.id)).toBe(used - 15);
    expect(swap.file.inUse).toBe(15);                  // the voided write's slot is free again
    expect(swap.stats(vm)).toMatchObject({ swapOuts: 15, slotsInUse: 15 });
    expect(readPages(hv, vm, [dirty])).toEqual(expected(2, [dirty]));
    const rest = data.filter((g) => g !== dirty);
    expect(readPages(hv, vm, rest)).toEqual(expected(1, rest));
  });

  it('a page swapped synchronously (an emergency) while under write-out keeps one slot, its own', async () => {
    const { hv, vm, swap, sched, daemon, data } = await rig(mode);
    daemon.setTarget(vm, 16);
    const g = daemon.writing(vm).find((x) => data.includes(x))!;
    swap.swapOutGfn(vm, g as Gfn);
    sched.runFor(CLUSTER_CYCLES / 2e9);
    expect(daemon.stats).toMatchObject({ pagesSwapped: 15, cancelled: 1 });
    expect(swap.file.inUse).toBe(16);
    expect(swap.slotsOf(vm)).toHaveLength(16);
    expect(readPages(hv, vm, [g])).toEqual(expected(1, [g]));
  });

  it('a VM destroyed during a write-out: its slots are freed at completion, other work continues', async () => {
    const { hv, vm, swap, sched, daemon } = await rig(mode);
    daemon.setTarget(vm, 32);
    hv.destroyVm(vm);
    sched.runFor(CLUSTER_CYCLES / 2e9);
    expect(swap.file.inUse).toBe(0);
    expect(daemon.stats).toMatchObject({ clusters: 1, pagesSwapped: 0, cancelled: 16 });
    expect(daemon.busy).toBe(false);
  });
});

describe('swap file runs', () => {
  it('allocRun hands out contiguous free slots next-fit and skips holes too small', async () => {
    const { swap } = await swapRig('nested');
    swaps.push(swap);
    const f = swap.file;
    expect(f.allocRun(4)).toBe(0);
    expect(f.allocRun(4)).toBe(4);
    f.free(1); f.free(2);
    expect(f.allocRun(3)).toBe(8);                 // the 2-slot hole at 1 is too small
    const a = f.alloc(), b = f.alloc();            // single slots come from the free stack: the holes first
    expect([a, b].sort()).toEqual([1, 2]);
    expect(f.inUse).toBe(4 + 4 + 3);
    expect(() => f.allocRun(0)).toThrow('a run must be');
  });

  it('writeRun writes n slots in one transfer with per-slot checksums', async () => {
    const { swap } = await swapRig('nested');
    swaps.push(swap);
    const f = swap.file, first = f.allocRun(3)!;
    const data = new Uint8Array(3 * 4096).map((_, i) => (i * 7) & 0xff);
    f.writeRun(first, data);
    expect(f.stats).toMatchObject({ writeOps: 1, writes: 3, bytesWritten: 3 * 4096 });
    for (let i = 0; i < 3; i++) expect(f.read(first + i)).toEqual(data.subarray(i * 4096, (i + 1) * 4096));
  });
});

