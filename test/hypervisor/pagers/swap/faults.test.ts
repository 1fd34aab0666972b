// Hypervisor swapping when the swap file fails, with faults injected through the SwapFile's
// I/O layer (SwapIo; nothing in node:fs is patched): a failed write (ENOSPC), a short write,
// a failed read (EIO), a short read and a corrupted slot (a bit flipped on its way back).
// Outcomes: a failed swap-out leaves the page resident; a failed swap-in stops the access
// that needed the page with a clear error (the VM cannot go on) and leaves it SWAPPED;
// another VM sharing the swap file is unaffected; host frame accounting stays exact; once
// the fault is gone, the data comes back intact.
import { describe, it, expect, afterEach } from 'vitest';
import { type Gfn } from '../../../../src/core/addr.js';
import {
  Hypervisor, HostSwap, SwapFile, SwapIoError, SwapChecksumError, nodeSwapIo, P2M, frameField, type SwapIo, type Vm,
} from '../../../../src/hypervisor/index.js';
import { guestVm, SWAP_MODES, DATA, MiB, range, fillPages, readPages, pattern } from './rig.js';

/** node:fs with faults armed by the test: each counter fails that many next calls. */
class FaultyIo implements SwapIo {
  writes = 0; reads = 0;
  enospcAtWrite = -1;   // the write with this index throws ENOSPC
  shortWrites = 0;      // the next n writes write half a page
  eioReads = 0;         // the next n reads throw EIO
  shortReads = 0;       // the next n reads return 1000 bytes
  flipReads = 0;        // the next n reads return a page with one bit flipped
  open(p: string) { return nodeSwapIo.open(p); }
  truncate(fd: number, n: number) { nodeSwapIo.truncate(fd, n); }
  close(fd: number) { nodeSwapIo.close(fd); }
  write(fd: number, data: Uint8Array, pos: number): number {
    if (this.writes++ === this.enospcAtWrite) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
    if (this.shortWrites > 0) { this.shortWrites--; return nodeSwapIo.write(fd, data.subarray(0, 2048), pos); }
    return nodeSwapIo.write(fd, data, pos);
  }
  read(fd: number, into: Uint8Array, pos: number): number {
    this.reads++;
    if (this.eioReads > 0) { this.eioReads--; throw Object.assign(new Error('EIO: i/o error, read'), { code: 'EIO' }); }
    const n = nodeSwapIo.read(fd, into, pos);
    if (this.shortReads > 0) { this.shortReads--; return 1000; }
    if (this.flipReads > 0) { this.flipReads--; into[1234] ^= 0x10; }
    return n;
  }
}

const open: HostSwap[] = [];
afterEach(() => { while (open.length) { const s = open.pop()!; s.close(); s.file.close(); } });

/** Two VMs (tags 1 and 2) with 16 data pages each, sharing one swap file with injectable faults. */
async function twoVms(mode: 'nested' | 'shadow') {
  const hv = await Hypervisor.create({ hostMemoryBytes: 16 * MiB });
  const io = new FaultyIo();
  const swap = new HostSwap(hv, { file: new SwapFile({ capacity: 256, io }) });
  open.push(swap);
  const a = guestVm(hv, mode), b = guestVm(hv, mode);
  const data = range(DATA, 16);
  fillPages(hv, a, data, 1);
  fillPages(hv, b, data, 2);
  return { hv, io, swap, a, b, data };
}

const want = (tag: number, gfns: number[]): bigint[] => gfns.flatMap((g) => range(0, 4).map((w) => pattern(tag, g, w)));
const swapped = (vm: Vm): number[] => { const o: number[] = []; vm.p2m.forEach((g) => o.push(g), P2M.SWAPPED, P2M.SWAPPED); return o; };

