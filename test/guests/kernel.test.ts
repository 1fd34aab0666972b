// The guest kernel library: boot, page tables in guest memory, demand-zero, COW, clock +
// swap — each under native, shadow and nested paging with identical guest-visible results.
import { describe, it, expect } from 'vitest';
import { PTE } from '../../src/core/bits.js';
import { DIRECT_MAP, KERNEL_TEXT } from '../../guests/kernel/kcpu.js';
import { isSwapEntry } from '../../guests/kernel/pagetable.js';
import { FRAME } from '../../guests/kernel/frames.js';
import { bootKernel, dataHash, MODES } from './setup.js';

const R = 0x40_0000n;

describe.each(MODES)('guest kernel (%s)', (mode) => {
  it('boots: direct map with 2 MiB pages, 4 KiB text, PTE writes went through the vCPU', async () => {
    const { k, vm } = await bootKernel(mode, 8);
    const root = k.current.root;
    expect(k.pt.translate(root, DIRECT_MAP + 0x345_678n)).toBe(0x345_678n);
    expect(k.pt.translate(root, KERNEL_TEXT + 0x1234n)).toBe(16n * 4096n + 0x1234n);
    const pde = k.pt.entry(root, DIRECT_MAP + 0x20_0000n, false, 2)!;
    expect(k.kc.load(pde) & PTE.PS).toBe(PTE.PS);
    expect(k.pt.entry(root, KERNEL_TEXT, false, 1)).not.toBeNull();
    // The kernel's stores reached guest memory: the host view shows the same PDE.
    expect(vm.memory.read64(pde)).toBe(k.kc.load(pde));
    expect(vm.vcpus[0].counters().stores).toBeGreaterThan(0);
    // Text is read-only: a kernel store to it is a #PF (WP is set).
    k.kc.b.clear().store(KERNEL_TEXT, 1n);
    expect(() => k.kc.exec()).toThrow(/oops/);
  });

  it('2 MiB user mappings: one PDE with PS, data through it, no faults', async () => {
    const { k } = await bootKernel(mode, 8);
    const H = 0x8000_0000n;
    k.mapHuge(k.current, H, 0x20_0000n);
    const pde = k.pt.entry(k.current.root, H, false, 2)!;
    expect(k.kc.load(pde) & (PTE.PS | PTE.U | PTE.P)).toBe(PTE.PS | PTE.U | PTE.P);
    k.runBatch(k.batch.clear().store(Number(H) + 0x1f_f000, 9n).load(Number(H) + 0x1f_f000).load(Number(H) + 0x1000));
    expect([k.batch.value(1), k.batch.value(2)]).toEqual([9n, 0n]);
    expect(k.counters.faults.demandZero).toBe(0);
    const gpa = k.pt.translate(k.current.root, H + 0x1f_f000n)!;
    expect(gpa & 0x1f_ffffn).toBe(0x1f_f000n);
    expect(k.platform.memory.read64(gpa)).toBe(9n);
  });

  it('INVLPG discipline: a COW + swap + fork run never uses a stale translation (coherence checker)', async () => {
    const { k, vm } = await bootKernel(mode, 4, {}, { coherenceChecker: true });
    k.mmap(k.current, R, 1100n * 4096n);
    for (let p = 0; p < 1100; p += 8) {
      const b = k.batch.clear();
      for (let q = p; q < Math.min(p + 8, 1100); q++) b.store(Number(R) + q * 4096, BigInt(q));
      for (let h = 0; h < 4; h++) b.load(Number(R) + h * 4096); // a hot set that lives in the TLB
      k.runBatch(b);
      if (p === 400) { k.fork(k.current); }
    }
    for (let p = 0; p < 1100; p += 3) k.runBatch(k.batch.clear().load(Number(R) + p * 4096).store(Number(R) + p * 4096 + 8, 1n));
    expect(k.counters.swapOuts).toBeGreaterThan(0);
    expect(k.counters.faults.cow).toBeGreaterThan(0);
    expect(vm.vcpus[0].cpu.staleUses()).toEqual([]);
  });

  it('demand-zero: one fault per page, zero-filled, and accesses outside any region are killed', async () => {
    const { k } = await bootKernel(mode, 8);
    k.mmap(k.current, R, 16n * 4096n);
    const b = k.batch.clear();
    for (let p = 0; p < 16; p++) b.load(Number(R) + p * 4096 + 8).store(Number(R) + p * 4096, BigInt(p + 1));
    b.load(0x9000_0000); // no VMA
    k.runBatch(b);
    expect(k.counters.faults).toMatchObject({ demandZero: 16, invalid: 1, cow: 0 });
    for (let p = 0; p < 16; p++) expect(b.value(2 * p)).toBe(0n);
    expect(k.readUser(R + 4096n * 5n, 2)).toEqual([6n, 0n]);
  });

  it('fork is copy-on-write: both sides read-only, a write copies, the last sharer reuses', async () => {
    const { k } = await bootKernel(mode, 8);
    const parent = k.current;
    k.mmap(parent, R, 4n * 4096n);
    const b = k.batch.clear();
    for (let p = 0; p < 4; p++) b.store(Number(R) + p * 4096, 0x100n + BigInt(p));
    k.runBatch(b);
    const child = k.fork(parent);
    expect(k.kc.load(k.pt.entry(parent.root, R, false)!) & PTE.W).toBe(0n);
    k.switchTo(child);
    expect(k.readUser(R, 1)).toEqual([0x100n]);
    k.runBatch(k.batch.clear().store(Number(R), 0xc0n));         // child writes page 0: copy
    expect(k.counters.cowCopies).toBe(1);
    expect(k.readUser(R, 1)).toEqual([0xc0n]);
    k.switchTo(parent);
    expect(k.readUser(R, 1)).toEqual([0x100n]);                 // the parent's data is untouched
    k.runBatch(k.batch.clear().store(Number(R), 0xa0n));         // parent is now page 0's only user
    expect(k.counters.faults).toMatchObject({ cow: 2, cowReuse: 1 });
    expect(k.counters.cowCopies).toBe(1);
    k.runBatch(k.batch.clear().store(Number(R) + 4096, 0xa1n));  // page 1 still shared: copy
    expect(k.counters.cowCopies).toBe(2);
    k.switchTo(child);
    expect(k.readUser(R, 1)).toEqual([0xc0n]);
    expect(k.readUser(R + 4096n, 1)).toEqual([0x101n]);
  });

  it('clock + swap: under pressure pages go to the swap disk and come back intact', async () => {
    const { k, disk } = await bootKernel(mode, 4);
    const pages = 1400; // more than the ~1000 frames a 4 MiB guest has left
    k.mmap(k.current, R, BigInt(pages * 4096));
    const fill = (p: number, i: number) => BigInt(p) << 32n | BigInt(i * 0x9e37 & 0xffff);
    for (let p = 0; p < pages; p += 4) {
      const b = k.batch.clear();
      for (let q = p; q < p + 4; q++) for (let i = 0; i < 512; i += 64) b.store(Number(R) + q * 4096 + i * 8, fill(q, i));
      k.runBatch(b);
    }
    expect(k.counters.swapOuts).toBeGreaterThan(300);
    for (let p = 0; p < pages; p += 4) {
      const b = k.batch.clear();
      for (let q = p; q < p + 4; q++) for (let i = 0; i < 512; i += 64) b.load(Number(R) + q * 4096 + i * 8);
      k.runBatch(b);
      for (let q = 0; q < 4; q++) for (let i = 0; i < 8; i++) expect(b.value(q * 8 + i)).toBe(fill(p + q, i * 64));
    }
    expect(k.counters.swapIns).toBeGreaterThan(300);
    expect(k.counters.faults.swapIn).toBe(k.counters.swapIns);
    expect(k.swap.stats.accessedCleared).toBeGreaterThan(0);
    expect(disk.stats.errors).toBe(0);
    // Every page is either resident or has exactly one swap entry.
    let swapped = 0;
    for (let p = 0; p < pages; p += 50) {
      const v = k.kc.load(k.pt.entry(k.current.root, R + BigInt(p * 4096), false)!);
      expect((v & PTE.P) !== 0n || isSwapEntry(v)).toBe(true);
      if (isSwapEntry(v)) swapped++;
    }
    expect(swapped).toBeGreaterThan(0);
  });

  it('clock reads accessed bits the MMU set and clears them (with INVLPG, so the next access sets them again)', async () => {
    const { k } = await bootKernel(mode, 4);
    k.mmap(k.current, R, 8n * 4096n);
    k.runBatch(k.batch.clear().store(Number(R), 1n).store(Number(R) + 4096, 2n));
    const pte = k.pt.entry(k.current.root, R, false)!, pte2 = k.pt.entry(k.current.root, R + 4096n, false)!;
    expect(k.kc.load(pte) & (PTE.A | PTE.D)).toBe(PTE.A | PTE.D);
    expect(k.kc.load(pte2) & (PTE.A | PTE.D)).toBe(PTE.A | PTE.D);
    const frameOf = (v: bigint) => Number((v & 0xf_ffff_ffff_f000n) >> 12n);
    expect(frameOf(k.kc.load(pte))).toBeLessThan(frameOf(k.kc.load(pte2))); // the hand meets R's frame first
    // Fill memory with unmapped user frames so the clock must run: its first sweep clears
    // A on both mapped pages (once each), its second takes the first one it meets: R's.
    const used = k.frames.count('user');
    while (k.frames.freeCount > 17) k.allocUser();
    expect(k.swap.evictOne()).toBe(true);
    expect(k.swap.stats).toMatchObject({ accessedCleared: 2, swapOuts: 1 });
    expect(isSwapEntry(k.kc.load(pte))).toBe(true);
    const v = k.kc.load(pte2);
    expect(v & (PTE.P | PTE.A)).toBe(PTE.P);
    k.runBatch(k.batch.clear().load(Number(R) + 4096));
    expect(k.kc.load(pte2) & PTE.A).toBe(PTE.A);
    expect(k.batch.value(0)).toBe(2n);
    expect(used).toBe(2);
  });
});

