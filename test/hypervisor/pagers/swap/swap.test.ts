// Hypervisor swapping under nested and shadow paging: swap-out frees exactly the frames
// it says, the guest and the host read back exactly their data after swap-in, damaged
// slots and empty frame pools leave the state intact, victims are random but
// deterministic and never frames another subsystem owns.
import { describe, it, expect, afterEach } from 'vitest';
import * as fs from 'node:fs';
import { PAGE_2M } from '../../../../src/core/bits.js';
import { type Gfn, hpaOf, type Hfn } from '../../../../src/core/addr.js';
import { P2M, HV_OWNER, OutOfFramesError, frameField, HostSwap, SwapChecksumError, SwapFullError, isSwappable, SLOT_BYTES, type Vm }
  from '../../../../src/hypervisor/index.js';
import { swapRig, SWAP_MODES, DATA, range, fillPages, readPages, pattern, va } from './rig.js';

const swaps: HostSwap[] = [];
const track = <T extends { swap: HostSwap }>(r: T): T => { swaps.push(r.swap); return r; };
afterEach(() => { while (swaps.length) swaps.pop()!.close(); });

const expected = (tag: number, gfns: number[], words = 4): bigint[] =>
  gfns.flatMap((g) => range(0, words).map((w) => pattern(tag, g, w)));
const swappedGfns = (vm: Vm): number[] => {
  const out: number[] = [];
  vm.p2m.forEach((g) => out.push(g), P2M.SWAPPED, P2M.SWAPPED);
  return out;
};
/** Overwrites 8 bytes of a slot in the swap file (a damaged disk). */
function corrupt(path: string, slot: number): Uint8Array {
  const fd = fs.openSync(path, 'r+');
  const old = new Uint8Array(8);
  fs.readSync(fd, old, 0, 8, slot * SLOT_BYTES + 64);
  fs.writeSync(fd, Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8), 0, 8, slot * SLOT_BYTES + 64);
  fs.closeSync(fd);
  return old;
}
function repair(path: string, slot: number, old: Uint8Array): void {
  const fd = fs.openSync(path, 'r+');
  fs.writeSync(fd, old, 0, 8, slot * SLOT_BYTES + 64);
  fs.closeSync(fd);
}

