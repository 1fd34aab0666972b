// Batched frame hashing, comparison and zero tests (assembly/hash.ts), for page sharing.
//
// One FrameOps owns a scratch area in the core's linear memory, allocated once (the core's
// allocator never frees):
//
//   ptr ─────────── +4·cap ────────── +8·cap ─────────────────── +16·cap
//   │ A: u32[cap] hfns │ B: u32[cap] hfns │ OUT: u64[cap] hashes / u8[cap] flags │
//
// Every method validates all frame numbers first (bad input never reaches the core), then
// makes one core call per `capacity` frames: never one call per frame.
// The hash is xxHash64 with seed 0 (what libxxhash's XXH64 returns).

import type { Core } from './wasm.js';
import { hex } from './addr.js';

/** xxHash64 (seed 0) of a 4096-byte frame of zeros. */
export const ZERO_FRAME_XXH64 = 0xac869b6f32d8bbdbn;

/** Bits of a hash kept in a JS-number key (exact up to 2^53). */
export const MAX_KEY_BITS = 53;

/** The low `bits` bits of a 64-bit hash as an exact JS number (a map key). */
export function hashKey(h: bigint, bits = MAX_KEY_BITS): number {
  checkBits(bits);
  return Number(BigInt.asUintN(bits, h));
}

function checkBits(bits: number): void {
  if (!Number.isInteger(bits) || bits < 1 || bits > MAX_KEY_BITS) {
    throw new RangeError(`hash key bits must be an integer in 1..${MAX_KEY_BITS}, got ${bits}`);
  }
}

export class FrameOps {
  private readonly ptr: number;

  /**
   * @param frames host frames in physical memory (hfns must be below it)
   * @param capacity frames per core call
   */
  constructor(private readonly core: Core, readonly frames: number, readonly capacity = 1024) {
    if (!Number.isInteger(capacity) || capacity < 1 || capacity > 1 << 20) {
      throw new RangeError(`FrameOps capacity must be an integer in 1..2^20, got ${capacity}`);
    }
    this.ptr = core.allocBytes(BigInt(capacity * 16));
    if (this.ptr === 0) throw new RangeError(`out of core memory for a ${capacity}-frame hashing buffer`);
  }

  private get a(): number { return this.ptr; }
  private get b(): number { return this.ptr + 4 * this.capacity; }
  private get out(): number { return this.ptr + 8 * this.capacity; }

  private check(hfns: ArrayLike<number>, what: string): void {
    for (let i = 0; i < hfns.length; i++) {
      const h = hfns[i];
      if (!Number.isInteger(h) || h < 0 || h >= this.frames) {
        throw new RangeError(`${what}[${i}] = ${Number.isInteger(h) ? hex(h) : h} is not a host frame (0..${hex(this.frames - 1)})`);
      }
    }
  }

  /** Copies hfns[from, from+n) into scratch array at byte offset `at` (a fresh view: memory may have grown). */
  private put(at: number, hfns: ArrayLike<number>, from: number, n: number): void {
    const v = new Uint32Array(this.core.memory.buffer, at, n);
    for (let i = 0; i < n; i++) v[i] = hfns[from + i];
  }

  /** Runs `call` over chunks of `count` frames; `take(from, n)` copies the results out. */
  private chunks(count: number, fill: (from: number, n: number) => void, call: (n: number) => number,
                 take: (from: number, n: number) => void): void {
    for (let from = 0; from < count; from += this.capacity) {
      const n = Math.min(this.capacity, count - from);
      fill(from, n);
      const done = call(n);
      if (done !== n) throw new Error(`core stopped at frame ${from + done} of a validated batch (hypervisor bug)`);
      take(from, n);
    }
  }

  /** 64-bit hashes of the frames. */
  hash(hfns: ArrayLike<number>): BigUint64Array {
    this.check(hfns, 'hfns');
    const out = new BigUint64Array(hfns.length);
    this.chunks(hfns.length, (f, n) => this.put(this.a, hfns, f, n),
      (n) => this.core.hashFrames(this.a, n, this.out),
      (f, n) => out.set(new BigUint64Array(this.core.memory.buffer, this.out, n), f));
    return out;
  }

  /**
   * The frames' hashes as map keys: the low `bits` bits of each 64-bit hash, exact JS
   * numbers (hashKey). Fewer bits model a weaker hash (more collisions).
   */
  hashKeys(hfns: ArrayLike<number>, bits = MAX_KEY_BITS): Float64Array {
    checkBits(bits);
    this.check(hfns, 'hfns');
    const out = new Float64Array(hfns.length);
    const hiBits = Math.max(0, bits - 32), loMask = bits >= 32 ? 0xffff_ffff : 2 ** bits - 1;
    this.chunks(hfns.length, (f, n) => this.put(this.a, hfns, f, n),
      (n) => this.core.hashFrames(this.a, n, this.out),
      (f, n) => {
        const w = new Uint32Array(this.core.memory.buffer, this.out, 2 * n); // little-endian lo, hi
        for (let i = 0; i < n; i++) {
          const lo = bits >= 32 ? w[2 * i] : (w[2 * i] & loMask) >>> 0;
          const hi = hiBits > 0 ? w[2 * i + 1] & (2 ** hiBits - 1) : 0;
          out[f + i] = hi * 2 ** 32 + lo;
        }
      });
    return out;
  }

  /** 1 where frames a[i] and b[i] hold the same 4096 bytes, else 0. */
  equal(a: ArrayLike<number>, b: ArrayLike<number>): Uint8Array {
    if (a.length !== b.length) throw new RangeError(`equal: ${a.length} frames against ${b.length}`);
    this.check(a, 'a');
    this.check(b, 'b');
    const out = new Uint8Array(a.length);
    this.chunks(a.length, (f, n) => { this.put(this.a, a, f, n); this.put(this.b, b, f, n); },
      (n) => this.core.framesEqual(this.a, this.b, n, this.out),
      (f, n) => out.set(new Uint8Array(this.core.memory.buffer, this.out, n), f));
    return out;
  }

  /** 1 where the frame is all zero bytes, else 0. */
  isZero(hfns: ArrayLike<number>): Uint8Array {
    this.check(hfns, 'hfns');
    const out = new Uint8Array(hfns.length);
    this.chunks(hfns.length, (f, n) => this.put(this.a, hfns, f, n),
      (n) => this.core.zeroFrames(this.a, n, this.out),
      (f, n) => out.set(new Uint8Array(this.core.memory.buffer, this.out, n), f));
    return out;
  }

  /** xxHash64 of any physical byte range (tools and tests; pages go through hash()). */
  xxh64(pa: bigint, len: number, seed = 0n): bigint {
    if (pa < 0n || !Number.isInteger(len) || len < 0 || pa + BigInt(len) > BigInt(this.frames) * 4096n) {
      throw new RangeError(`xxh64: physical range ${hex(pa)}+${len} is outside host memory`);
    }
    return this.core.physXxh64(pa, BigInt(len), BigInt.asUintN(64, seed));
  }
}
