// The memory toucher of the paper's Figure 6: it touches a working set of `setPages`
// pages out of a larger region, and every `shiftSeconds` simulated seconds the set moves
// to the next window (so the memory it actively uses changes over time, while pages it
// touched earlier sit idle). Accesses within the set are uniform random.
import type { AccessBatch } from '../src/core/batch.js';
import { Rng } from '../src/util/rng.js';
import type { Kernel, Workload } from './kernel/kernel.js';

export interface ToucherOptions {
  regionPages: number; setPages: number; shiftSeconds: number;
  opsPerBatch?: number; writeRatio?: number; seed?: number;
  /** Shift every this many batches instead of by simulated time (mode-independent runs). */
  shiftBatches?: number;
  /** Stop after this many simulated seconds / batches (default: never). */
  seconds?: number;
  maxBatches?: number;
}
export const TOUCHER_BASE = 0x4000_0000n;

export class Toucher implements Workload {
  readonly name = 'toucher';
  private rng: Rng;
  batches = 0;
  /** Distinct pages touched in each window (index = window number). */
  readonly touched: Set<number>[] = [];
  constructor(readonly o: ToucherOptions) {
    if (o.setPages > o.regionPages) throw new RangeError('setPages must fit in regionPages');
    this.rng = new Rng(o.seed ?? 1);
  }
  init(k: Kernel): void { k.mmap(k.current, TOUCHER_BASE, BigInt(this.o.regionPages * 4096)); }
  /** The window in force at the kernel's current simulated time. */
  window(k: Kernel): number {
    return this.o.shiftBatches ? Math.floor(this.batches / this.o.shiftBatches) : Math.floor(k.now() / this.o.shiftSeconds);
  }
  fill(k: Kernel, b: AccessBatch): boolean {
    if (this.o.seconds !== undefined && k.now() >= this.o.seconds) return false;
    if (this.o.maxBatches !== undefined && this.batches >= this.o.maxBatches) return false;
    const w = this.window(k);
    this.batches++;
    const set = (this.touched[w] ??= new Set());
    const first = (w * this.o.setPages) % this.o.regionPages;
    for (let i = 0; i < (this.o.opsPerBatch ?? 256); i++) {
      const page = (first + this.rng.below(this.o.setPages)) % this.o.regionPages;
      set.add(page);
      const va = Number(TOUCHER_BASE) + page * 4096 + this.rng.below(512) * 8;
      if (this.rng.next() < (this.o.writeRatio ?? 0.5)) b.store(va, BigInt(page)); else b.load(va);
    }
    return true;
  }
}
