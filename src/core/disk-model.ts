// One disk model for every swap path: the guest's own swap disk (SwapDisk's DMA transfers)
// and the hypervisor's swap file (HostSwap's swap-ins) cost the same per page, so a
// comparison of ballooning with host swapping is not decided by two different disks.
//
// A transfer of `bytes` costs latency + bytes / bandwidth, in the cost model's cycles
// (a 2 GHz core's). The default is a SATA-class SSD: 40 µs to the first byte, 1 GB/s
// after it, so one 4 KiB page takes 40 µs + 4.1 µs = 88 192 cycles (~44 µs). A 2002
// disk (~8 ms a random read) would be 180× slower; the experiments state which they use.

export interface DiskModel {
  /** Cycles from the command to the first byte (seek + controller). */
  latencyCycles: number;
  /** Bytes moved per cycle once the transfer runs (1 GB/s at 2 GHz = 0.5). */
  bytesPerCycle: number;
}

/** The cost model's clock: cycles of a 2 GHz core per second. */
export const MODEL_HZ = 2e9;

export const DEFAULT_DISK: Readonly<DiskModel> = Object.freeze({ latencyCycles: 80_000, bytesPerCycle: 0.5 });

/** Checks a disk model (a clear error for a bad one). */
export function checkDisk(d: DiskModel): DiskModel {
  if (!(Number.isFinite(d.latencyCycles) && d.latencyCycles >= 0)) throw new RangeError(`disk latencyCycles must be >= 0, got ${d.latencyCycles}`);
  if (!(Number.isFinite(d.bytesPerCycle) && d.bytesPerCycle > 0)) throw new RangeError(`disk bytesPerCycle must be > 0, got ${d.bytesPerCycle}`);
  return d;
}

/** Cycles one transfer of `bytes` takes on disk `d`. */
export function transferCycles(d: DiskModel, bytes: number): number {
  return Math.round(d.latencyCycles + bytes / d.bytesPerCycle);
}

/** Cycles of one 4 KiB page transfer. */
export const pageTransferCycles = (d: DiskModel = DEFAULT_DISK): number => transferCycles(d, 4096);

/** A human description of a disk model, for reports. */
export function describeDisk(d: DiskModel = DEFAULT_DISK): string {
  const us = (c: number) => (c / MODEL_HZ * 1e6).toFixed(1);
  return `latency ${us(d.latencyCycles)} µs, ${(d.bytesPerCycle * MODEL_HZ / 1e9).toFixed(2)} GB/s: ` +
    `${pageTransferCycles(d)} cycles (${us(pageTransferCycles(d))} µs at 2 GHz) per 4 KiB page`;
}
