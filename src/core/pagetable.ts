// Host-side construction of x86-64 page tables in physical memory: for experiments,
// benchmarks and tests that set up an address space without running a guest kernel.
// (Guest kernels build theirs through their own vCPU; see guests/.)

import type { PhysicalMemory } from './memory.js';
import { PTE, PAGE_4K, PAGE_2M, PAGE_1G, type PageSize } from './bits.js';
import { hex } from './addr.js';

const ADDR = 0x000f_ffff_ffff_f000n;

/** Hands out zeroed 4 KiB frames from [start, end). */
export class FrameBump {
  constructor(private readonly mem: PhysicalMemory, private next: bigint, private readonly end: bigint) {}
  alloc(): bigint {
    if (this.next + 4096n > this.end) throw new RangeError(`page-table frames exhausted at ${hex(this.end)}`);
    const p = this.next;
    this.next += 4096n;
    this.mem.fill(p, 0, 4096);
    return p;
  }
  get used(): bigint { return this.next; }
}

export interface MapFlags {
  write?: boolean; user?: boolean; nx?: boolean; global?: boolean; pkey?: number;
  /** Pre-set A (and D) in the leaf so the first access does not write them. */
  accessed?: boolean; dirty?: boolean;
}

export class PageTableBuilder {
  readonly root: bigint;
  constructor(
    private readonly mem: PhysicalMemory,
    private readonly frames: FrameBump,
    readonly levels: 4 | 5 = 4,
  ) {
    this.root = frames.alloc();
  }

  /** Address of the entry for va at `level` (1 = PTE), creating tables above it. */
  entryAddr(va: bigint, level: number): bigint {
    let table = this.root;
    for (let l = this.levels; l > level; l--) {
      const ea = table + ((va >> BigInt(3 + 9 * l)) & 511n) * 8n;
      let e = this.mem.read64(ea);
      if (!(e & PTE.P)) {
        e = this.frames.alloc() | PTE.P | PTE.W | PTE.U;
        this.mem.write64(ea, e);
      } else if (e & PTE.PS && l <= 3) {
        throw new Error(`${hex(va)} is inside a large page mapped at level ${l}`);
      }
      table = e & ADDR;
    }
    return table + ((va >> BigInt(3 + 9 * level)) & 511n) * 8n;
  }

  /** Maps one page of `size` at va → pa. Upper levels are P|W|U; the leaf carries the rights. */
  map(va: bigint, pa: bigint, size: PageSize = PAGE_4K, f: MapFlags = {}): void {
    const sz = BigInt(size);
    if (va % sz !== 0n || pa % sz !== 0n) throw new RangeError(`${hex(va)} → ${hex(pa)} is not ${size}-aligned`);
    const level = size === PAGE_4K ? 1 : size === PAGE_2M ? 2 : 3;
    let e = pa | PTE.P;
    if (f.write ?? true) e |= PTE.W;
    if (f.user ?? true) e |= PTE.U;
    if (f.nx) e |= PTE.XD;
    if (f.global) e |= PTE.G;
    if (f.accessed) e |= PTE.A;
    if (f.dirty) e |= PTE.D | PTE.A;
    if (f.pkey) e |= BigInt(f.pkey & 15) << 59n;
    if (level > 1) e |= PTE.PS;
    this.mem.write64(this.entryAddr(va, level), e);
  }

  /** Maps [va, va+bytes) → [pa, ...) with pages of `size`. */
  mapRange(va: bigint, pa: bigint, bytes: number, size: PageSize = PAGE_4K, f: MapFlags = {}): void {
    for (let off = 0n; off < BigInt(bytes); off += BigInt(size)) this.map(va + off, pa + off, size, f);
  }
}

export { PAGE_4K, PAGE_2M, PAGE_1G };
