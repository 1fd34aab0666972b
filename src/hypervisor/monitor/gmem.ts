// The host's view of one VM's guest-physical memory (what a VMM uses to load a kernel or
// build the guest's first page tables), translated page by page through the p2m.
// Reading an unbacked gfn returns zeros without backing it; writing backs it. It has the
// read/write surface of PhysicalMemory, so a PageTableBuilder can build guest tables in it.

import { type Gfn, type Gpa, type Hfn, gpa as toGpa, hpaOf, hex } from '../../core/addr.js';
import type { PhysicalMemory } from '../../core/memory.js';

export interface GuestFrames {
  /** Guest-physical memory size in bytes. */
  readonly memoryBytes: bigint;
  /** The host frame for a host-side access to gfn: backs it on write; null = unbacked read. */
  frameFor(gfn: Gfn, write: boolean): Hfn | null;
}

export class GuestMemory {
  constructor(private readonly host: PhysicalMemory, private readonly vm: GuestFrames) {}

  /** Calls fn for each page-sized piece of [gpa, gpa+len): host address (null = zeros), offset in data, length. */
  private pieces(gpa: bigint, len: number, write: boolean, fn: (hpa: bigint | null, at: number, n: number) => void): void {
    if (gpa < 0n || gpa + BigInt(len) > this.vm.memoryBytes) {
      throw new RangeError(`guest-physical range ${hex(gpa)}+${len} is outside the VM (${hex(this.vm.memoryBytes)} bytes)`);
    }
    for (let at = 0; at < len;) {
      const a = gpa + BigInt(at);
      const off = Number(a & 0xfffn);
      const n = Math.min(len - at, 4096 - off);
      const hfn = this.vm.frameFor(Number(a >> 12n) as Gfn, write);
      fn(hfn === null ? null : hpaOf(hfn) + BigInt(off), at, n);
      at += n;
    }
  }

  read(gpa: Gpa | bigint, len: number): Uint8Array {
    const out = new Uint8Array(len);
    this.pieces(gpa, len, false, (h, at, n) => { if (h !== null) out.set(this.host.read(h, n), at); });
    return out;
  }

  write(gpa: Gpa | bigint, data: Uint8Array): void {
    this.pieces(gpa, data.length, true, (h, at, n) => this.host.write(h!, data.subarray(at, at + n)));
  }

  fill(gpa: Gpa | bigint, byte: number, len: number): void {
    this.pieces(gpa, len, true, (h, _at, n) => this.host.fill(h!, byte, n));
  }

  read64(gpa: Gpa | bigint): bigint {
    const hpa = this.within(gpa, false);
    if (hpa !== undefined) return hpa === null ? 0n : this.host.read64(hpa);
    return new DataView(this.read(gpa, 8).buffer).getBigUint64(0, true);
  }

  write64(gpa: Gpa | bigint, v: bigint): void {
    const hpa = this.within(gpa, true);
    if (hpa !== undefined) { this.host.write64(hpa!, v); return; }
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, BigInt.asUintN(64, v), true);
    this.write(gpa, b);
  }

  /**
   * The hpa of an 8-byte access inside one page (null: an unbacked read, zeros), as pieces()
   * gives it but without a buffer per access (page tables are built 8 bytes at a time);
   * undefined when the access crosses a page.
   */
  private within(gpa: bigint, write: boolean): bigint | null | undefined {
    const off = Number(gpa & 0xfffn);
    if (off > 4096 - 8) return undefined;
    if (gpa < 0n || gpa + 8n > this.vm.memoryBytes) {
      throw new RangeError(`guest-physical range ${hex(gpa)}+8 is outside the VM (${hex(this.vm.memoryBytes)} bytes)`);
    }
    const hfn = this.vm.frameFor(Number(gpa >> 12n) as Gfn, write);
    return hfn === null ? null : hpaOf(hfn) + BigInt(off);
  }

  read8(gpa: Gpa | bigint): number { return this.read(gpa, 1)[0]; }
  write8(gpa: Gpa | bigint, v: number): void { this.write(gpa, Uint8Array.of(v & 0xff)); }

  /** This view typed as PhysicalMemory, for PageTableBuilder / FrameBump (gpa-addressed). */
  asPhysicalMemory(): PhysicalMemory { return this as unknown as PhysicalMemory; }

  /** The hpa backing gpa (backing it), for tests and tools that inspect host bytes. */
  hpaOf(gpa: Gpa | bigint): bigint {
    const hfn = this.vm.frameFor(Number(toGpa(gpa) >> 12n) as Gfn, true)!;
    return hpaOf(hfn) + (BigInt(gpa) & 0xfffn);
  }
}
