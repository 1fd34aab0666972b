// The swap disk's DMA engine: guest errors are STATUS errors; an empty host pool waits for
// the host to reclaim and retries, and only a host that cannot reclaim stops the run.
import { describe, it, expect } from 'vitest';
import { SwapDisk, REG, DISK_CMD, type DmaMemory } from '../../src/devices/swapdisk.js';
import { OutOfFramesError } from '../../src/hypervisor/monitor/frames.js';

const isHostShortage = (e: unknown): boolean => e instanceof OutOfFramesError;

function memory(failures: number): DmaMemory & { pages: Map<bigint, Uint8Array> } {
  const pages = new Map<bigint, Uint8Array>();
  let left = failures;
  return {
    pages,
    read: (gpa) => pages.get(gpa) ?? new Uint8Array(4096),
    write: (gpa, data) => {
      if (left-- > 0) throw new OutOfFramesError('vm', 1);
      if (gpa >= 0x100000n) throw new RangeError('outside the VM');
      pages.set(gpa, data.slice());
    },
  };
}

function dma(d: SwapDisk, cmd: number, sector: number, gpa: bigint): number {
  d.out(d.base + REG.SECTOR, 4, BigInt(sector));
  d.out(d.base + REG.DMA_LO, 4, gpa & 0xffff_ffffn);
  d.out(d.base + REG.DMA_HI, 4, gpa >> 32n);
  d.out(d.base + REG.CMD, 1, BigInt(cmd));
  return Number(d.in(d.base + REG.STATUS, 1));
}

describe('swap disk DMA', () => {
  it('round-trips a page and charges the latency of the read (the write is asynchronous)', () => {
    const mem = memory(0);
    let stalled = 0;
    const d = new SwapDisk(0x1f0, { dma: mem, stall: (c) => { stalled += c; }, latencyCycles: 500 });
    mem.pages.set(0x3000n, new Uint8Array(4096).fill(5));
    expect(dma(d, DISK_CMD.DMA_WRITE, 7, 0x3000n)).toBe(0);
    expect(stalled).toBe(0);
    expect(dma(d, DISK_CMD.DMA_READ, 7, 0x8000n)).toBe(0);
    expect(mem.pages.get(0x8000n)!.every((b) => b === 5)).toBe(true);
    expect(stalled).toBe(500);
  });

  it('a guest mistake (unaligned or outside address) is a STATUS error', () => {
    const d = new SwapDisk(0x1f0, { dma: memory(0) });
    expect(dma(d, DISK_CMD.DMA_READ, 1, 0x3008n)).toBe(1);
    expect(dma(d, DISK_CMD.DMA_READ, 1, 0x200000n)).toBe(1);
    expect(d.stats.errors).toBe(2);
  });

  it('an empty host pool is retried after the host reclaims', () => {
    const mem = memory(2);
    let asked = 0;
    const d = new SwapDisk(0x1f0, { dma: mem, reclaim: () => { asked++; return 16; }, isHostShortage });
    expect(dma(d, DISK_CMD.DMA_READ, 3, 0x5000n)).toBe(0);
    expect(asked).toBe(2);
    expect(mem.pages.has(0x5000n)).toBe(true);
  });

  it('a host that cannot reclaim stops the run with OutOfFramesError, changing nothing', () => {
    const mem = memory(1);
    const d = new SwapDisk(0x1f0, { dma: mem, reclaim: () => 0, isHostShortage });
    expect(() => dma(d, DISK_CMD.DMA_READ, 3, 0x5000n)).toThrow(OutOfFramesError);
    expect(mem.pages.size).toBe(0);
    expect(d.stats.dma).toBe(0);
  });
});
