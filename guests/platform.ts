// What a TypeScript guest kernel sees of its machine, and all it sees: a vCPU to run
// batches on, the port bus its port I/O goes to, a factory for batches, and its memory as
// the bootloader writes it (firmware loading an image). Guests never import the
// hypervisor; the board (src/board) builds a platform from a VM, its bus and its devices.
//
//   guest kernel ──run(batch)──▶ platform.vcpu ──exit──▶ runOps (guests/kernel/run.ts)
//        PF / HLT: the kernel │ IO: platform.ports │ anything else: platform.hostExit

import type { AccessBatch } from '../src/core/batch.js';
import type { Registers, GeneralRegisters } from '../src/core/cpu.js';
import type { VcpuExit } from '../src/core/exit.js';

export type { VcpuExit } from '../src/core/exit.js';
/** Every exit but the end of the batch. */
export type GuestExit = Exclude<VcpuExit, { reason: 'end' }>;
export type IoExit = Extract<VcpuExit, { reason: 'IO' }>;

/** The vCPU as a kernel drives it: run ops until an exit; its cycle clock; its registers. */
export interface GuestVcpu {
  run(b: AccessBatch, at?: number): VcpuExit;
  cycles(): number;
  setRegisters(r: Partial<Registers>): void;
  /**
   * The general registers. Batch ops do not use them; a port hypercall does: the guest
   * loads them (as its MOVs would), an IN op on the hypercall port exits, the device reads
   * and writes this register file (as `inl (%dx)` on the VMware backdoor does), and the
   * guest reads the results here.
   */
  gprs(): GeneralRegisters;
  setGprs(r: Partial<GeneralRegisters>): void;
}

/**
 * The port bus: an IO exit's access is done by the device on that port (an IN's value goes
 * into the op). A device that takes the register file (the balloon backdoor) also reads
 * and writes the issuing vCPU's general registers.
 */
export interface GuestPorts {
  dispatch(x: IoExit, b: AccessBatch): void;
}

/** Guest-physical memory as the bootloader (firmware) writes it, before the kernel runs. */
export interface BootMemory {
  read(gpa: bigint, len: number): Uint8Array;
  write(gpa: bigint, data: Uint8Array): void;
  write64(gpa: bigint, v: bigint): void;
  read64(gpa: bigint): bigint;
}

export interface GuestPlatform {
  readonly vcpu: GuestVcpu;
  readonly ports: GuestPorts;
  readonly memory: BootMemory;
  readonly memoryBytes: bigint;
  /** Guest RAM in 4 KiB frames. */
  readonly frameCount: number;
  createBatch(capacity: number): AccessBatch;
  /** The swap disk's first port, if the board has one (see src/devices/swapdisk-protocol.ts). */
  readonly swapPort?: number;
  /** Whether the swap disk moves sectors by DMA (else PIO). */
  readonly swapDma?: boolean;
  /** Exits only the host resolves (WRITE_PROTECT, OUT_OF_FRAMES, ...): returns the op to resume at. */
  hostExit?(x: GuestExit, b: AccessBatch | null): number;
  /**
   * Memory hot-add notification, the platform's ACPI memory-device event (what Linux's
   * acpi_memhotplug driver receives): the kernel registers a handler at boot; when the
   * machine's memory grows, the board calls it with the first new gfn and the number of new
   * frames, and memoryBytes / frameCount read the new size from then on. New frames start
   * unbacked (zero on first touch). Absent: the board cannot hot-add memory.
   */
  onMemoryAdded?(handler: (firstGfn: number, frames: number) => void): void;
}
