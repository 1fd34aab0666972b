// One disk model for both swap paths: the guest swap disk's DMA transfer and the host swap
// file's swap-in cost the same cycles for a 4 KiB page, from latency + bytes / bandwidth.
import { describe, it, expect } from 'vitest';
import { DEFAULT_DISK, transferCycles, pageTransferCycles, checkDisk, describeDisk } from '../../src/core/disk-model.js';
import { SwapDisk } from '../../src/devices/swapdisk.js';
import { DEFAULT_SWAP_IN_CYCLES } from '../../src/hypervisor/index.js';

describe('disk model', () => {
  it('a transfer costs latency + bytes / bandwidth (40 µs + 4 KiB at 1 GB/s = 88 192 cycles at 2 GHz)', () => {
    expect(transferCycles({ latencyCycles: 1000, bytesPerCycle: 2 }, 4096)).toBe(1000 + 2048);
    expect(pageTransferCycles(DEFAULT_DISK)).toBe(80_000 + 8192);
    expect(describeDisk()).toContain('44.1 µs');
  });

  it('the guest swap disk and the host swap file default to the same page cost', () => {
    expect(new SwapDisk().transferCycles).toBe(pageTransferCycles());
    expect(DEFAULT_SWAP_IN_CYCLES).toBe(pageTransferCycles());
    expect(new SwapDisk(0x100, { disk: { latencyCycles: 10, bytesPerCycle: 4096 } }).transferCycles).toBe(11);
  });

  it('refuses a disk without latency or bandwidth', () => {
    expect(() => checkDisk({ latencyCycles: -1, bytesPerCycle: 1 })).toThrow(/latencyCycles/);
    expect(() => checkDisk({ latencyCycles: 0, bytesPerCycle: 0 })).toThrow(/bytesPerCycle/);
    expect(() => new SwapDisk(0x100, { disk: { latencyCycles: 0, bytesPerCycle: 0 } })).toThrow(/bytesPerCycle/);
  });
});
