// Identical kernels whose memory has shared content, for content-based page sharing:
// the same kernel image (code pages, by imageSeed), zero pages (demand-zero pages that are
// read but never written), and common data (pages every instance fills with the same
// bytes, e.g. a shared library's data), next to a few private pages that differ per VM.
import type { AccessBatch } from '../src/core/batch.js';
import type { Kernel, Workload } from './kernel/kernel.js';

export const ZERO_BASE = 0x7000_0000n, COMMON_BASE = 0x7100_0000n, PRIVATE_BASE = 0x7200_0000n;
export interface SharedOptions { zeroPages?: number; commonPages?: number; privatePages?: number; instance: number }

/** The word at (page, index) of the common data: identical in every instance. */
export const commonWord = (page: number, i: number): bigint => BigInt(((page * 2654435761) ^ (i * 40503)) >>> 0) | 1n;

export class SharedContent implements Workload {
  readonly name = 'shared';
  private phase = 0;
  constructor(readonly o: SharedOptions) {}
  private get n() { return { zero: this.o.zeroPages ?? 8, common: this.o.commonPages ?? 16, priv: this.o.privatePages ?? 4 }; }
  init(k: Kernel): void {
    const n = this.n;
    k.mmap(k.current, ZERO_BASE, BigInt(n.zero * 4096));
    k.mmap(k.current, COMMON_BASE, BigInt(n.common * 4096));
    k.mmap(k.current, PRIVATE_BASE, BigInt(n.priv * 4096));
  }
  /** Phase 0..: one page of setup per batch (zero reads, common fills, private fills), then halts. */
  fill(k: Kernel, b: AccessBatch): boolean {
    const n = this.n, p = this.phase++;
    if (p < n.zero) { b.load(Number(ZERO_BASE) + p * 4096); return true; }
    if (p < n.zero + n.common) {
      const q = p - n.zero;
      for (let i = 0; i < 512; i++) b.store(Number(COMMON_BASE) + q * 4096 + i * 8, commonWord(q, i));
      return true;
    }
    if (p < n.zero + n.common + n.priv) {
      const q = p - n.zero - n.common;
      for (let i = 0; i < 512; i++) b.store(Number(PRIVATE_BASE) + q * 4096 + i * 8, BigInt(this.o.instance) << 32n | BigInt(i));
      return true;
    }
    for (let i = 0; i < 4; i++) b.fetch(k.textVa(i * 4096), 8); // run a little code, then idle
    b.hlt();
    return true;
  }
}