describe.each(SWAP_MODES)('host swap (%s)', (mode) => {
  it('swap-out frees exactly N host frames and writes N slots', async () => {
    const { hv, vm, swap } = track(await swapRig(mode));
    const data = range(DATA, 64);
    fillPages(hv, vm, data);
    const used = hv.frames.usedBy(vm.id), backed = vm.p2m.backed, vmFree = hv.frames.counts().vmFree;
    expect(swap.swapOut(vm, 20)).toBe(20);
    expect(hv.frames.usedBy(vm.id)).toBe(used - 20);
    expect(hv.frames.counts().vmFree).toBe(vmFree + 20);
    expect(vm.p2m.backed).toBe(backed - 20);
    const sw = swappedGfns(vm);
    expect(sw).toHaveLength(20);
    expect(swap.slotsOf(vm)).toEqual(sw.map((g) => frameField(vm.p2m.raw(g as Gfn))).sort((a, b) => a - b));
    expect(swap.file.inUse).toBe(20);
    expect(swap.stats(vm)).toMatchObject({ swapOuts: 20, swapIns: 0, slotsInUse: 20, bytesWritten: 20 * SLOT_BYTES });
    expect(swap.stats()).toEqual(swap.stats(vm));
    // Each swapped gfn's EPT leaf is gone (the walker's EPT in shadow mode).
    for (const g of sw) expect(vm.ept!.lookup(g as Gfn)).toBeNull();
    if (mode === 'shadow') for (const g of sw) expect(vm.p2m.raw(g as Gfn) & P2M.PAGE_TABLE).toBe(0);
  });

  it('the guest reads back exactly its data through the vCPU after everything swappable is swapped', async () => {
    const { hv, vm, vcpu, swap } = track(await swapRig(mode));
    const data = range(DATA, 96);
    fillPages(hv, vm, data);
    const n = swap.swapOut(vm, 10_000);
    expect(n).toBe(vm.p2m.count(P2M.SWAPPED, P2M.SWAPPED));
    expect(vm.p2m.count(P2M.PRESENT | P2M.PAGE_TABLE, P2M.PRESENT)).toBe(0); // nothing swappable left
    const before = vcpu.stats.hvCycles;
    expect(readPages(hv, vm, data)).toEqual(expected(1, data));
    const st = swap.stats(vm);
    expect(st.swapIns).toBeGreaterThanOrEqual(data.length); // the data, plus guest tables in nested mode
    expect(st.slotsInUse).toBe(n - st.swapIns);
    expect(st.swapInCycles).toBe(st.swapIns * swap.swapInCycles);
    expect(vcpu.stats.hvCycles - before).toBeGreaterThanOrEqual(st.swapInCycles);
    expect(vm.stats.resolves).toBe(st.swapIns);
    // Writes after swap-in land too, and the frames are the VM's own.
    fillPages(hv, vm, data, 2);
    expect(readPages(hv, vm, data)).toEqual(expected(2, data));
    expect(hv.frames.usedBy(vm.id)).toBe(vm.p2m.backed);
  });

  it('host reads through vm.memory swap in too (and a host write of a swapped page keeps the rest of it)', async () => {
    const { hv, vm, swap } = track(await swapRig(mode));
    fillPages(hv, vm, [DATA, DATA + 1]);
    swap.swapOutGfn(vm, DATA as Gfn);
    swap.swapOutGfn(vm, (DATA + 1) as Gfn);
    expect(vm.memory.read64(BigInt(DATA) << 12n)).toBe(pattern(1, DATA, 0));
    expect(vm.p2m.raw(DATA as Gfn) & (P2M.PRESENT | P2M.SWAPPED)).toBe(P2M.PRESENT);
    vm.memory.write64((BigInt(DATA + 1) << 12n) + 8n, 77n);
    expect(readPages(hv, vm, [DATA + 1], 3)).toEqual([pattern(1, DATA + 1, 0), 77n, pattern(1, DATA + 1, 2)]);
    expect(swap.stats(vm)).toMatchObject({ swapIns: 2, slotsInUse: 0, bytesRead: 2 * SLOT_BYTES });
    expect(swap.file.inUse).toBe(0);
  });

  it('a corrupted slot gives a clear error, the entry stays SWAPPED and no frame leaks; repaired, it swaps in', async () => {
    const { hv, vm, swap } = track(await swapRig(mode));
    fillPages(hv, vm, [DATA]);
    swap.swapOutGfn(vm, DATA as Gfn);
    const word = vm.p2m.raw(DATA as Gfn), slot = frameField(word);
    const old = corrupt(swap.file.path, slot);
    const used = hv.frames.usedBy(vm.id);
    expect(() => readPages(hv, vm, [DATA])).toThrow(SwapChecksumError);
    expect(() => readPages(hv, vm, [DATA])).toThrow(new RegExp(`swap slot ${slot} .* is corrupt`));
    expect(() => vm.memory.read64(BigInt(DATA) << 12n)).toThrow(/corrupt/);
    expect(vm.p2m.raw(DATA as Gfn)).toBe(word);
    expect(hv.frames.usedBy(vm.id)).toBe(used);
    expect(swap.file.isAllocated(slot)).toBe(true);
    expect(swap.stats(vm)).toMatchObject({ swapIns: 0, slotsInUse: 1 });
    repair(swap.file.path, slot, old);
    expect(readPages(hv, vm, [DATA])).toEqual(expected(1, [DATA]));
    expect(swap.stats(vm)).toMatchObject({ swapIns: 1, slotsInUse: 0 });
  });

  it('no host frame for a swap-in: OUT_OF_FRAMES exit, state intact; after freeing one the retry succeeds', async () => {
    const { hv, vm, vcpu, swap } = track(await swapRig(mode));
    fillPages(hv, vm, [DATA, DATA + 5]);
    swap.swapOutGfn(vm, (DATA + 5) as Gfn);
    const word = vm.p2m.raw((DATA + 5) as Gfn);
    const held: Hfn[] = [];
    for (let h; (h = hv.frames.tryAlloc(99)) !== null;) held.push(h); // someone else takes every VM-pool frame
    const b = hv.machine.createBatch(4).load(va(DATA)).load(va(DATA + 5, 1));
    const x = vcpu.run(b);
    expect(x).toMatchObject({ reason: 'OUT_OF_FRAMES', index: 1, pool: 'vm' });
    if (mode === 'nested') expect(x).toMatchObject({ gpa: (BigInt(DATA + 5) << 12n) + 8n });
    expect(vm.p2m.raw((DATA + 5) as Gfn)).toBe(word);
    expect(swap.stats(vm)).toMatchObject({ swapIns: 0, slotsInUse: 1 });
    hv.frames.free(held.pop()!, 99);
    expect(vcpu.run(b, (x as { index: number }).index)).toEqual({ reason: 'end' });
    expect([b.value(0), b.value(1)]).toEqual([pattern(1, DATA, 0), pattern(1, DATA + 5, 1)]);
    expect(swap.stats(vm)).toMatchObject({ swapIns: 1, slotsInUse: 0 });
    for (const h of held) hv.frames.free(h, 99);
  });
});

