// OsMachine's memory hot-add on the board's other paths: the memory manager follows the
// VM's size (watchResize) while the guest onlines the memory and runs in it on a scheduler;
// a Vm.hotAdd made by anyone reaches the guest; after live migration the hotplug device and
// the size-following move with the VM; a native VM cannot grow and its guest runs on.
import { describe, expect, it } from 'vitest';
import { Hypervisor } from '../../src/hypervisor/monitor/hypervisor.js';
import { HostSwap } from '../../src/hypervisor/pagers/swap.js';
import { Scheduler } from '../../src/hypervisor/policy/scheduler.js';
import { MemoryManager } from '../../src/hypervisor/policy/manager.js';
import { OsMachine } from '../../src/board/os-machine.js';
import { interpretingCpu } from '../../src/board/cpu-adapter.js';
import { readShippedOs } from '../../src/board/shipped-os.js';
import { toucherChecksum } from '../../guests/os/programs.js';

const MiB = 2 ** 20;
const FRAMES_PER_MIB = 256;
const KERNEL = readShippedOs();
/** The sizes the guest reported onlining, in order. */
const onlined = (out: string) => [...out.matchAll(/hotplug: memory (\d+) frames/g)].map((x) => Number(x[1]));

function machine(hv: Hypervisor, cmdline: string, memMiB = 16, mode: 'nested' | 'shadow' | 'native' = 'nested') {
  let out = '';
  const m = new OsMachine({ hv, name: 'g', kernel: KERNEL, memoryBytes: memMiB * MiB, mode, cpu: interpretingCpu,
    load: { cmdline }, console: (b) => { out += String.fromCharCode(b); } });
  return { m, console: () => out };
}

describe('OsMachine memory hot-add', () => {
  it('on a managed host: the manager raises max and the target, the guest onlines the frames and runs a program in them', async () => {
    const hv = await Hypervisor.create({ hostMemoryBytes: 64 * MiB });
    const sched = new Scheduler({ hz: 2e9, slice: 2e6 });
    const swap = new HostSwap(hv, { seed: 1, capacity: 16384 });
    try {
      const mgr = new MemoryManager({ hv, sched, swap });
      const { m, console } = machine(hv, 'shell');
      mgr.add(m, { min: 1024, max: 4096, shares: 1000 });
      m.attach(sched);
      mgr.start();
      sched.runFor(0.5);
      m.hotAdd(16 * MiB);
      expect(mgr.list()[0].alloc).toEqual({ min: 1024, max: 8192, shares: 1000 });
      expect(mgr.list()[0].target).toBe(8192);                  // one VM on a host with room: its max
      sched.runFor(0.1);                                        // the guest was halted: the interrupt woke it
      expect(onlined(console())).toEqual([8192]);
      m.uart.pushInput('run toucher:20\n');
      for (let i = 0; i < 100 && !/toucher: .*\n/.test(console()); i++) sched.runFor(0.1);
      expect(console()).toContain(`toucher: 20 MiB pass 1 checksum ${toucherChecksum(20, 1)} ok`);
      expect(m.stopped).toBeNull();
      expect(m.counters().staleUses).toBe(0);
    } finally { swap.close(); }
  }, 60_000);

  it('a Vm.hotAdd by anyone reaches the guest; after migration the next add rings it on the new host', async () => {
    const [h1, h2] = [await Hypervisor.create({ hostMemoryBytes: 64 * MiB }), await Hypervisor.create({ hostMemoryBytes: 64 * MiB })];
    const { m, console } = machine(h1, 'shell');
    m.run({ seconds: 0.3 });
    m.vm.hotAdd(4 * MiB);                                       // not through the board
    m.run({ seconds: 0.4 });
    expect(onlined(console())).toEqual([20 * FRAMES_PER_MIB]);
    const old = m.vm;
    m.migrateTo(h2, { tracking: 'ept-dirty', bandwidth: 50e6, stopPages: 16 });
    expect(m.vm).not.toBe(old);
    expect(m.vm.frameCount).toBe(20 * FRAMES_PER_MIB);
    expect(m.hotplug.sequence).toBe(1);                         // the device moved with its state
    m.hotAdd(4 * MiB);
    m.run({ seconds: 0.6 });
    expect(onlined(console())).toEqual([20 * FRAMES_PER_MIB, 24 * FRAMES_PER_MIB]);
    expect(m.hotplug.sequence).toBe(2);
    m.uart.pushInput('run toucher:22\n');
    for (let i = 0; i < 100 && !/toucher: .*\n/.test(console()); i++) m.run({ seconds: m.seconds + 0.1 });
    expect(console()).toContain(`toucher: 22 MiB pass 1 checksum ${toucherChecksum(22, 1)} ok`);
  }, 60_000);

  it('the balloon follows: the host may set a target past the old size and the driver inflates into the added memory', async () => {
    const hv = await Hypervisor.create({ hostMemoryBytes: 64 * MiB });
    const { m, console } = machine(hv, 'run=sleeper:4 linger=0');
    m.run({ seconds: 1.1 });
    expect(() => m.balloon.setTarget(5000)).toThrow(RangeError);  // more than the VM has
    m.hotAdd(16 * MiB);
    m.balloon.setTarget(5000);                                    // the doorbell: inflates at once
    m.run({ seconds: 1.6 });
    expect(m.balloon.size).toBeGreaterThanOrEqual(5000);
    expect(m.balloon.size).toBeLessThan(5000 + 512);
    expect(m.balloon.violationCount).toBe(0);
    m.balloon.setTarget(0);
    expect(m.run({ seconds: 10 })).toMatchObject({ stop: 'power-off', status: 0 });
    expect(m.balloon.size).toBe(0);
    expect(console()).toMatch(/^sleeper: slept 4 s$/m);
  }, 60_000);

  it('a native VM cannot grow: the error is clear, the device and the guest are as they were', async () => {
    const hv = await Hypervisor.create({ hostMemoryBytes: 64 * MiB });
    const { m, console } = machine(hv, 'run=sleeper:1 linger=0', 16, 'native');
    m.run({ seconds: 0.3 });
    expect(() => m.hotAdd(4 * MiB)).toThrow(/native/);
    expect(m.vm.frameCount).toBe(16 * FRAMES_PER_MIB);
    expect(m.hotplug.sequence).toBe(0);
    expect(m.run({ seconds: 5 })).toMatchObject({ stop: 'power-off', status: 0 });
    expect(console()).toMatch(/^sleeper: slept 1 s$/m);
    expect(onlined(console())).toEqual([]);
  }, 60_000);
});
