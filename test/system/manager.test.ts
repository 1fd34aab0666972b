// Integration of the memory manager (src/hypervisor/manager.ts) with guest machines on a
// managed host (src/experiment/host.ts): admission control, share-based targets reached
// by ballooning with the guests' data intact, free-memory states entered and left at
// their thresholds, and swapping in place of ballooning when ballooning is off.
//
// Scale: a 6 MiB VM pool (1536 frames), 4 MiB guests, 2e6 simulated cycles per second,
// so tens of simulated seconds cost well under a second of wall time.
import { describe, it, expect, afterEach } from 'vitest';
import { managedHost, type ManagedHost } from '../../src/experiment/host.js';
import { nextState, thresholdFrames, DEFAULT_THRESHOLDS, FREE_STATES, type FreeState } from '../../src/hypervisor/policy/reclaim.js';
import { Filler, FILL_BASE, fillWord } from '../../guests/filler.js';
import { IdleKernel } from '../../guests/idle.js';
import { CAP } from '../../src/devices/balloon.js';
import type { GuestVm } from '../../src/board/guest-vm.js';

const MiB = 2 ** 20, HZ = 2e6, POOL_MIB = 6, POOL = POOL_MIB * 256;
const CAPS_4K = CAP.BASIC_CMDS | CAP.BATCHED_CMDS; // 4 KiB balloon pages: targets are met exactly
/** Filler pages that leave free memory between the "hard" and "soft" thresholds with two guests. */
const SOFT_FILL = 715;

const hosts: ManagedHost[] = [];
afterEach(() => { for (const h of hosts.splice(0)) h.close(); });

async function host(o: Partial<Parameters<typeof managedHost>[0]> = {}): Promise<ManagedHost> {
  const h = await managedHost({ seed: 7, vmPoolMiB: POOL_MIB, hz: HZ, sampler: false, balancePeriod: 1, ...o });
  hosts.push(h);
  return h;
}

function filler(h: ManagedHost, name: string, pages: number, alloc = { min: 0, max: 1024, shares: 1000 }, mib = 4): GuestVm {
  return h.add({ name, memoryBytes: mib * MiB, mode: 'nested', workload: new Filler(pages), balloonCapabilities: CAPS_4K }, alloc);
}

/** The first word of each filled page, read by the guest through its own page tables. */
function expectFillIntact(g: GuestVm, pages: number): void {
  const back = Array.from({ length: pages }, (_, p) => g.kernel.readUser(FILL_BASE + BigInt(p * 4096), 1)[0]);
  const bad = back.findIndex((w, p) => w !== fillWord(p));
  expect(bad, `${g.name}: page ${bad} of its filled memory reads 0x${back[bad]?.toString(16)}`).toBe(-1);
}

const targetOf = (h: ManagedHost, name: string): number => h.mgr.list().find((e) => e.m.name === name)!.target;