describe('host swap: victims and bookkeeping', () => {
  it('never swaps shared, page-table, trapped or write-protected frames; swapOutGfn says why', async () => {
    const { hv, vm, swap } = track(await swapRig('nested'));
    const data = range(DATA, 8);
    fillPages(hv, vm, data);
    vm.p2m.setState((DATA + 1) as Gfn, P2M.WRITE_PROTECTED);
    vm.p2m.setState((DATA + 2) as Gfn, P2M.TRAPPED);
    vm.p2m.setState((DATA + 3) as Gfn, P2M.PAGE_TABLE);
    vm.p2m.setState((DATA + 4) as Gfn, P2M.SHARED);
    for (const [g, why] of [[1, /write-protected/], [2, /trapped/], [3, /page table/], [4, /shared/], [20, /not present/]] as const) {
      expect(() => swap.swapOutGfn(vm, (DATA + g) as Gfn)).toThrow(why);
    }
    swap.swapOut(vm, 10_000);
    for (const g of [1, 2, 3, 4]) expect(vm.p2m.raw((DATA + g) as Gfn) & P2M.PRESENT).toBe(P2M.PRESENT);
    for (const g of [0, 5, 6, 7]) expect(vm.p2m.raw((DATA + g) as Gfn) & P2M.SWAPPED).toBe(P2M.SWAPPED);
    expect(isSwappable(P2M.PRESENT | 5)).toBe(true);
    expect(isSwappable(P2M.SWAPPED | 5)).toBe(false);
  });

  it('an EPT split that finds no table frame undoes the swap-out (2 MiB EPT leaf, empty hypervisor pool)', async () => {
    const { hv, vm, swap } = track(await swapRig('nested'));
    expect(vm.prefault(BigInt(DATA) << 12n, 2n * 2n ** 20n, PAGE_2M)).toBe(1);
    fillPages(hv, vm, [DATA + 3]);
    const held: Hfn[] = [];
    for (let h; (h = hv.frames.tryAlloc(HV_OWNER)) !== null;) held.push(h);
    const g = (DATA + 3) as Gfn, word = vm.p2m.raw(g), used = hv.frames.usedBy(vm.id);
    expect(() => swap.swapOutGfn(vm, g)).toThrow(OutOfFramesError);
    expect(vm.p2m.raw(g)).toBe(word);
    expect(vm.ept!.lookup(g)).toMatchObject({ hfn: frameField(word), size: PAGE_2M });
    expect([hv.frames.usedBy(vm.id), swap.file.inUse, swap.stats(vm).swapOuts]).toEqual([used, 0, 0]);
    for (const h of held) hv.frames.free(h, HV_OWNER);
    swap.swapOutGfn(vm, g); // now the split gets its table
    expect(readPages(hv, vm, [DATA + 3])).toEqual(expected(1, [DATA + 3]));
  });

  it('random victims are deterministic for a seed and differ between seeds', async () => {
    const victims = async (seed: number) => {
      const { hv, vm, swap } = track(await swapRig('nested', { swap: { seed } }));
      fillPages(hv, vm, range(DATA, 128), 1, 1);
      swap.swapOut(vm, 16);
      return swappedGfns(vm);
    };
    const a = await victims(7);
    expect(await victims(7)).toEqual(a);
    expect(await victims(8)).not.toEqual(a);
    expect(a.some((g) => g >= DATA + 64)).toBe(true); // spread over the VM, not the lowest frames
  });

  it('a full swap file: swapOut frees what fits, swapOutGfn throws SwapFullError and changes nothing', async () => {
    const { hv, vm, swap } = track(await swapRig('nested', { swap: { capacity: 5 } }));
    fillPages(hv, vm, range(DATA, 16));
    expect(swap.swapOut(vm, 10)).toBe(5);
    const g = range(DATA, 16).find((x) => isSwappable(vm.p2m.raw(x as Gfn)))! as Gfn;
    const used = hv.frames.usedBy(vm.id), word = vm.p2m.raw(g);
    expect(() => swap.swapOutGfn(vm, g)).toThrow(SwapFullError);
    expect(hv.frames.usedBy(vm.id)).toBe(used);
    expect(vm.p2m.raw(g)).toBe(word);
    expect(swap.file.inUse).toBe(5);
    expect(swap.swapOut(vm, 3)).toBe(0);
  });

  it('destroying a VM frees its slots; other VMs keep theirs; native VMs are refused', async () => {
    const { hv, vm, swap } = track(await swapRig('nested'));
    const other = hv.createVm({ memoryBytes: 1 << 20, mode: 'shadow' });
    other.memory.write64(0n, 5n);
    fillPages(hv, vm, range(DATA, 8));
    swap.swapOut(vm, 6);
    swap.swapOutGfn(other, 0 as Gfn);
    expect(swap.file.inUse).toBe(7);
    hv.destroyVm(vm);
    expect(swap.file.inUse).toBe(1);
    expect(swap.stats()).toMatchObject({ swapOuts: 7, slotsInUse: 1 });
    expect(swap.stats(vm)).toMatchObject({ swapOuts: 6, slotsInUse: 0 });
    expect(hv.frames.usedBy(vm.id)).toBe(0);
    expect(other.memory.read64(0n)).toBe(5n);
    hv.destroyVm(other);
    const solo = await swapRig('nested');
    swaps.push(solo.swap);
    solo.hv.destroyVm(solo.vm);
    const native = solo.hv.createVm({ memoryBytes: 1 << 20, mode: 'native' });
    expect(() => solo.swap.swapOut(native, 1)).toThrow(/native/);
  });

  it('swapped frames can be reused by another VM without leaking bytes; the close removes the temp dir', async () => {
    const { hv, vm, swap } = track(await swapRig('nested'));
    fillPages(hv, vm, [DATA]);
    const hfn = vm.p2m.lookup(DATA as Gfn)!;
    swap.swapOutGfn(vm, DATA as Gfn);
    const other = hv.createVm({ memoryBytes: 1 << 20, mode: 'nested' });
    other.memory.write8(0n, 1); // LIFO pool: gets the frame just freed, zeroed
    expect(other.p2m.lookup(0 as Gfn)).toBe(hfn);
    expect(hv.machine.memory.read64(hpaOf(hfn) + 8n)).toBe(0n);
    expect(vm.memory.read64((BigInt(DATA) << 12n) + 8n)).toBe(pattern(1, DATA, 1));
    const dir = swap.file.directory!;
    expect(fs.existsSync(dir)).toBe(true);
    swap.close();
    expect(fs.existsSync(dir)).toBe(false);
  });
});
