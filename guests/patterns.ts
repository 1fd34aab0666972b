// Access-pattern kernels: sequential, random, zipf, strided and pointer-chasing streams
// (offsets from src/workload/patterns.ts) over a demand-paged region.
import type { AccessBatch } from '../src/core/batch.js';
import { offsets, type PatternSpec } from '../src/workload/patterns.js';
import { Rng } from '../src/util/rng.js';
import type { Kernel, Workload } from './kernel/kernel.js';

export const PATTERN_BASE = 0x6000_0000n;
export type PatternOptions = Omit<PatternSpec, 'base'> & { ops: number; opsPerBatch?: number };

export class PatternKernel implements Workload {
  readonly name: string;
  done = 0;
  private gen: Generator<number>;
  private rng: Rng;
  constructor(readonly o: PatternOptions) {
    this.name = `pattern:${o.pattern}`;
    this.gen = offsets({ ...o, base: Number(PATTERN_BASE) });
    this.rng = new Rng(o.seed ^ 0x5bd1e995);
  }
  init(k: Kernel): void { k.mmap(k.current, PATTERN_BASE, BigInt(Math.ceil(this.o.bytes / 4096) * 4096)); }
  fill(_k: Kernel, b: AccessBatch): boolean {
    const n = Math.min(this.o.opsPerBatch ?? 1024, this.o.ops - this.done);
    if (n <= 0) return false;
    for (let i = 0; i < n; i++) {
      const va = Number(PATTERN_BASE) + (this.gen.next().value! & ~7);
      if (this.rng.next() < (this.o.writeRatio ?? 0)) b.store(va, BigInt(this.done + i)); else b.load(va);
    }
    this.done += n;
    return true;
  }
}
