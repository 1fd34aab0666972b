// A small x86-64 page-table builder for tests, independent of src/core/pagetable.ts on
// purpose: it also writes into the reference model's memory, and a walker bug must not
// be mirrored by a shared builder. It writes entries with plain write64s into
// any memory (a Machine's `m.memory`, or the reference model's MapMemory), allocating
// table frames from a bump pointer, so tests can then poke raw bits with entryAddr().
// It does not depend on src/: it only needs read64/write64 (and uses `write` if present
// to zero new frames faster).

export interface TableMemory {
  read64(pa: bigint): bigint;
  write64(pa: bigint, v: bigint): void;
  write?(pa: bigint, bytes: Uint8Array): void;
}

export type PageSize = 4096 | 2097152 | 1073741824;

/** Sets and clears raw bits of one entry after the builder wrote it. */
export interface BitEdit { set?: bigint; clear?: bigint }

export interface MapOptions {
  size?: PageSize;      // default 4096
  w?: boolean;          // R/W of the leaf (default true)
  u?: boolean;          // U/S of the leaf (default true)
  nx?: boolean;         // XD (bit 63) of the leaf
  g?: boolean;          // G (bit 8) of the leaf
  pwt?: boolean;
  pcd?: boolean;
  pat?: boolean;        // bit 7 of a PTE, bit 12 of a large leaf
  pkey?: number;        // protection key, leaf bits 62:59
  a?: boolean;          // A of the leaf
  d?: boolean;          // D of the leaf
  /** Flags of newly created non-leaf entries (default P|R/W|U/S). */
  tableFlags?: bigint;
  /** Raw edits per level (5..1), applied last to the entry this mapping uses there. */
  flagsAtLevel?: Partial<Record<number, BitEdit>>;
}

export interface BuilderOptions {
  levels: 4 | 5;
  /** First table frame; the root is allocated here. */
  tableBase: bigint;
  /** End (exclusive) of the table area; default: unbounded. */
  tableLimit?: bigint;
}

const P = 1n, RW = 2n, US = 4n, PWT = 8n, PCD = 16n, A = 32n, D = 64n, PS = 128n, G = 256n;
const XD = 1n << 63n;
/** Next-table address field, bits 51:12. */
const ADDR = ((1n << 52n) - 1n) & ~0xfffn;
const ZERO_PAGE = new Uint8Array(4096);

const leafLevelOf = (size: PageSize): number => {
  if (size === 4096) return 1;
  if (size === 2097152) return 2;
  if (size === 1073741824) return 3;
  throw new Error(`bad page size ${size}`);
};

export class PageTableBuilder {
  readonly levels: 4 | 5;
  readonly root: bigint;
  /** Every table frame allocated so far, root first. */
  readonly frames: bigint[] = [];
  private next: bigint;
  private readonly limit: bigint | undefined;

  constructor(readonly mem: TableMemory, o: BuilderOptions) {
    if ((o.tableBase & 0xfffn) !== 0n) throw new Error('tableBase must be 4 KiB aligned');
    this.levels = o.levels;
    this.next = o.tableBase;
    this.limit = o.tableLimit;
    this.root = this.alloc();
  }

  /** CR3 value for this hierarchy (PCID / PWT / PCD bits 0). */
  get cr3(): bigint { return this.root; }

  /** A zeroed 4 KiB table frame. */
  alloc(): bigint {
    const f = this.next;
    if (this.limit !== undefined && f + 0x1000n > this.limit) throw new Error('page-table area exhausted');
    this.next += 0x1000n;
    if (this.mem.write) this.mem.write(f, ZERO_PAGE);
    else for (let i = 0n; i < 4096n; i += 8n) this.mem.write64(f + i, 0n);
    this.frames.push(f);
    return f;
  }

  /** Zeroes every allocated frame (not the others' memory). */
  clear(): void {
    for (const f of this.frames) {
      if (this.mem.write) this.mem.write(f, ZERO_PAGE);
      else for (let i = 0n; i < 4096n; i += 8n) this.mem.write64(f + i, 0n);
    }
  }

  static index(va: bigint, level: number): bigint {
    return (va >> BigInt(12 + 9 * (level - 1))) & 511n;
  }

  /** Where the entry for va at `level` (levels..1) lives; the tables above must be present. */
  entryAddr(va: bigint, level: number): bigint {
    if (level < 1 || level > this.levels) throw new Error(`bad level ${level}`);
    let table = this.root;
    for (let l = this.levels; l > level; l--) {
      const e = this.mem.read64(table + PageTableBuilder.index(va, l) * 8n);
      if ((e & P) === 0n || (l <= 3 && (e & PS) !== 0n)) {
        throw new Error(`no table below level ${l} for va 0x${va.toString(16)}`);
      }
      table = e & ADDR;
    }
    return table + PageTableBuilder.index(va, level) * 8n;
  }

  entry(va: bigint, level: number): bigint { return this.mem.read64(this.entryAddr(va, level)); }
  setEntry(va: bigint, level: number, v: bigint): void { this.mem.write64(this.entryAddr(va, level), v); }

  /**
   * Maps va to pa with one leaf of `size`; creates missing tables on the way and reuses
   * present ones. Returns the entry addresses used, root level first, leaf last.
   */
  map(va: bigint, pa: bigint, o: MapOptions = {}): bigint[] {
    const size = o.size ?? 4096;
    const leafLevel = leafLevelOf(size);
    if (pa % BigInt(size) !== 0n) throw new Error(`pa 0x${pa.toString(16)} is not ${size}-aligned`);
    const path: bigint[] = [];
    let table = this.root;
    for (let l = this.levels; l > leafLevel; l--) {
      const addr = table + PageTableBuilder.index(va, l) * 8n;
      let e = this.mem.read64(addr);
      if ((e & P) === 0n) {
        e = this.alloc() | (o.tableFlags ?? (P | RW | US));
        this.mem.write64(addr, e);
      } else if (l <= 3 && (e & PS) !== 0n) {
        throw new Error(`va 0x${va.toString(16)} already has a large page at level ${l}`);
      }
      path.push(addr);
      table = e & ADDR;
    }
    const addr = table + PageTableBuilder.index(va, leafLevel) * 8n;
    path.push(addr);
    let leaf = pa | P;
    if (o.w ?? true) leaf |= RW;
    if (o.u ?? true) leaf |= US;
    if (o.pwt) leaf |= PWT;
    if (o.pcd) leaf |= PCD;
    if (o.a) leaf |= A;
    if (o.d) leaf |= D;
    if (o.g) leaf |= G;
    if (o.nx) leaf |= XD;
    if (leafLevel > 1) leaf |= PS;
    if (o.pat) leaf |= leafLevel > 1 ? 1n << 12n : PS;
    if (o.pkey !== undefined) {
      if (!Number.isInteger(o.pkey) || o.pkey < 0 || o.pkey > 15) throw new Error(`bad pkey ${o.pkey}`);
      leaf |= BigInt(o.pkey) << 59n;
    }
    this.mem.write64(addr, leaf);
    // Raw edits last, so they can also break the entries (clear P, set reserved bits).
    path.forEach((entryPa, i) => {
      const edit = o.flagsAtLevel?.[this.levels - i];
      if (!edit) return;
      const v = this.mem.read64(entryPa);
      this.mem.write64(entryPa, (v | (edit.set ?? 0n)) & ~(edit.clear ?? 0n));
    });
    return path;
  }
}
