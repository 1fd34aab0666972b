// Memory hot-add: a running VM's guest-physical memory grows; the p2m keeps every old entry
// and the new gfns start unbacked; the guest reaches them once its tables map them (first
// touch backs exactly the pages touched); page sharing scans them; the memory manager's
// max follows; bad sizes are refused with the VM unchanged; a grown VM migrates whole.
import { describe, it, expect } from 'vitest';
import { Hypervisor, PageSharing, MemoryManager, HostSwap, type Vm } from '../../../src/hypervisor/index.js';
import { Scheduler } from '../../../src/hypervisor/policy/scheduler.js';
import { PAGE_2M } from '../../../src/core/bits.js';
import { type Gfn } from '../../../src/core/addr.js';
import { bootWriterGuest, DIRECT } from '../../../src/experiment/migration-guest.js';
import { migrate } from '../../../src/hypervisor/migration/migrate.js';
import { image, diffPages } from '../migration/setup.js';

const MiB = 2 ** 20;

async function grownVm(mode: 'nested' | 'shadow') {
  const hv = await Hypervisor.create({ hostMemoryBytes: 64 * MiB });
  const vm = hv.createVm({ memoryBytes: 8 * MiB, mode });
  const pt = bootWriterGuest(vm);
  return { hv, vm, pt };
}

const store = (hv: Hypervisor, vm: Vm, gfns: number[], v: (g: number) => bigint) => {
  const b = hv.machine.createBatch(gfns.length * 2);
  for (const g of gfns) b.store(DIRECT + (BigInt(g) << 12n) + 8n, v(g));
  for (const g of gfns) b.load(DIRECT + (BigInt(g) << 12n) + 8n);
  expect(vm.vcpus[0].run(b).reason).toBe('end');
  return gfns.map((_, i) => b.value(gfns.length + i));
};

describe.each(['nested', 'shadow'] as const)('memory hot-add (%s)', (mode) => {
  it('grows the p2m: old entries kept, new gfns unbacked, the guest backs exactly the pages it touches', async () => {
    const { hv, vm, pt } = await grownVm(mode);
    store(hv, vm, [0x300, 0x301], (g) => BigInt(g));
    const oldWords = Array.from({ length: 2048 }, (_, g) => vm.p2m.raw(g as Gfn));
    const first = vm.hotAdd(4 * MiB);
    expect(first).toBe(2048);
    expect(vm.frameCount).toBe(3072);
    expect(vm.memoryBytes).toBe(12n * BigInt(MiB));
    expect(vm.p2m.frames).toBe(3072);
    expect(Array.from({ length: 2048 }, (_, g) => vm.p2m.raw(g as Gfn))).toEqual(oldWords);
    for (let g = 2048; g < 3072; g++) expect(vm.p2m.raw(g as Gfn)).toBe(0);
    // the guest maps the new memory in its direct map (same page directory: no new table)
    pt.mapRange(DIRECT + 8n * BigInt(MiB), 8n * BigInt(MiB), 4 * MiB, PAGE_2M);
    const held = hv.frames.usedBy(vm.id);
    const gfns = Array.from({ length: 100 }, (_, i) => 2048 + i * 10);
    expect(store(hv, vm, gfns, (g) => BigInt(g) * 3n)).toEqual(gfns.map((g) => BigInt(g) * 3n));
    expect(hv.frames.usedBy(vm.id)).toBe(held + 100);
    for (const g of gfns) expect(vm.memory.read64(BigInt(g) << 12n | 8n)).toBe(BigInt(g) * 3n);
    if (mode === 'nested') for (const g of gfns) expect(vm.ept!.lookup(g as Gfn)).not.toBeNull();
    // the old data is where it was
    expect(vm.memory.read64(0x300n << 12n | 8n)).toBe(0x300n);
  });

  it('refuses bad sizes and leaves the VM as it was', async () => {
    const { vm } = await grownVm(mode);
    expect(() => vm.hotAdd(4095)).toThrow(RangeError);
    expect(() => vm.hotAdd(0)).toThrow(RangeError);
    expect(() => vm.hotAdd(64n * 2n ** 30n)).toThrow(/at most 64 GiB/);
    expect(vm.frameCount).toBe(2048);
    expect(vm.p2m.frames).toBe(2048);
  });

  it('a grown VM migrates whole, new memory included', async () => {
    const { hv, vm, pt } = await grownVm(mode);
    vm.hotAdd(2 * MiB);
    pt.mapRange(DIRECT + 8n * BigInt(MiB), 8n * BigInt(MiB), 2 * MiB, PAGE_2M);
    store(hv, vm, [2048, 2500, 2559], (g) => BigInt(g) << 20n);
    const h2 = await Hypervisor.create({ hostMemoryBytes: 64 * MiB });
    let before: Uint8Array = new Uint8Array();
    const r = migrate({ vm, from: hv, to: h2, tracking: mode === 'nested' ? 'ept-dirty' : 'write-protect', bandwidth: 1e8, hz: 2e9,
      runGuest: () => {}, onSwitchover: (s) => { before = image(hv, s); } });
    expect(r.vm.frameCount).toBe(2560);
    expect(before.length).toBe(2560 * 4096);
    expect(diffPages(image(h2, r.vm), before)).toEqual([]);
    expect(r.vm.memory.read64(2559n << 12n | 8n)).toBe(2559n << 20n);
  });
});

describe('hot-add and the rest of the hypervisor', () => {
  it('a native VM cannot grow', async () => {
    const hv = await Hypervisor.create({ hostMemoryBytes: 64 * MiB });
    const vm = hv.createVm({ memoryBytes: 8 * MiB, mode: 'native' });
    expect(() => vm.hotAdd(4096)).toThrow(/native/);
    expect(vm.frameCount).toBe(2048);
  });

  it('page sharing scans the new gfns', async () => {
    const { hv, vm, pt } = await grownVm('nested');
    const sh = new PageSharing(hv, { scanRatePerVm: 6000, scanRateTotal: 6000, shareZeroPages: false });
    sh.addVm(vm);
    vm.hotAdd(2 * MiB);
    pt.mapRange(DIRECT + 8n * BigInt(MiB), 8n * BigInt(MiB), 2 * MiB, PAGE_2M);
    const page = new Uint8Array(4096).fill(0x5a);
    for (const g of [2100, 2200, 2300]) vm.memory.write(BigInt(g) << 12n, page); // only in the new memory
    sh.scan(1);
    expect(sh.stats.pagesSharing).toBe(2);
    expect(sh.vmStats(vm).sharedGfns).toBe(3);
  });

  it('the memory manager raises max by the frames added and recomputes the targets', async () => {
    const hv = await Hypervisor.create({ hostMemoryBytes: 64 * MiB });
    const sched = new Scheduler({ hz: 1e6 });
    const swap = new HostSwap(hv, { capacity: 8192 });
    try {
      const mgr = new MemoryManager({ hv, sched, swap });
      const vm = hv.createVm({ memoryBytes: 8 * MiB, mode: 'nested' });
      const m = { name: 'a', vm, blocked: false };
      mgr.add(m, { min: 512, max: 2048, shares: 1000 });
      vm.hotAdd(4 * MiB);
      expect(mgr.list()[0].alloc).toEqual({ min: 512, max: 3072, shares: 1000 });
      expect(mgr.list()[0].target).toBe(3072); // one VM on a host with room: its max
      // a second add beyond what the swap can back is refused: max stays
      vm.hotAdd(32 * MiB);
      expect(mgr.list()[0].alloc.max).toBe(3072);
      expect(mgr.stats.memoryAddRefused).toBe(1);
    } finally { swap.close(); }
  });
});
