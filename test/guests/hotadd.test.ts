// Memory hot-add seen by the TypeScript guest kernel: the platform's memory-added
// notification makes the kernel map the new frames into its direct map, add their
// mem_map and free them to its allocator; a workload larger than the old memory then
// runs without swapping, its pages landing in the new frames.
import { describe, it, expect } from 'vitest';
import { DIRECT_MAP } from '../../guests/kernel/kcpu.js';
import { FRAME } from '../../guests/kernel/frames.js';
import { bootKernel } from './setup.js';

const MiB = 2 ** 20;
const R = 0x40_0000n;

describe.each(['nested', 'shadow'] as const)('guest kernel memory hot-add (%s)', (mode) => {
  it('the kernel onlines the new frames: direct map, allocator, exact free count', async () => {
    const { k, vm } = await bootKernel(mode, 4);
    const free = k.frames.freeCount;
    vm.hotAdd(8 * MiB);
    expect(k.platform.frameCount).toBe(3072);
    expect(k.frames.frameCount).toBe(3072);
    expect(k.frames.freeCount).toBe(free + 2048);          // no mem_map by default; tables from the old memory
    expect(k.counters.memoryAdded).toBe(2048);
    const root = k.current.root;
    for (const g of [1024n, 1536n, 3071n]) expect(k.pt.translate(root, DIRECT_MAP + (g << 12n) + 0x10n)).toBe((g << 12n) + 0x10n);
  });

  it('sizes the mem_map for the new frames', async () => {
    const { k, vm } = await bootKernel(mode, 4, { memMapBytesPerFrame: 64 });
    const free = k.frames.freeCount, mm = k.memMap.length;
    expect(mm).toBe(16);                                   // 1024 frames × 64 bytes
    vm.hotAdd(8 * MiB);
    expect(k.memMap.length).toBe(16 + 32);                 // 2048 × 64 bytes = 32 frames
    expect(k.frames.freeCount).toBe(free + 2048 - 32);
  });

  it('a workload larger than the old memory runs without swapping on the added frames', async () => {
    const { k, vm } = await bootKernel(mode, 4);
    vm.hotAdd(8 * MiB);
    k.mmap(k.current, R, 1500n * 4096n);
    for (let p = 0; p < 1500; p += 16) {
      const b = k.batch.clear();
      for (let q = p; q < Math.min(p + 16, 1500); q++) b.store(Number(R) + q * 4096, BigInt(q) + 1n);
      k.runBatch(b);
    }
    expect(k.counters.swapOuts).toBe(0);
    let inNew = 0;
    for (let g = 1024; g < 3072; g++) if (k.frames.state[g] === FRAME.USER) inNew++;
    expect(inNew).toBeGreaterThan(1500 - 1024);
    const b = k.batch.clear().load(Number(R)).load(Number(R) + 1499 * 4096);
    k.runBatch(b);
    expect([b.value(0), b.value(1)]).toEqual([1n, 1500n]);
  });
});