describe('memory manager on a managed host', () => {
  it('admission control refuses a VM whose min does not fit, naming the shortfall, and leaves nothing behind', async () => {
    const h = await host();
    const a = filler(h, 'a', 10, { min: 1000, max: 1024, shares: 1000 });
    const before = { vms: h.hv.list().length, free: h.hv.counts().vmFree };
    expect(() => filler(h, 'b', 10, { min: 600, max: 1024, shares: 1000 }))
      .toThrow('b not admitted: not enough unreserved memory: the candidate needs min 2.344 MiB (600 frames), 2.094 MiB (536 frames) is unreserved of 6 MiB (1536 frames) (min of all VMs would be 6.25 MiB (1600 frames))');
    expect(h.mgr.list().map((e) => e.m.name)).toEqual(['a']);
    // The refused VM must not keep running (or holding frames) outside the manager's view.
    expect(h.hv.list().length).toBe(before.vms);
    expect(h.hv.counts().vmFree).toBe(before.free);
    // A VM that fits next to it is admitted.
    filler(h, 'c', 10, { min: 500, max: 1024, shares: 1000 });
    expect(h.mgr.list().map((e) => e.m.name)).toEqual(['a', 'c']);
    expect(a.vm.isDestroyed).toBe(false);
  });

  it('equal shares, f = 1: equal targets, reached by ballooning alone, guest data intact', async () => {
    const h = await host();
    const a = filler(h, 'a', SOFT_FILL), b = filler(h, 'b', SOFT_FILL);
    h.mgr.start();
    h.sched.runFor(3); // both fill, free memory falls below "soft"
    expect(a.hostFrames + b.hostFrames).toBeGreaterThan(POOL - thresholdFrames(POOL, DEFAULT_THRESHOLDS.soft));
    h.sched.runFor(20);
    const ta = targetOf(h, 'a'), tb = targetOf(h, 'b');
    expect(Math.abs(ta - tb)).toBeLessThanOrEqual(1); // ties are broken one frame at a time
    // Targets leave the "high" threshold free: budget = pool − 6 %.
    expect(ta + tb).toBe(POOL - thresholdFrames(POOL, DEFAULT_THRESHOLDS.high));
    for (const [g, t] of [[a, ta], [b, tb]] as const) {
      expect(Math.abs(g.hostFrames - t), `${g.name} holds ${g.hostFrames}, target ${t}`).toBeLessThanOrEqual(4);
      expect(g.device.size).toBeGreaterThan(0);
      expect(g.device.violations).toEqual([]);
    }
    expect(h.mgr.stats.ballooned).toBeGreaterThan(0);
    expect(h.mgr.stats.swappedOut + h.mgr.stats.emergencySwaps).toBe(0);
    expect(h.mgr.hostSeries.map((r) => r.state)).toContain('soft');
    expect(h.mgr.states.state).toBe('high'); // reclaimed back above the high threshold
    expectFillIntact(a, SOFT_FILL);
    expectFillIntact(b, SOFT_FILL);
  });

  it('free-memory states change exactly at their thresholds as a guest fills the host', async () => {
    for (const scenario of [
      { balancePeriod: 0.02, expect: ['soft', 'hard'] as FreeState[] },                 // frequent looks: the states one by one
      { balancePeriod: 1, swapPerRound: 32, watch: false, expect: ['low'] as FreeState[] }, // rare looks, slow swapping: "low" and blocking
    ]) {
      const h = await host({ balancePeriod: scenario.balancePeriod, swapPerRound: scenario.swapPerRound, balloon: false,
        watchFreeMemory: 'watch' in scenario ? scenario.watch : true });
      const decisions: { t: number; frac: number; state: FreeState; records: number }[] = [];
      const states = h.mgr.states, next = states.nextFrames.bind(states);
      states.nextFrames = (free, total) => {
        // The manager looks at the true free memory of the VM pool.
        expect([free, total]).toEqual([h.hv.counts().vmFree, h.hv.frames.hypervisorStart]);
        const state = next(free, total);
        decisions.push({ t: h.sched.seconds, frac: free / total, state, records: h.mgr.hostSeries.length });
        return state;
      };
      const g = filler(h, 'big', 1800, { min: 0, max: 2048, shares: 1000 }, 8); // 8 MiB guest on a 6 MiB pool
      h.mgr.start();
      h.sched.runFor(8);
      let prev: FreeState = 'high';
      for (const d of decisions) {
        expect(d.state, `at ${d.t} s, free ${(d.frac * 100).toFixed(2)} % after "${prev}"`).toBe(nextState(prev, d.frac));
        const t = DEFAULT_THRESHOLDS;
        if (FREE_STATES.indexOf(d.state) > FREE_STATES.indexOf(prev)) expect(d.frac).toBeLessThan(t[d.state as Exclude<FreeState, 'high'>]);
        if (d.state === 'high' && prev !== 'high') expect(d.frac).toBeGreaterThan(t.high);
        prev = d.state;
      }
      for (const s of scenario.expect) expect(decisions.map((d) => d.state), `scenario ${JSON.stringify(scenario)}`).toContain(s);
      // Each record shows the state of the reallocation before it.
      h.mgr.hostSeries.forEach((r, k) => {
        const last = decisions.filter((d) => d.records <= k).pop();
        expect(r.state, `record at ${r.t} s`).toBe(last?.state ?? 'high');
      });
      if (scenario.expect.includes('low')) {
        expect(h.mgr.hostSeries.map((r) => r.state)).toContain('low');
        expect(h.mgr.stats.blockedRounds).toBeGreaterThan(0);
        expect(h.mgr.vmSeries.some((r) => r.blocked === 1)).toBe(true);
        expect(g.counters.blockedSlices).toBeGreaterThan(0);
      }
      expect(h.mgr.states.state).toBe('high'); // swapping brought free memory back
      expectFillIntact(g, 1800);
    }
  });

  it('with ballooning off, the manager swaps instead; guest data intact', async () => {
    const h = await host({ balloon: false });
    const a = filler(h, 'a', SOFT_FILL), b = filler(h, 'b', SOFT_FILL);
    h.mgr.start();
    h.sched.runFor(10);
    for (const g of [a, b]) {
      expect(Math.abs(g.hostFrames - targetOf(h, g.name))).toBeLessThanOrEqual(4);
      expect(g.device.size).toBe(0);
      expect(g.kernel.swap.stats.swapOuts).toBe(0); // the guest never had to page out
    }
    expect(h.mgr.stats.ballooned).toBe(0);
    expect(h.mgr.stats.swappedOut).toBeGreaterThan(0);
    const swapped = h.swap!.stats().slotsInUse;
    expect(swapped).toBeGreaterThan(0);
    expectFillIntact(a, SOFT_FILL);
    expectFillIntact(b, SOFT_FILL);
    expect(h.swap!.stats().swapIns).toBeGreaterThan(0); // the reads brought swapped pages back
  });

  it('an idle guest next to a filler keeps no more than it uses: no reclamation while free memory is high', async () => {
    const h = await host();
    const idle = h.add({ name: 'idle', memoryBytes: 4 * MiB, mode: 'nested', workload: new IdleKernel(), balloonCapabilities: CAPS_4K },
      { min: 0, max: 1024, shares: 1000 });
    const f = filler(h, 'f', 300);
    h.mgr.start();
    h.sched.runFor(5);
    expect(h.mgr.hostSeries.every((r) => r.state === 'high')).toBe(true);
    expect(h.mgr.stats.ballooned + h.mgr.stats.swappedOut + h.mgr.stats.emergencySwaps).toBe(0);
    expect(idle.device.size + f.device.size).toBe(0);
    expectFillIntact(f, 300);
  });

  it('a crossing into a worse free-memory state reallocates at once, not at the end of a long balance period', async () => {
    const h = await host({ balancePeriod: 1000, balloon: false });
    const g = filler(h, 'big', 1800, { min: 0, max: 2048, shares: 1000 }, 8); // 8 MiB guest on a 6 MiB pool
    h.mgr.start();
    h.sched.runFor(8);
    expect(h.mgr.stats.rebalances).toBeGreaterThan(0);                     // none would be due before 1000 s
    expect(h.mgr.stats.eventRebalances).toBe(h.mgr.stats.rebalances);
    expect(h.mgr.stats.swappedOut).toBeGreaterThan(0);
    expectFillIntact(g, 1800);
  });
});
