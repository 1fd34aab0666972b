// An I/O ring beside a memory workload: the guest keeps `ringPages` pinned buffer pages (a
// driver's receive/transmit ring, a database's I/O buffers) and moves them to and from its
// disk by DMA, round robin, `ioPerBatch` transfers per batch, whole rounds alternating direction; the CPU
// reads each buffer after a receive. The inner workload runs in the same batches. The ring's
// pages take I/O over and over (the paper's "hot" I/O pages, §7); the kernel's paging, if the
// inner workload pages, spreads its I/O over many frames.
//
// The ring uses the last `ringPages` sectors of the disk, which the kernel's swap slots
// (allocated from 0 upwards) do not reach in these experiments.

import type { AccessBatch } from '../src/core/batch.js';
import { REG, DISK_CMD, SWAP_PORT } from '../src/devices/swapdisk-protocol.js';
import { DIRECT_MAP } from './kernel/kcpu.js';
import type { Kernel, Workload } from './kernel/kernel.js';

export interface IoRingOptions {
  ringPages: number;
  ioPerBatch: number;
  /** The disk's sector count (the ring sits at its end). */
  sectors: number;
  port?: number;
}

export class IoRing implements Workload {
  readonly name: string;
  /** The ring's guest frames. */
  readonly ring: number[] = [];
  transfers = 0;
  private next = 0;

  constructor(readonly inner: Workload, readonly o: IoRingOptions) {
    if (!Number.isInteger(o.ringPages) || o.ringPages < 1 || o.ringPages > o.sectors) throw new RangeError(`ringPages must be in 1..${o.sectors}, got ${o.ringPages}`);
    if (!Number.isInteger(o.ioPerBatch) || o.ioPerBatch < 0) throw new RangeError(`ioPerBatch must be an integer ≥ 0, got ${o.ioPerBatch}`);
    this.name = `${inner.name}+io-ring`;
  }

  init(k: Kernel): void {
    for (let i = 0; i < this.o.ringPages; i++) {
      const g = k.frames.allocPinned();
      if (g === null) throw new Error(`io-ring: no frame for ring page ${i} of ${this.o.ringPages}`);
      this.ring.push(g);
    }
    this.inner.init(k);
  }

  fill(k: Kernel, b: AccessBatch): boolean {
    const more = this.inner.fill(k, b);
    const port = this.o.port ?? SWAP_PORT;
    for (let j = 0; j < this.o.ioPerBatch; j++) {
      const i = this.next;
      this.next = (this.next + 1) % this.ring.length;
      const gpa = BigInt(this.ring[i]) << 12n;
      // Whole rounds alternate: every buffer receives, then every buffer is sent.
      const receive = Math.floor(this.transfers++ / this.ring.length) % 2 === 0;
      if (!receive) b.store(DIRECT_MAP + gpa + 8n, BigInt(this.transfers)); // the CPU fills what it sends
      b.out(port + REG.SECTOR, BigInt(this.o.sectors - 1 - i), 4)
        .out(port + REG.DMA_LO, gpa & 0xffff_ffffn, 4).out(port + REG.DMA_HI, gpa >> 32n, 4)
        .out(port + REG.CMD, BigInt(receive ? DISK_CMD.DMA_READ : DISK_CMD.DMA_WRITE), 1)
        .in(port + REG.STATUS, 1);
      if (receive) b.load(DIRECT_MAP + gpa); // the CPU looks at what arrived
    }
    return more;
  }
}
