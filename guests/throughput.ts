// A dbench-like throughput workload: each work unit is a small file-server operation —
// a name lookup (random loads in a dentry hash), a read of a file block (sequential
// loads from the page cache), a write into another block (stores), a little kernel text,
// and every `fsyncEvery` units a flush (an OUT to a port). The score is work units per
// simulated second, so it falls when memory virtualization or reclamation costs cycles.
import type { AccessBatch } from '../src/core/batch.js';
import { Rng } from '../src/util/rng.js';
import { offsets } from '../src/workload/patterns.js';
import type { Kernel, Workload } from './kernel/kernel.js';

export interface ThroughputOptions {
  cachePages?: number; hashPages?: number; unitsPerBatch?: number; fsyncEvery?: number; seed?: number;
  /** Stop after this many units (default: never). */
  units?: number;
  /**
   * Zipf exponent of file popularity (default: uniform). A skewed cache degrades
   * gradually as memory shrinks, as a file server's does; a uniform one falls off a cliff.
   */
  zipfS?: number;
  /**
   * Write every page of the file cache once, in order, before the first unit (dbench's
   * clients create their files first): the cache starts full and a file set larger than
   * memory is already partly on disk, so measuring needs no long warm-up. Not counted as units.
   */
  create?: boolean;
}
export const CACHE_BASE = 0x1000_0000n, HASH_BASE = 0x2000_0000n, FSYNC_PORT = 0x80;

export class Throughput implements Workload {
  readonly name = 'throughput';
  units = 0;
  private rng: Rng;
  private readonly cache: number; private readonly hash: number;
  private readonly popular: Generator<number> | null;
  /** Next page the create pass writes (-1: done or not asked for). */
  private creating: number;
  constructor(readonly o: ThroughputOptions = {}) {
    this.rng = new Rng(o.seed ?? 7);
    this.cache = o.cachePages ?? 256;
    this.hash = o.hashPages ?? 16;
    this.popular = o.zipfS === undefined ? null
      : offsets({ pattern: 'zipf', bytes: this.cache * 4096, base: 0, seed: (o.seed ?? 7) ^ 0x2f1e, zipfS: o.zipfS });
    this.creating = o.create ? 0 : -1;
  }

  /** A cache page: uniform, or by zipf popularity. */
  private page(): number {
    return this.popular ? Math.floor(this.popular.next().value! / 4096) : this.rng.below(this.cache);
  }
  init(k: Kernel): void {
    k.mmap(k.current, CACHE_BASE, BigInt(this.cache * 4096));
    k.mmap(k.current, HASH_BASE, BigInt(this.hash * 4096));
  }
  fill(k: Kernel, b: AccessBatch): boolean {
    if (this.creating >= 0) return this.create(b);
    const n = this.o.unitsPerBatch ?? 16;
    for (let u = 0; u < n; u++) {
      if (this.o.units !== undefined && this.units >= this.o.units) return u > 0;
      const r = this.rng;
      for (let i = 0; i < 4; i++) b.load(Number(HASH_BASE) + r.below(this.hash * 512) * 8);
      const rd = Number(CACHE_BASE) + this.page() * 4096 + r.below(8) * 512;
      for (let i = 0; i < 64; i++) b.load(rd + i * 8);
      const wr = Number(CACHE_BASE) + this.page() * 4096 + r.below(16) * 256;
      for (let i = 0; i < 32; i++) b.store(wr + i * 8, BigInt(this.units));
      b.fetch(k.textVa(r.below(4096) * 16), 8);
      if (++this.units % (this.o.fsyncEvery ?? 32) === 0) b.out(FSYNC_PORT, BigInt(this.units & 0xff));
    }
    return true;
  }
  /** The create pass: one store into each of the next 64 cache pages. */
  private create(b: AccessBatch): boolean {
    const end = Math.min(this.cache, this.creating + 64);
    for (let pg = this.creating; pg < end; pg++) b.store(Number(CACHE_BASE) + pg * 4096, BigInt(pg + 1));
    this.creating = end < this.cache ? end : -1;
    return true;
  }

  /** True while the create pass runs. */
  get creatingFiles(): boolean { return this.creating >= 0; }

  /** Work units per simulated second. */
  score(k: Kernel): number { return k.now() > 0 ? this.units / k.now() : 0; }
}
