// Synthetic access streams over a virtual region, written into an AccessBatch.

import type { AccessBatch } from '../core/batch.js';
import { Rng } from '../util/rng.js';

export const PATTERNS = ['sequential', 'random', 'strided', 'pointer-chase', 'zipf'] as const;
export type Pattern = (typeof PATTERNS)[number];

export interface PatternSpec {
  pattern: Pattern;
  /** Start of the region (va; below 2^53). */
  base: number;
  /** Region size in bytes (the working set). */
  bytes: number;
  /** Byte step for 'strided' (default 4096: one access per page). */
  stride?: number;
  /** Fraction of stores (default 0). */
  writeRatio?: number;
  /** zipf exponent (default 0.99). */
  zipfS?: number;
  seed: number;
}

/**
 * A generator of access offsets. Pointer-chasing follows one random cycle through the
 * region's cache lines (a linked list laid out at random), which defeats locality as a
 * real pointer chase does; zipf draws pages with probability ∝ 1/rank^s.
 */
export function* offsets(spec: PatternSpec): Generator<number> {
  const rng = new Rng(spec.seed);
  const lines = Math.max(1, Math.floor(spec.bytes / 64));
  switch (spec.pattern) {
    case 'sequential':
      for (let o = 0; ; o = (o + 8) % spec.bytes) yield o;
    case 'strided': {
      // One access per stride; each pass over the region starts 8 bytes further on.
      const stride = spec.stride ?? 4096;
      for (let k = 0; ; k++) {
        const lin = k * stride;
        yield (lin % spec.bytes + Math.floor(lin / spec.bytes) * 8) % spec.bytes;
      }
    }
    case 'random':
      for (;;) yield rng.below(lines) * 64 + (rng.below(8) * 8);
    case 'pointer-chase': {
      const order = rng.shuffle(Array.from({ length: Math.min(lines, 1 << 20) }, (_, i) => i));
      for (let i = 0; ; i = (i + 1) % order.length) yield order[i] * 64;
    }
    case 'zipf': {
      const pages = Math.max(1, Math.floor(spec.bytes / 4096));
      const s = spec.zipfS ?? 0.99;
      const cdf = new Float64Array(pages);
      let sum = 0;
      for (let k = 0; k < pages; k++) { sum += 1 / (k + 1) ** s; cdf[k] = sum; }
      // Rank → page through a fixed random permutation, so hot pages are scattered.
      const perm = rng.shuffle(Array.from({ length: pages }, (_, i) => i));
      for (;;) {
        const u = rng.next() * sum;
        let lo = 0, hi = pages - 1;
        while (lo < hi) { const mid = (lo + hi) >> 1; if (cdf[mid] < u) lo = mid + 1; else hi = mid; }
        yield perm[lo] * 4096 + rng.below(512) * 8;
      }
    }
  }
}

/** Fills batch ops [0, count) with 8-byte loads/stores following spec. */
export function fillBatch(batch: AccessBatch, spec: PatternSpec, count = batch.capacity,
  gen: Generator<number> = offsets(spec)): Generator<number> {
  const wr = spec.writeRatio ?? 0;
  const rng = new Rng(spec.seed ^ 0x5bd1e995);
  batch.clear();
  for (let i = 0; i < count; i++) {
    const va = spec.base + gen.next().value!;
    if (wr > 0 && rng.next() < wr) batch.set(i, 'store', va, 8, BigInt(i));
    else batch.set(i, 'load', va, 8);
  }
  return gen;
}
