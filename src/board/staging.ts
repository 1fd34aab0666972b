// Host-side staging of what the loader writes into guest-physical memory: a byte buffer
// for a page-aligned gpa range (so everything is computed and checked before one write
// per range), and the x86-64 4-level page tables the kernel starts on, built in it.
//
// Paging-structure entry as the loader writes it (SDM 3 §4.5, 4-level):
//
//   63  62        52 51                              12 11  9 8 7 6 5 4 3 2 1 0
//  ┌──┬────────────┬──────────────────────────────────┬─────┬─┬──┬─┬─┬───┬─┬─┬─┐
//  │XD│  ignored 0 │ physical address of table / page │ ign │G│PS│D│A│PCD│U│W│P│
//  └──┴────────────┴──────────────────────────────────┴─────┴─┴──┴─┴─┴───┴─┴─┴─┘
//  Upper levels: P|W (supervisor, executable: the leaf decides). Leaves: P, W if writable,
//  XD if not executable, PS on 2 MiB PDEs; U, G, PWT/PCD, A, D all 0 (PAT index 0 = WB).

import { PTE } from '../core/bits.js';

const ADDR = 0x000f_ffff_ffff_f000n;
const hex = (v: bigint): string => '0x' + v.toString(16);

/** A page-aligned guest-physical range [base, base + bytes) staged in a host buffer. */
export class Staged {
  readonly bytes: Uint8Array;
  private readonly dv: DataView;
  constructor(readonly base: bigint, size: number) {
    this.bytes = new Uint8Array(size);
    this.dv = new DataView(this.bytes.buffer);
  }
  get end(): bigint { return this.base + BigInt(this.bytes.length); }
  contains(gpa: bigint, len = 1): boolean { return gpa >= this.base && gpa + BigInt(len) <= this.end; }
  private at(gpa: bigint, len: number): number {
    if (!this.contains(gpa, len)) throw new RangeError(`staged write ${hex(gpa)}+${len} outside ${hex(this.base)}..${hex(this.end)}`);
    return Number(gpa - this.base);
  }
  read64(gpa: bigint): bigint { return this.dv.getBigUint64(this.at(gpa, 8), true); }
  write64(gpa: bigint, v: bigint): void { this.dv.setBigUint64(this.at(gpa, 8), BigInt.asUintN(64, v), true); }
  set(gpa: bigint, data: Uint8Array): void { this.bytes.set(data, this.at(gpa, data.length)); }
}

/** Hands out 4 KiB frames of a staged range, bottom up. */
export class StagedFrames {
  private next: bigint;
  constructor(private readonly s: Staged, first: bigint, private readonly limit: bigint) { this.next = first; }
  alloc(): bigint {
    if (this.next + 0x1000n > this.limit) throw new Error(`loader: page-table area ${hex(this.limit)} exhausted (bug in the size estimate)`);
    const f = this.next;
    this.next += 0x1000n;
    return f;
  }
  get used(): bigint { return this.next; }
}

export interface LeafRights { write: boolean; exec: boolean }

/** 4-level page tables in staged memory; only supervisor mappings (the loader's). */
export class StagedTables {
  readonly root: bigint;
  constructor(private readonly s: Staged, private readonly frames: StagedFrames) { this.root = frames.alloc(); }

  /** Address of va's entry at `level` (1 = PTE, 2 = PDE), creating the tables above. */
  private entry(va: bigint, level: number): bigint {
    let table = this.root;
    for (let l = 4; l > level; l--) {
      const ea = table + ((va >> BigInt(3 + 9 * l)) & 511n) * 8n;
      let e = this.s.read64(ea);
      if (!(e & PTE.P)) {
        e = this.frames.alloc() | PTE.P | PTE.W;
        this.s.write64(ea, e);
      } else if (e & PTE.PS) {
        throw new Error(`loader: ${hex(va)} is already inside a large page`);
      }
      table = e & ADDR;
    }
    return table + ((va >> BigInt(3 + 9 * level)) & 511n) * 8n;
  }

  private leaf(pa: bigint, r: LeafRights): bigint {
    return pa | PTE.P | (r.write ? PTE.W : 0n) | (r.exec ? 0n : PTE.XD);
  }

  map4k(va: bigint, pa: bigint, r: LeafRights): void {
    const ea = this.entry(va, 1);
    if (this.s.read64(ea) & PTE.P) throw new Error(`loader: ${hex(va)} mapped twice`);
    this.s.write64(ea, this.leaf(pa, r));
  }

  map2m(va: bigint, pa: bigint, r: LeafRights): void {
    if ((va | pa) & 0x1f_ffffn) throw new RangeError(`loader: ${hex(va)} → ${hex(pa)} is not 2 MiB-aligned`);
    this.s.write64(this.entry(va, 2), this.leaf(pa, r) | PTE.PS);
  }
}