describe('modes agree', () => {
  it('the same demand-zero / COW / swap run leaves identical data and counters in every mode', async () => {
    const results = [];
    for (const mode of MODES) {
      const { k } = await bootKernel(mode, 4);
      k.mmap(k.current, R, 1200n * 4096n);
      for (let p = 0; p < 1200; p += 8) {
        const b = k.batch.clear();
        for (let q = p; q < p + 8; q++) b.store(Number(R) + q * 4096 + (q % 512) * 8, BigInt(q * 3 + 1));
        k.runBatch(b);
      }
      const child = k.fork(k.current);
      k.switchTo(child);
      k.runBatch(k.batch.clear().store(Number(R) + 1199 * 4096, 5n).load(Number(R)));
      results.push({ counters: JSON.parse(JSON.stringify(k.counters)), hash: dataHash(k),
        user: k.frames.count('user'), free: k.frames.freeCount, tables: k.frames.state.filter((s) => s === FRAME.TABLE).length });
    }
    expect(results[1]).toEqual(results[0]);
    expect(results[2]).toEqual(results[0]);
    expect(results[0].counters.swapOuts).toBeGreaterThan(0);
  });
});

describe('time and the balloon allocator', () => {
  it('step(budget) runs about `budget` cycles (one batch of overshoot at most); HLT idles the rest', async () => {
    const { k } = await bootKernel('nested', 8);
    const { Toucher } = await import('../../guests/toucher.js');
    k.start(new Toucher({ regionPages: 64, setPages: 16, shiftSeconds: 1, seed: 2, opsPerBatch: 64 }));
    const r = k.step(200_000);
    expect(r.busy).toBeGreaterThanOrEqual(200_000);
    expect(r.busy).toBeLessThan(200_000 + 300_000);
    expect(k.clock).toBe(r.busy);
    expect(k.now()).toBeCloseTo(r.busy / 1e6);
    const { IdleKernel } = await import('../../guests/idle.js');
    k.start(new IdleKernel(2));
    const s = k.step(1_000_000);
    expect(s.busy + s.idle).toBe(1_000_000);
    expect(s.idle).toBeGreaterThan(0);
  });

  it('allocPinned / free for the balloon driver: pinned frames are never swapped', async () => {
    const { k } = await bootKernel('nested', 4);
    const before = k.frames.freeCount;
    const pinned: number[] = [];
    for (let i = 0; i < 100; i++) pinned.push(k.frames.allocPinned()!);
    expect(k.frames.freeCount).toBe(before - 100);
    expect(k.frames.count('pinned')).toBe(100);
    k.mmap(k.current, R, 1000n * 4096n);
    for (let p = 0; p < 1000; p += 10) {
      const b = k.batch.clear();
      for (let q = p; q < p + 10; q++) b.store(Number(R) + q * 4096, 1n);
      k.runBatch(b);
    }
    expect(k.counters.swapOuts).toBeGreaterThan(0);
    expect(k.frames.count('pinned')).toBe(100);
    for (const g of pinned) k.frames.free(g);
    expect(() => k.frames.free(pinned[0])).toThrow(/not a pinned frame/);
    while (k.frames.allocPinned() !== null); // drains to the page-table reserve, then refuses
    expect(k.frames.freeCount).toBe(8);
  });
});