describe.each(SWAP_MODES)('swap file faults (%s)', (mode) => {
  it('ENOSPC on a swap-out write: the page stays resident, the slot free, nothing else changes', async () => {
    const { hv, io, swap, a, data } = await twoVms(mode);
    const word = a.p2m.raw(DATA as Gfn), frames = hv.frames.counts(), used = hv.frames.usedBy(a.id);
    io.enospcAtWrite = io.writes;
    expect(() => swap.swapOutGfn(a, DATA as Gfn)).toThrow(SwapIoError);
    expect(a.p2m.raw(DATA as Gfn)).toBe(word);
    expect(hv.frames.counts()).toEqual(frames);
    expect(hv.frames.usedBy(a.id)).toBe(used);
    expect(swap.file.inUse).toBe(0);
    expect(readPages(hv, a, data)).toEqual(want(1, data));
  });

  it('ENOSPC midway through swapOut: it returns the frames it freed, counts the error, and every page reads back', async () => {
    const { hv, io, swap, a, b, data } = await twoVms(mode);
    const vmFree = hv.frames.counts().vmFree, used = hv.frames.usedBy(a.id);
    io.enospcAtWrite = io.writes + 3; // the 4th write fails
    expect(swap.swapOut(a, 10)).toBe(3);
    expect(hv.frames.counts().vmFree).toBe(vmFree + 3);
    expect(hv.frames.usedBy(a.id)).toBe(used - 3);
    expect(swapped(a)).toHaveLength(3);
    expect(swap.file.inUse).toBe(3);
    expect(swap.stats(a)).toMatchObject({ swapOuts: 3, writeErrors: 1, slotsInUse: 3 });
    expect(swap.stats(b)).toMatchObject({ swapOuts: 0, writeErrors: 0 });
    expect(readPages(hv, a, data)).toEqual(want(1, data));
    expect(readPages(hv, b, data)).toEqual(want(2, data));
    expect(swap.file.inUse).toBe(0);
  });

  it('a short write is a failed swap-out, not a slot with half a page', async () => {
    const { hv, io, swap, a, data } = await twoVms(mode);
    const frames = hv.frames.counts();
    io.shortWrites = 1;
    expect(() => swap.swapOutGfn(a, DATA as Gfn)).toThrow(/short write \(2048 of 4096 bytes\)/);
    expect(a.p2m.raw(DATA as Gfn) & P2M.PRESENT).toBeTruthy();
    expect(hv.frames.counts()).toEqual(frames);
    expect(swap.file.inUse).toBe(0);
    expect(readPages(hv, a, data)).toEqual(want(1, data));
  });

  const readFaults: [string, (io: FaultyIo) => void, RegExp, typeof SwapIoError | typeof SwapChecksumError][] = [
    ['a short read', (io) => { io.shortReads = 1; }, /short read \(1000 of 4096 bytes\)/, SwapIoError],
    ['EIO on read', (io) => { io.eioReads = 1; }, /read failed: EIO/, SwapIoError],
    ['a corrupted slot (a flipped bit)', (io) => { io.flipReads = 1; }, /is corrupt: checksum/, SwapChecksumError],
  ];
  for (const [name, arm, message, type] of readFaults) {
    it(`${name} on swap-in: that VM's access stops with a clear error, state intact; the other VM runs; later it swaps in`, async () => {
      const { hv, io, swap, a, b, data } = await twoVms(mode);
      for (const vm of [a, b]) for (const g of data) swap.swapOutGfn(vm, g as Gfn); // data pages, not the guest's tables
      const words = data.map((g) => a.p2m.raw(g as Gfn));
      const frames = hv.frames.counts(), usedA = hv.frames.usedBy(a.id), slots = swap.slotsOf(a);
      arm(io);
      let err: unknown;
      try { readPages(hv, a, [DATA]); } catch (e) { err = e; }
      expect(err).toBeInstanceOf(type);
      expect((err as Error).message).toMatch(message);
      expect((err as Error).message).toMatch(new RegExp(`swap-in of gfn 0x${DATA.toString(16)} of VM ${a.id} failed: swap slot ${frameField(words[0]!)} `));
      expect(data.map((g) => a.p2m.raw(g as Gfn))).toEqual(words); // still SWAPPED, same slots
      expect(hv.frames.counts()).toEqual(frames);                      // the frame taken for it went back
      expect(hv.frames.usedBy(a.id)).toBe(usedA);
      expect(swap.slotsOf(a)).toEqual(slots);
      expect(swap.stats(a)).toMatchObject({ swapIns: 0, readErrors: 1 });
      // The other VM, on the same swap file, reads all its pages back.
      expect(readPages(hv, b, data)).toEqual(want(2, data));
      expect(swap.stats(b)).toMatchObject({ swapIns: 16, readErrors: 0 });
      // The fault was transient: the retry swaps the page in with its exact contents.
      expect(readPages(hv, a, data)).toEqual(want(1, data));
      expect(swap.stats()).toMatchObject({ swapIns: 32, readErrors: 1, slotsInUse: 0 });
      expect(swap.file.inUse).toBe(0);
    });
  }

  it('a host read (vm.memory) of a page whose swap-in fails throws the same error and changes nothing', async () => {
    const { hv, io, swap, a } = await twoVms(mode);
    swap.swapOutGfn(a, DATA as Gfn);
    const word = a.p2m.raw(DATA as Gfn), frames = hv.frames.counts();
    io.eioReads = 1;
    expect(() => a.memory.read64(BigInt(DATA) << 12n)).toThrow(/swap-in of gfn .* failed: .*EIO/);
    expect(a.p2m.raw(DATA as Gfn)).toBe(word);
    expect(hv.frames.counts()).toEqual(frames);
    expect(a.memory.read64(BigInt(DATA) << 12n)).toBe(pattern(1, DATA, 0));
  });
});
