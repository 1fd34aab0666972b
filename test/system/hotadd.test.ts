// Memory hot-add on a managed host: a GuestVm's memory grows while it runs; its kernel
// onlines the frames (the platform's notification), the memory manager's max and target
// follow, and the guest keeps running on the scheduler.
import { describe, it, expect } from 'vitest';
import { managedHost, MiB } from '../../src/experiment/host.js';
import { Filler } from '../../guests/filler.js';

describe('memory hot-add on a managed host', () => {
  it('the kernel, the manager and the balloon follow the larger VM', async () => {
    const host = await managedHost({ seed: 1, vmPoolMiB: 48, hz: 2e6 });
    try {
      const g = host.add({ name: 'a', memoryBytes: 8 * MiB, mode: 'nested', workload: new Filler(256) }, { min: 512, max: 2048, shares: 1000 });
      host.mgr.start();
      host.sched.runFor(1);
      expect(host.mgr.list()[0].target).toBe(2048);
      g.vm.hotAdd(8 * MiB);
      expect(g.kernel.frames.frameCount).toBe(4096);
      expect(g.kernel.counters.memoryAdded).toBe(2048);
      expect(host.mgr.list()[0].alloc.max).toBe(4096);
      expect(host.mgr.list()[0].target).toBe(4096);
      g.device.setTarget(3000);                 // the device takes targets up to the new size
      expect(g.device.target).toBe(3000);
      host.sched.runFor(2);
      expect(g.finished).toBe(false);
      expect(g.counters.outOfFrames).toBe(0);
      expect(g.violations).toEqual([]);
    } finally { host.close(); }
  }, 60_000);
});
