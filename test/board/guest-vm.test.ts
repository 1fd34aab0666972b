// End to end: guest kernels with their balloon drivers on the scheduler's virtual clock,
// against the strict balloon device on each VM's backdoor port.
import { describe, it, expect } from 'vitest';
import { Hypervisor, P2M } from '../../src/hypervisor/index.js';
import { Scheduler } from '../../src/hypervisor/policy/scheduler.js';
import { GuestVm } from '../../src/board/guest-vm.js';
import { Throughput } from '../../guests/throughput.js';
import { IdleKernel } from '../../guests/idle.js';
import { Filler, FILL_BASE, fillWord } from '../../guests/filler.js';
import { CAP } from '../../src/devices/balloon.js';

const MiB = 2 ** 20, HZ = 1e7;
const CAPS_4K = CAP.BASIC_CMDS | CAP.BATCHED_CMDS; // 4 KiB pages: the balloon reaches a target exactly

const word = fillWord;

async function host(mib = 48) { return Hypervisor.create({ hostMemoryBytes: mib * MiB }); }

describe.each(['nested', 'shadow'] as const)('guest machines on the scheduler (%s)', (mode) => {
  it('shares 1:3 give CPU usage 1:3, and a run is deterministic', async () => {
    const run = async () => {
      const hv = await host();
      const s = new Scheduler({ hz: HZ, slice: 10_000 });
      const a = new GuestVm({ hv, name: 'a', memoryBytes: 4 * MiB, mode, hz: HZ, workload: new Throughput({ seed: 1, unitsPerBatch: 2 }) }).attach(s, 1000);
      const b = new GuestVm({ hv, name: 'b', memoryBytes: 4 * MiB, mode, hz: HZ, workload: new Throughput({ seed: 2, unitsPerBatch: 2 }) }).attach(s, 3000);
      s.runFor(0.3);
      return { ua: s.usage(a), ub: s.usage(b), units: [(a.workload as Throughput).units, (b.workload as Throughput).units] };
    };
    const r1 = await run();
    // Each step may overshoot its slice by one batch; over 300 slices the ratio is within a few %.
    expect(r1.ub / r1.ua).toBeGreaterThan(2.8);
    expect(r1.ub / r1.ua).toBeLessThan(3.2);
    expect(r1.units[1]).toBeGreaterThan(2 * r1.units[0]);
    expect(await run()).toEqual(r1);
  });

  it('charges the balloon driver\'s work (hypercalls, allocations, page-outs) to the guest\'s CPU', async () => {
    const hv = await host();
    const s = new Scheduler({ hz: HZ, slice: 10_000 });
    const g = new GuestVm({ hv, name: 'g', memoryBytes: 4 * MiB, mode, hz: HZ, workload: new Filler(600), balloonCapabilities: CAPS_4K }).attach(s);
    while (!(g.workload as Filler).written) s.runFor(0.1);
    s.runFor(0.5);
    const used0 = s.usage(g), driver0 = g.driverCycles;
    g.device.setTarget(g.kernel.frames.freeCount + 100); // the driver's allocations page out too
    s.runFor(3);
    const driver = g.driverCycles - driver0;
    expect(g.kernel.swap.stats.swapOuts).toBeGreaterThanOrEqual(100);
    // Every cycle the driver spent is in the guest's scheduler usage (nothing runs for free).
    expect(driver).toBeGreaterThan(100 * 1500); // at least an exit per page-out (writes are asynchronous)
    expect(s.usage(g) - used0).toBeGreaterThanOrEqual(driver);
    // An idle guest's execution time is the clock's (it ran or sat halted all along).
    expect(g.executionSeconds).toBeCloseTo(s.seconds, 1);
  });

  it('inflating the balloon to N frees exactly N host frames, keeps the guest data, and deflates', async () => {
    const hv = await host();
    const s = new Scheduler({ hz: HZ, slice: 10_000 });
    const pages = 600;
    const g = new GuestVm({ hv, name: 'g', memoryBytes: 4 * MiB, mode, hz: HZ, workload: new Filler(pages) }).attach(s);
    g.vm.prefault(0n, g.vm.memoryBytes); // every guest frame backed: each locked one frees a host frame
    while (!(g.workload as Filler).written) s.runFor(0.1); // the filler writes its pages, then idles
    s.runFor(0.1);
    const before = g.hostFrames;
    // More than the guest has free: the driver's allocations make the guest page out.
    const n = g.kernel.frames.freeCount + 200;
    g.device.setTarget(n);
    s.runFor(3);
    expect(g.device.size).toBe(n);
    expect(g.driver!.size).toBe(n);
    expect(g.vm.p2m.count(P2M.BALLOONED, P2M.BALLOONED)).toBe(n);
    expect(before - g.hostFrames).toBe(n);
    expect(g.kernel.swap.stats.swapOuts).toBeGreaterThanOrEqual(200);
    expect(g.device.violations).toEqual([]);
    // The guest's own data survived (pages come back from its swap disk as it reads them).
    const back = Array.from({ length: pages }, (_, p) => g.kernel.readUser(FILL_BASE + BigInt(p * 4096), 1)[0]);
    expect(back).toEqual(Array.from({ length: pages }, (_, p) => word(p)));
    // Deflate: the gfns return to the guest, unbacked until touched.
    g.device.setTarget(0);
    s.runFor(3);
    expect(g.device.size).toBe(0);
    expect(g.driver!.size).toBe(0);
    expect(g.vm.p2m.count(P2M.BALLOONED, P2M.BALLOONED)).toBe(0);
    expect(g.balloonStats.snapshot()).toMatchObject({ inflated: n, deflated: n, violations: 0 });
  });

  it('a guest that touches a ballooned page is caught, the balloon is reset and re-inflated', async () => {
    const hv = await host();
    const s = new Scheduler({ hz: HZ, slice: 10_000 });
    const g = new GuestVm({ hv, name: 'g', memoryBytes: 4 * MiB, mode, hz: HZ, workload: new IdleKernel(), balloonCapabilities: CAPS_4K }).attach(s);
    g.device.setTarget(64);
    s.runFor(1.5);
    expect(g.device.size).toBe(64);
    const victim = g.driver!.ballooned()[5];
    // A buggy guest writes into a page it gave to the balloon.
    g.kernel.kc.write64([[BigInt(victim) << 12n, 0xbadn]]);
    expect(g.counters.balloonTouches).toBe(1);
    expect(g.violations[0]).toMatchObject({ kind: 'touched-ballooned', gfn: victim });
    expect(g.violations[0].message).toMatch(/without deflating/);
    expect(g.device.size).toBe(0); // popped by the host
    expect(g.kernel.kc.read64([BigInt(victim) << 12n])[0]).toBe(0xbadn); // the write landed on a fresh frame
    s.runFor(2); // the driver sees ERROR_RESET, resets (START) and inflates again
    expect(g.driver!.stats.resets).toBeGreaterThanOrEqual(2);
    expect(g.device.size).toBe(64);
    expect(g.driver!.size).toBe(64);
  });

  it('with 2 MiB pages a small target is overshot to a whole 2 MiB page, as vmw_balloon does', async () => {
    const hv = await host();
    const s = new Scheduler({ hz: HZ, slice: 10_000 });
    const g = new GuestVm({ hv, name: 'g', memoryBytes: 4 * MiB, mode, hz: HZ, workload: new IdleKernel() }).attach(s);
    g.device.setTarget(64);
    s.runFor(1.5);
    expect(g.device.size).toBe(512);
    expect(g.driver!.size).toBe(512);
  });

  it('two VMs: one VM\'s balloon never touches the other\'s frames', async () => {
    const hv = await host();
    const s = new Scheduler({ hz: HZ, slice: 10_000 });
    const a = new GuestVm({ hv, name: 'a', memoryBytes: 4 * MiB, mode, hz: HZ, workload: new Filler(300), balloonCapabilities: CAPS_4K }).attach(s);
    const b = new GuestVm({ hv, name: 'b', memoryBytes: 4 * MiB, mode, hz: HZ, workload: new Filler(300) }).attach(s);
    while (!(a.workload as Filler).written || !(b.workload as Filler).written) s.runFor(0.1);
    s.runFor(0.1);
    const bFrames = b.hostFrames;
    a.device.setTarget(200);
    s.runFor(2);
    expect(a.device.size).toBe(200);
    expect(b.hostFrames).toBe(bFrames);
    expect(b.vm.p2m.count(P2M.BALLOONED, P2M.BALLOONED)).toBe(0);
    const back = Array.from({ length: 300 }, (_, p) => b.kernel.readUser(FILL_BASE + BigInt(p * 4096), 1)[0]);
    expect(back).toEqual(Array.from({ length: 300 }, (_, p) => word(p)));
  });
});
