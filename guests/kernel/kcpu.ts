// The guest kernel's own instruction stream: kernel-mode loads and stores through the
// direct map, executed as batches on the vCPU (so, under shadow paging, the kernel's
// page-table writes trap exactly as a real guest's would). Port I/O goes to the VM's bus.

import type { AccessBatch } from '../../src/core/batch.js';
import type { GuestPlatform } from '../platform.js';
import { runOps } from './run.js';

export type { GuestExit } from '../platform.js';

/** Where the kernel maps all of guest-physical memory (Linux's __PAGE_OFFSET with 4-level paging). */
export const DIRECT_MAP = 0xffff_8880_0000_0000n;
/** The kernel image (Linux's __START_KERNEL_map). */
export const KERNEL_TEXT = 0xffff_ffff_8000_0000n;
export const WORDS = 512; // 8-byte words per 4 KiB frame

export class KernelCpu {
  constructor(readonly platform: GuestPlatform, readonly b: AccessBatch) {
    if (b.capacity < 2 * WORDS + 8) throw new RangeError('the kernel batch needs at least 1032 ops');
  }

  dm(gpa: bigint): bigint { return DIRECT_MAP + gpa; }

  /** Runs the kernel batch to its end. A #PF in kernel code means a kernel bug: oops. */
  exec(): void {
    runOps(this.platform, this.b, 0, {
      who: 'kernel',
      pageFault: (x) => { throw new Error(`kernel oops: #PF at 0x${x.cr2.toString(16)} (error ${x.errorCode}) in kernel code`); },
    });
  }

  /** Loads 8-byte words at guest-physical addresses (batched). */
  read64(gpas: bigint[]): bigint[] {
    const out: bigint[] = [];
    const n = this.b.capacity;
    for (let i = 0; i < gpas.length; i += n) {
      this.b.clear();
      const part = gpas.slice(i, i + n);
      for (const a of part) this.b.load(this.dm(a));
      this.exec();
      for (let j = 0; j < part.length; j++) out.push(this.b.value(j));
    }
    return out;
  }

  load(gpa: bigint): bigint { return this.read64([gpa])[0]; }

  /** Stores [gpa, value] pairs, then INVLPGs `flush` (virtual addresses) in the same batch. */
  write64(pairs: [bigint, bigint][], flush: bigint[] = []): void {
    this.b.clear();
    for (const [a, v] of pairs) {
      if (this.b.length + flush.length + 1 > this.b.capacity) { this.exec(); this.b.clear(); }
      this.b.store(this.dm(a), v);
    }
    for (const va of flush) this.b.invlpg(va);
    if (this.b.length) this.exec();
  }

  store(gpa: bigint, v: bigint, flush?: bigint): void { this.write64([[gpa, v]], flush === undefined ? [] : [flush]); }

  readFrame(gfn: number): BigUint64Array {
    const base = BigInt(gfn) << 12n;
    this.b.clear();
    for (let i = 0; i < WORDS; i++) this.b.load(this.dm(base + BigInt(i * 8)));
    this.exec();
    const out = new BigUint64Array(WORDS);
    for (let i = 0; i < WORDS; i++) out[i] = this.b.value(i);
    return out;
  }

  writeFrame(gfn: number, data: BigUint64Array | null): void {
    const base = BigInt(gfn) << 12n;
    this.b.clear();
    for (let i = 0; i < WORDS; i++) this.b.store(this.dm(base + BigInt(i * 8)), data ? data[i] : 0n);
    this.exec();
  }

  zeroFrame(gfn: number): void { this.writeFrame(gfn, null); }
  copyFrame(src: number, dst: number): void { this.writeFrame(dst, this.readFrame(src)); }

  /** MOV CR3 (without PCIDs it flushes every non-global translation). */
  movCr3(root: bigint): void { this.b.clear().movCr3(root); this.exec(); }
}
