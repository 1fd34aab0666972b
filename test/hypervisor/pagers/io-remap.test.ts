// Hot I/O page remapping (src/hypervisor/pagers/io-remap.ts, the paper's §7): transfers to
// high frames bounce until a page is hot, then it moves into the low reserve, and every
// later transfer is a copy avoided; bytes, the guest's view and frame counts stay exact.
import { describe, it, expect } from 'vitest';
import { Hypervisor } from '../../../src/hypervisor/monitor/hypervisor.js';
import { IO_RESERVE_OWNER } from '../../../src/hypervisor/monitor/frames.js';
import { IoRemapper } from '../../../src/hypervisor/pagers/io-remap.js';
import type { Gfn } from '../../../src/core/addr.js';
import { bootGuest, guestLoad, pattern } from './sharing/setup.js';

const MiB = 2 ** 20;
const LIMIT = 1024; // frames: "low memory" is the first 4 MiB of the host

/** A host whose low memory is taken by a filler VM but for `reserve` frames the remapper claims. */
async function rig(threshold: number, reserve = 8) {
  const hv = await Hypervisor.create({ hostMemoryBytes: 32 * MiB });
  const io = new IoRemapper(hv.frames, hv.machine.memory, { dmaLimit: LIMIT, hotThreshold: threshold, reserveFrames: reserve });
  const filler = hv.createVm({ memoryBytes: 8 * MiB, mode: 'nested' });
  filler.prefault(0n, BigInt((LIMIT - reserve) * 4096)); // every other low frame
  const vm = hv.createVm({ memoryBytes: 4 * MiB, mode: 'nested' });
  bootGuest(vm); // page tables at gpa 1 MiB; the direct map covers the VM
  return { hv, io, vm, filler, dma: io.view(vm) };
}

describe('hot I/O page remapping', () => {
  it('bounces a high page until the threshold, then remaps it low: later transfers are copies avoided', async () => {
    const { hv, io, vm, dma } = await rig(3);
    const gpa = 0x20_0000n;
    const data = pattern(11);
    for (let i = 0; i < 5; i++) dma.write(gpa, data); // the disk DMA-reads... into guest memory
    expect(dma.read(gpa, 4096)).toEqual(data);
    expect(io.stats).toMatchObject({ pages: 6, bounces: 3, remaps: 1, avoided: 3, direct: 0, reserveEmpty: 0 });
    expect(io.stats.cycles).toBe(3 * 1000 + 1300);
    const hfn = vm.p2m.lookup((Number(gpa >> 12n)) as Gfn)!;
    expect(hfn).toBeLessThan(LIMIT);
    expect(hv.frames.ownerOf(hfn)).toBe(vm.id);
    expect(io.reserveLeft).toBe(7);
    expect(hv.frames.usedBy(IO_RESERVE_OWNER)).toBe(7);
    // The guest reads its bytes through the updated EPT mapping.
    const want = new DataView(data.buffer).getBigUint64(8, true);
    expect(guestLoad(hv, vm, gpa + 8n)).toBe(want);
  });

  it('threshold 0 never remaps; an empty reserve leaves hot pages bouncing; frame totals are exact', async () => {
    const never = await rig(0);
    for (let i = 0; i < 10; i++) never.dma.write(0x30_0000n, pattern(2));
    expect(never.io.stats).toMatchObject({ bounces: 10, remaps: 0, avoided: 0 });

    const { hv, io, vm, filler, dma } = await rig(1, 2);
    const used = hv.frames.usedBy(vm.id);
    for (let p = 0; p < 4; p++) dma.write(0x30_0000n + BigInt(p) * 4096n, pattern(p + 1));
    expect(io.stats).toMatchObject({ bounces: 4, remaps: 2, reserveEmpty: 2 });
    for (let p = 0; p < 4; p++) expect(dma.read(0x30_0000n + BigInt(p) * 4096n, 4096)).toEqual(pattern(p + 1));
    expect(hv.frames.usedBy(vm.id)).toBe(used + 4); // 4 pages backed; a high frame freed for each low one taken
    const c = hv.frames.counts();
    expect(hv.frames.hypervisorStart - c.vmFree).toBe(hv.frames.usedBy(vm.id) + hv.frames.usedBy(filler.id) + io.reserveLeft);
    io.close();
    expect(hv.frames.usedBy(IO_RESERVE_OWNER)).toBe(0);
  });

  it('refuses a reserve that low memory cannot hold, and bad options, leaving frames as they were', async () => {
    const hv = await Hypervisor.create({ hostMemoryBytes: 32 * MiB });
    const free = hv.frames.counts().vmFree;
    expect(() => new IoRemapper(hv.frames, hv.machine.memory, { dmaLimit: 16, hotThreshold: 2, reserveFrames: 17 })).toThrow(/only 16 free frames below/);
    expect(hv.frames.counts().vmFree).toBe(free);
    expect(() => new IoRemapper(hv.frames, hv.machine.memory, { dmaLimit: 0, hotThreshold: 2, reserveFrames: 1 })).toThrow(/dmaLimit/);
    expect(() => new IoRemapper(hv.frames, hv.machine.memory, { dmaLimit: 16, hotThreshold: -1, reserveFrames: 1 })).toThrow(/hotThreshold/);
  });
});
