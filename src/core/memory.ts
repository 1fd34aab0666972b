// Host physical memory as the host sees it: bounds-checked reads and writes straight
// into the Wasm instance's linear memory (no call into Wasm for scalar accesses).

import type { Core } from './wasm.js';
import { hex } from './addr.js';

export class PhysicalMemory {
  private view: DataView;
  private bytes: Uint8Array;
  /** Per-frame code generation words of the decoded-instruction cache (assembly/x86/icache.ts). */
  private gens: Uint32Array;

  constructor(
    private readonly core: Core,
    /** Byte offset of physical address 0 inside linear memory. */
    readonly base: number,
    /** Size of host physical memory in bytes. */
    readonly size: number,
  ) {
    this.view = new DataView(core.memory.buffer);
    this.bytes = new Uint8Array(core.memory.buffer);
    this.gens = new Uint32Array(core.memory.buffer, core.codeGenBase(), Math.floor(size / 4096));
  }

  /**
   * A host write to [pa, pa+len) (DMA, a loader, the hypervisor): instructions the core
   * decoded from those frames are dropped, so modified code is decoded again.
   */
  private codeWrite(pa: bigint | number, len: number): void {
    if (len <= 0) return;
    this.refresh(); // a grown memory detaches the old view
    const first = Math.floor(Number(pa) / 4096), last = Math.floor((Number(pa) + len - 1) / 4096);
    const g = this.gens;
    for (let f = first; f <= last; f++) {
      const w = g[f];
      if (w & 0x8000_0000) g[f] = ((w + 1) & 0x7fff_ffff) >>> 0;
    }
  }

  /** Linear memory grows when the core allocates; views must follow. */
  private refresh(): void {
    // Growing a (non-shared) Wasm memory detaches its old buffer, and a view on a detached
    // buffer has length 0: that test costs no getter call per access.
    if (this.bytes.length === 0) {
      this.view = new DataView(this.core.memory.buffer);
      this.bytes = new Uint8Array(this.core.memory.buffer);
      this.gens = new Uint32Array(this.core.memory.buffer, this.core.codeGenBase(), Math.floor(this.size / 4096));
    }
  }

  private offset(pa: bigint | number, len: number): number {
    // Number(pa) is exact below 2^53 and rounds to ≥ 2^53 above it, so the range check on
    // numbers equals the one on BigInts (size < 2^53) without allocating any.
    const a = Number(pa);
    if (!(a >= 0 && a + len <= this.size)) {
      throw new RangeError(
        `physical range ${hex(typeof pa === 'bigint' ? pa : BigInt(pa))}+${len} is outside host memory (${hex(this.size)} bytes)`);
    }
    this.refresh();
    return this.base + a;
  }

  // offset() may replace the views, so it runs before a view is read.
  read64(pa: bigint | number): bigint { const o = this.offset(pa, 8); return this.view.getBigUint64(o, true); }
  write64(pa: bigint | number, v: bigint): void {
    const o = this.offset(pa, 8);
    this.codeWrite(pa, 8);
    this.view.setBigUint64(o, BigInt.asUintN(64, v), true);
  }
  read32(pa: bigint | number): number { const o = this.offset(pa, 4); return this.view.getUint32(o, true); }
  write32(pa: bigint | number, v: number): void { const o = this.offset(pa, 4); this.codeWrite(pa, 4); this.view.setUint32(o, v >>> 0, true); }
  read8(pa: bigint): number { const o = this.offset(pa, 1); return this.view.getUint8(o); }
  write8(pa: bigint, v: number): void { const o = this.offset(pa, 1); this.codeWrite(pa, 1); this.view.setUint8(o, v & 0xff); }

  /** A copy of `len` bytes at pa. */
  read(pa: bigint, len: number): Uint8Array {
    const o = this.offset(pa, len);
    return this.bytes.slice(o, o + len);
  }
  write(pa: bigint, data: Uint8Array): void {
    const o = this.offset(pa, data.length);
    this.codeWrite(pa, data.length);
    this.bytes.set(data, o);
  }

  /** Fills [pa, pa+len) with `byte` (in Wasm). */
  fill(pa: bigint, byte: number, len: number): void {
    this.offset(pa, len);
    this.core.physFill(BigInt(pa), byte & 0xff, BigInt(len));
  }
  /**
   * Zeroes [pa, pa+len) (len a multiple of 32), writing only if some byte is not zero:
   * memory never written stays untouched (and unbacked by the OS).
   */
  zero(pa: bigint, len: number): void {
    if (len % 32 !== 0) throw new RangeError(`zero: length must be a multiple of 32, got ${len}`);
    this.offset(pa, len);
    this.core.physZero(BigInt(pa), BigInt(len));
  }
  /** Copies len bytes from src to dst; overlapping ranges behave like memmove. */
  copy(dst: bigint, src: bigint, len: number): void {
    this.offset(dst, len);
    this.offset(src, len);
    this.core.physCopy(BigInt(dst), BigInt(src), BigInt(len));
  }
}
