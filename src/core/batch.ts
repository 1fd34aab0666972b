// A buffer of memory operations in the core's linear memory, filled by the host and
// executed by Cpu.execute in one call. Record layout: assembly/access.ts.
//
// Batches are allocated from the core's bump allocator and never freed: create a few
// and reuse them (clear() and refill), do not create one per step.

import type { Core } from './wasm.js';

export const OP_BYTES = 24;
export const OpKind = {
  load: 0, store: 1, fetch: 2, translate: 3, out: 4, in: 5, hlt: 6, movCr3: 7, invlpg: 8,
} as const;
export type OpKindName = keyof typeof OpKind;
export const CTL_IMPLICIT = 1 << 8;
export const CTL_USER = 1 << 9;

export interface OpOptions { user?: boolean; implicit?: boolean }

export class AccessBatch {
  readonly ptr: number;
  /** Number of operations currently in the batch. */
  length = 0;
  private u32!: Uint32Array;
  private u64!: BigUint64Array;

  constructor(private readonly core: Core, readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1 || capacity > 1 << 24) {
      throw new RangeError(`batch capacity must be an integer in 1..${1 << 24}, got ${capacity}`);
    }
    this.ptr = core.allocBytes(BigInt(capacity * OP_BYTES));
    if (this.ptr === 0) throw new RangeError(`out of core memory for a batch of ${capacity}`);
    this.views();
  }

  private views(): void {
    if (this.u32 === undefined || this.u32.length === 0) { // a detached view (memory grew) has length 0
      this.u32 = new Uint32Array(this.core.memory.buffer, this.ptr, this.capacity * 6);
      this.u64 = new BigUint64Array(this.core.memory.buffer, this.ptr, this.capacity * 3);
    }
  }

  opPtr(i: number): number { return this.ptr + i * OP_BYTES; }

  clear(): this { this.length = 0; return this; }

  /**
   * Writes op i (0 <= i < capacity; length grows to cover it). va may be a number
   * (< 2^53) to keep BigInt out of fill loops.
   */
  set(i: number, kind: OpKindName, va: bigint | number, size = 8, value: bigint = 0n, o: OpOptions = {}): this {
    if (i < 0 || i >= this.capacity) throw new RangeError(`op index ${i} outside batch capacity ${this.capacity}`);
    if (!Number.isInteger(size) || size < 1 || size > 8) throw new RangeError(`access size must be 1..8, got ${size}`);
    this.views();
    const w = i * 6;
    if (typeof va === 'number') {
      this.u32[w] = va >>> 0;
      this.u32[w + 1] = Math.floor(va / 2 ** 32) >>> 0;
    } else {
      this.u64[i * 3] = BigInt.asUintN(64, va);
    }
    if (kind === 'store' || kind === 'out' || kind === 'movCr3') this.u64[i * 3 + 1] = BigInt.asUintN(64, value);
    this.u32[w + 4] = OpKind[kind] | (size << 4) | (o.implicit ? CTL_IMPLICIT : 0) | (o.user ? CTL_USER : 0);
    if (i >= this.length) this.length = i + 1;
    return this;
  }

  private push(kind: OpKindName, va: bigint | number, size: number, value: bigint, o?: OpOptions): this {
    if (this.length >= this.capacity) throw new RangeError(`batch is full (${this.capacity} ops)`);
    return this.set(this.length, kind, va, size, value, o);
  }

  load(va: bigint | number, size = 8, o?: OpOptions): this { return this.push('load', va, size, 0n, o); }
  store(va: bigint | number, value: bigint, size = 8, o?: OpOptions): this { return this.push('store', va, size, value, o); }
  fetch(va: bigint | number, size = 1, o?: OpOptions): this { return this.push('fetch', va, size, 0n, o); }
  /** Translate only (no data moved): value(i) becomes the physical address. */
  translate(va: bigint | number, o?: OpOptions): this { return this.push('translate', va, 1, 0n, o); }

  /** Port output (size 1, 2 or 4): always exits with reason 'IO'. */
  out(port: number, value: bigint, size = 1): this { return this.push('out', port & 0xffff, size, value); }
  /** Port input: exits with reason 'IO'; the host answers with setValue(index, v). */
  in(port: number, size = 1): this { return this.push('in', port & 0xffff, size, 0n); }
  hlt(): this { return this.push('hlt', 0, 1, 0n); }
  /** Guest MOV to CR3 (exits in shadow mode). */
  movCr3(value: bigint): this { return this.push('movCr3', 0, 8, value); }
  /** Guest INVLPG (exits in shadow mode). */
  invlpg(va: bigint | number): this { return this.push('invlpg', va, 1, 0n); }

  /** Sets op i's value (an IN's answer, or a store's data). */
  setValue(i: number, v: bigint): void {
    if (i < 0 || i >= this.length) throw new RangeError(`op index ${i} outside batch length ${this.length}`);
    this.views();
    this.u64[i * 3 + 1] = BigInt.asUintN(64, v);
  }

  /** Decodes op i (for hypervisors that emulate an op after an exit). */
  op(i: number): { kind: OpKindName; va: bigint; size: number; value: bigint; user: boolean; implicit: boolean } {
    if (i < 0 || i >= this.length) throw new RangeError(`op index ${i} outside batch length ${this.length}`);
    this.views();
    const ctl = this.u32[i * 6 + 4];
    const kind = kindName(ctl & 15);
    return { kind, va: this.u64[i * 3], size: (ctl >> 4) & 15, value: this.u64[i * 3 + 1],
      user: (ctl & CTL_USER) !== 0, implicit: (ctl & CTL_IMPLICIT) !== 0 };
  }

  /** Op i's kind and flags, without its address and value (no BigInt made). */
  access(i: number): { kind: OpKindName; user: boolean; implicit: boolean } {
    if (i < 0 || i >= this.length) throw new RangeError(`op index ${i} outside batch length ${this.length}`);
    this.views();
    const ctl = this.u32[i * 6 + 4];
    return { kind: kindName(ctl & 15), user: (ctl & CTL_USER) !== 0, implicit: (ctl & CTL_IMPLICIT) !== 0 };
  }

  /** Load/fetch result or translated address of op i (store: the data stored). */
  value(i: number): bigint {
    this.views();
    return this.u64[i * 3 + 1];
  }
}

/** The name of an op kind code (the first name OpKind gives it), from a table built once. */
let kindNames: (OpKindName | undefined)[] | undefined;
function kindName(code: number): OpKindName {
  if (kindNames === undefined) {
    kindNames = [];
    for (const k of Object.keys(OpKind) as OpKindName[]) kindNames[OpKind[k]] ??= k;
  }
  return kindNames[code]!;
}
