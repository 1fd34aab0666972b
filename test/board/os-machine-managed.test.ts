// OsMachine as a VM the memory manager manages: an empty host pool is an OUT_OF_FRAMES exit
// that the host's reclaim resolves (the access retries) or, with nothing to reclaim, a clear
// stop with state intact; a blocked machine does not run; `device` is the balloon it steers.
import { describe, expect, it } from 'vitest';
import { Hypervisor } from '../../src/hypervisor/monitor/hypervisor.js';
import { HostSwap } from '../../src/hypervisor/pagers/swap.js';
import { Scheduler } from '../../src/hypervisor/policy/scheduler.js';
import { OsMachine } from '../../src/board/os-machine.js';
import { interpretingCpu } from '../../src/board/cpu-adapter.js';
import { readShippedOs } from '../../src/board/shipped-os.js';
import { toucherChecksum } from '../../guests/os/programs.js';
import { auditFrames } from '../helpers/frames-audit.js';

const MiB = 2 ** 20;
const KERNEL = readShippedOs();

/** A host whose VM pool holds `poolMiB` (1 MiB hypervisor region on top). */
async function small(poolMiB: number, reclaim?: 'swap') {
  const hv = await Hypervisor.create({ hostMemoryBytes: (poolMiB + 1) * MiB, hypervisorBytes: MiB });
  const swap = reclaim ? new HostSwap(hv, { seed: 3, capacity: 8192 }) : undefined;
  let out = '';
  const m = new OsMachine({ hv, name: 'g', kernel: KERNEL, memoryBytes: 32 * MiB, mode: 'nested', cpu: interpretingCpu,
    load: { cmdline: 'run=toucher:8:2' }, console: (b) => { out += String.fromCharCode(b); },
    reclaim: swap ? (g, need) => swap.swapOut(g.vm, Math.max(need, 64)) : undefined });
  return { hv, m, swap, console: () => out };
}

describe('OsMachine on a host short of frames', () => {
  it('stops with a clear error when nothing can be reclaimed, leaving the frames accounted', async () => {
    const { hv, m } = await small(6);
    const r = m.run({ instructions: 1e8 });
    expect(r.stop).toBe('error');
    expect(r.message).toMatch(/^host out of vm frames \(gpa 0x[0-9a-f]+\) and nothing can be reclaimed/);
    expect(hv.frames.counts().vmFree).toBe(0);
    expect(auditFrames(hv.frames, [m.vm]).problems).toEqual([]);
  }, 60_000);

  it('resolves OUT_OF_FRAMES through the host\'s reclaim (swap) and the toucher\'s data survives', async () => {
    const { hv, m, swap, console } = await small(6, 'swap');
    const r = m.run({ instructions: 1e8 });
    expect(r).toMatchObject({ stop: 'power-off', status: 0 });
    expect(m.outOfFrames).toBeGreaterThan(0);
    expect(swap!.stats().swapIns).toBeGreaterThan(0);
    expect(console()).toContain(`toucher: 8 MiB pass 1 checksum ${toucherChecksum(8, 1)} ok\n`);
    expect(console()).toContain(`toucher: 8 MiB pass 2 checksum ${toucherChecksum(8, 2)} ok\n`);
    expect(auditFrames(hv.frames, [m.vm]).problems).toEqual([]);
    swap!.close();
  }, 60_000);
});

describe('OsMachine on a scheduler', () => {
  it('does not run while blocked, and runs again once unblocked', async () => {
    const hv = await Hypervisor.create({ hostMemoryBytes: 48 * MiB });
    const sched = new Scheduler({ hz: 2e9, slice: 2e6 });
    const m = new OsMachine({ hv, name: 'g', kernel: KERNEL, memoryBytes: 32 * MiB, mode: 'nested', cpu: interpretingCpu,
      load: { cmdline: 'run=toucher:2:50' } }).attach(sched);
    expect(m.device).toBe(m.balloon);
    sched.runFor(0.002);
    const before = m.cpu.instructions();
    expect(before).toBeGreaterThan(0);
    m.blocked = true;
    sched.runFor(0.002);
    expect(m.cpu.instructions()).toBe(before);
    expect(m.blockedSlices).toBeGreaterThan(0);
    m.blocked = false;
    sched.runFor(0.002);
    expect(m.cpu.instructions()).toBeGreaterThan(before);
  }, 60_000);
});
