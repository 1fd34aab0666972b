// The README's library example, kept honest: two guests under the memory manager from the
// package root; the idle one is reclaimed toward its target, nothing is refused.
import { describe, it, expect } from 'vitest';
import { Hypervisor, Scheduler, MemoryManager, GuestVm, HostSwap, ActiveSampler, Throughput, Filler } from 'memvisor';

describe('library use of the memory manager', () => {
  it('reclaims the idle guest toward its target while the busy one keeps its memory', async () => {
    const MiB = 2 ** 20, hz = 2e6;
    const hv = await Hypervisor.create({ hostMemoryBytes: 28 * MiB, hypervisorBytes: 4 * MiB });
    const sched = new Scheduler({ hz, slice: hz / 100 });
    const swap = new HostSwap(hv);
    try {
      const mgr = new MemoryManager({ hv, sched, tau: 0.75, balancePeriod: 1, swap, sampler: new ActiveSampler({ periodSeconds: 2 }) });
      const reclaim = (g: GuestVm, n: number) => mgr.reclaimNow(g, n);
      const gs = ([['busy', new Throughput({ cachePages: 3000 })], ['idle', new Filler(3500)]] as const).map(([name, workload]) => {
        const g = new GuestVm({ hv, name, memoryBytes: 16 * MiB, mode: 'nested', hz, workload, reclaim });
        mgr.add(g, { min: 512, max: 4096, shares: 160 });
        return g.attach(sched, 160);
      });
      mgr.start();
      sched.runFor(20);
      const [busy, idle] = gs, t = new Map(mgr.list().map((e) => [e.m.name, e.target]));
      expect(t.get('busy')!).toBeGreaterThan(t.get('idle')!);         // the tax: idle memory costs more
      expect(idle.device.size).toBeGreaterThan(0);                      // reclaimed by ballooning
      expect(busy.hostFrames).toBeGreaterThan(idle.hostFrames);
    } finally { swap.close(); }
  }, 60_000);
});
