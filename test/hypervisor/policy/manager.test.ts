// The memory manager's balloon size limit (ESX 2.5 sched.mem.maxmemctl: by default half of
// the VM's max): the balloon never grows past it; what it cannot take the host swaps.
import { describe, it, expect } from 'vitest';
import { Hypervisor, HostSwap } from '../../../src/hypervisor/index.js';
import { Scheduler } from '../../../src/hypervisor/policy/scheduler.js';
import { MemoryManager } from '../../../src/hypervisor/policy/manager.js';
import { ActiveSampler } from '../../../src/hypervisor/pagers/sampling.js';
import { GuestVm } from '../../../src/board/guest-vm.js';
import { Throughput } from '../../../guests/throughput.js';
import { Filler } from '../../../guests/filler.js';

const MiB = 2 ** 20, hz = 2e6;

async function run(balloonMaxFraction?: number) {
  // 24 MiB: tight enough that the idle VM's balloon is asked for more than a quarter of its
  // max (with one IO exit per hypercall its driver is cheap, so at 28 MiB the host had
  // already swapped most of what the balloon would have taken).
  const hv = await Hypervisor.create({ hostMemoryBytes: 24 * MiB, hypervisorBytes: 4 * MiB });
  const sched = new Scheduler({ hz, slice: hz / 100 });
  const swap = new HostSwap(hv);
  try {
    const mgr = new MemoryManager({ hv, sched, tau: 0.75, balancePeriod: 1, swap, balloonMaxFraction, sampler: new ActiveSampler({ periodSeconds: 2 }) });
    const reclaim = (g: GuestVm, n: number) => mgr.reclaimNow(g, n);
    const gs = ([['busy', new Throughput({ cachePages: 6000 })], ['idle', new Filler(3500)]] as const).map(([name, workload]) => {
      const g = new GuestVm({ hv, name, memoryBytes: 16 * MiB, mode: 'nested', hz, workload, reclaim, balloonCapabilities: 3 });
      mgr.add(g, { min: 256, max: 4096, shares: 160 });
      return g.attach(sched, 160);
    });
    mgr.start();
    let largest = 0;
    for (let s = 0; s < 20; s++) { sched.runFor(1); largest = Math.max(largest, gs[1].device.size, gs[1].device.target); }
    return { largest, swapped: swap.stats(gs[1].vm).swapOuts, target: mgr.list().find((e) => e.m.name === 'idle')!.target };
  } finally { swap.close(); }
}

describe('balloon size limit (maxmemctl)', () => {
  it('keeps the balloon at or below half of max by default, and at the fraction given', async () => {
    const half = await run();
    expect(half.largest).toBeGreaterThan(0);
    expect(half.largest).toBeLessThanOrEqual(2048);
    const quarter = await run(0.25);
    expect(4096 - quarter.target).toBeGreaterThan(1024); // the target asks for more than the balloon may take...
    expect(quarter.largest).toBeLessThanOrEqual(1024);
    expect(quarter.largest).toBeGreaterThan(512);
    expect(quarter.swapped).toBeGreaterThan(0);           // ...so the host swaps the rest
  }, 120_000);

  it('refuses a fraction outside [0, 1]', async () => {
    const hv = await Hypervisor.create({ hostMemoryBytes: 8 * MiB, hypervisorBytes: 4 * MiB });
    expect(() => new MemoryManager({ hv, sched: new Scheduler({ hz }), balloonMaxFraction: 1.5 })).toThrow(/balloonMaxFraction/);
  });
});
