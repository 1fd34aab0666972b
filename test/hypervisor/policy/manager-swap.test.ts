// The manager's rebalance hands swap-outs to the swap daemon: a reallocation frees no
// frame by itself; the daemon's clustered writes free them as they complete, on the
// scheduler's clock, and the host's frame accounting stays exact throughout.
import { describe, it, expect } from 'vitest';
import { Hypervisor, HostSwap, SHARED_OWNER } from '../../../src/hypervisor/index.js';
import { Scheduler } from '../../../src/hypervisor/policy/scheduler.js';
import { MemoryManager } from '../../../src/hypervisor/policy/manager.js';
import { SWAP_CLUSTER_PAGES } from '../../../src/hypervisor/pagers/swap-daemon.js';
import { transferCycles, DEFAULT_DISK } from '../../../src/core/disk-model.js';
import { GuestVm } from '../../../src/board/guest-vm.js';
import { Filler } from '../../../guests/filler.js';

const MiB = 2 ** 20, hz = 2e6;

describe('manager + swap daemon', () => {
  it('a rebalance sets swap targets; frames are freed only as clustered writes complete', async () => {
    const hv = await Hypervisor.create({ hostMemoryBytes: 20 * MiB, hypervisorBytes: 4 * MiB });
    const sched = new Scheduler({ hz, slice: hz / 100 });
    const swap = new HostSwap(hv);
    try {
      const mgr = new MemoryManager({ hv, sched, tau: 0, balancePeriod: 1000, swap, balloon: false, watchFreeMemory: false });
      const reclaim = (g: GuestVm, n: number) => mgr.reclaimNow(g, n);
      const gs = ['a', 'b'].map((name) => {
        const g = new GuestVm({ hv, name, memoryBytes: 12 * MiB, mode: 'nested', hz, workload: new Filler(2600), reclaim, balloon: false });
        mgr.add(g, { min: 256, max: 3072, shares: 10 });
        return g.attach(sched, 10);
      });
      mgr.start();
      sched.runFor(10); // both fill 2600 pages of 12 MiB: 20.3 MiB on a 16 MiB pool, past the free thresholds
      const held = () => gs.map((g) => hv.frames.usedBy(g.vm.id));
      const writes = swap.file.stats.writeOps, before = held();
      const state = mgr.rebalance();
      expect(state).not.toBe('high');
      const daemon = mgr.swapDaemon!;
      const asked = gs.reduce((a, g) => a + daemon.pending(g.vm) + daemon.inFlight(g.vm), 0);
      expect(asked).toBeGreaterThan(SWAP_CLUSTER_PAGES);
      expect(held()).toEqual(before);                      // nothing freed synchronously
      expect(daemon.busy).toBe(true);
      expect(swap.file.stats.writeOps).toBe(writes + 1);   // one cluster on its way to disk
      // Frames held + shared + overhead + free = all of host memory, at every step.
      const exact = () => {
        const c = hv.frames.counts();
        return gs.reduce((a, g) => a + hv.frames.usedBy(g.vm.id) + g.vm.overheadInUse, 0) + hv.frames.usedBy(SHARED_OWNER) + c.free === c.total;
      };
      expect(exact()).toBe(true);
      const clusters = gs.reduce((a, g) => a + Math.ceil((daemon.pending(g.vm) + daemon.inFlight(g.vm)) / SWAP_CLUSTER_PAGES), 0);
      gs.forEach((g) => { g.blocked = true; });           // hold the guests still: only the daemon acts
      const stepped = gs.map((g) => g.step.bind(g));
      gs.forEach((g) => { (g as { step: (b: number) => number }).step = () => 0; });
      sched.runFor(clusters * transferCycles(DEFAULT_DISK, SWAP_CLUSTER_PAGES * 4096) / hz);
      gs.forEach((g, i) => { (g as { step: (b: number) => number }).step = stepped[i]; });
      expect(daemon.busy).toBe(false);
      expect(before.reduce((a, b) => a + b, 0) - held().reduce((a, b) => a + b, 0)).toBe(asked);
      expect(mgr.stats.swappedOut).toBe(asked);
      expect(daemon.stats.clusters).toBe(clusters);
      expect(exact()).toBe(true);
    } finally { swap.close(); }
  }, 120_000);
});
