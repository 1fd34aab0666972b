// EPT tables for one VM: real Intel-format bytes in host memory, kept in step with the
// VM's p2m (syncEntry, attachToP2m) and walked by the core in nested mode.
//
// EPT entry (SDM 28.2.2), as written here:
//
//   63     52 51                          12 11 10  9  8  7  6  5   3  2  1  0
//  ┌─────────┬──────────────────────────────┬─────┬──┬──┬──┬──┬──────┬──┬──┬──┐
//  │ ignored │ hpa of next table / of frame  │ ign │D │A │PS│IP│  MT  │X │W │R │
//  └─────────┴──────────────────────────────┴─────┴──┴──┴──┴──┴──────┴──┴──┴──┘
//   non-leaf: R|W|X (7), bits 7:3 zero, so the leaf alone decides rights.
//   leaf: rights | MT = 6 (write-back) | PS in a 2 MiB PDE or a 1 GiB PDPTE.
//         A (bit 8) / D (bit 9) are set by the core when EPTP[6] enables them.
//   not present iff bits 2:0 = 000. W without R is a misconfiguration: never written.
//
// EPTP (VMCS 0x201A), the pointer cpu.setVmcs takes:
//
//   63     52 51                          12 11    7  6   5    3  2    0
//  ┌─────────┬──────────────────────────────┬───────┬──┬────────┬──────┐
//  │    0    │ hpa of the root (PML4/PML5)   │   0   │AD│ len−1  │ MT=6 │
//  └─────────┴──────────────────────────────┴───────┴──┴────────┴──────┘
//   MT: memory type of the paging structures (6 = WB); len−1: 3 = 4-level, 4 = 5-level;
//   AD: the core sets A/D in EPT entries (and guest paging-structure reads count as writes).
//
// Rules: a not-present → present change needs no invalidation (nothing caches absent
// entries); any change to a present entry calls onInvalidate (INVEPT on the VM's vCPUs)
// once per public operation, after all writes.

import { EPT, eptp as makeEptp, PAGE_4K, PAGE_2M, PAGE_1G, type PageSize } from '../../core/bits.js';
import { type Gfn, type Hfn, type Hpa, hpaOf, hfnOf, hpa as toHpa, hex } from '../../core/addr.js';
import type { PhysicalMemory } from '../../core/memory.js';
import { P2M, frameField, type P2m } from './p2m.js';

export const RWX = EPT.R | EPT.W | EPT.X;
const RX = EPT.R | EPT.X;
const ADDR = 0x000f_ffff_ffff_f000n;
const AD = EPT.A | EPT.D;
const LEAF_FLAGS = RWX | (7n << 3n) | EPT.IPAT; // carried into the children of a split

/** Where table frames come from (the hypervisor pool). Frames come back zeroed. */
export interface TableFrames { alloc(): Hfn; free(hfn: Hfn): void }

export interface EptOptions { levels?: 4 | 5; ad?: boolean; onInvalidate?: () => void }

export interface EptMapping {
  hfn: Hfn; rights: bigint; size: PageSize; level: number; entryHpa: Hpa; entry: bigint;
}

export interface EptStats { tables: number; invalidations: number; splits: number; largeMaps: number }

const LEVEL_OF: Record<number, number> = { [PAGE_4K]: 1, [PAGE_2M]: 2, [PAGE_1G]: 3 };
/** 4 KiB frames spanned by one entry at `level` (1 = PTE); a table, not Math.pow, on the map path. */
const SPANS = [0, 1, 512, 512 ** 2, 512 ** 3, 512 ** 4];
const span = (level: number): number => SPANS[level];
const index = (gfn: number, level: number): bigint => BigInt(Math.floor(gfn / span(level)) % 512);
const isLeaf = (e: bigint, level: number): boolean => level === 1 || (e & EPT.PS) !== 0n;
const present = (e: bigint): boolean => (e & 7n) !== 0n;
// The same bits in an entry's low 32-bit half.
const PS32 = Number(EPT.PS), MT_WB32 = Number(EPT.MT_WB), AD32 = Number(AD);

function checkRights(rights: bigint): void {
  if ((rights & ~RWX) !== 0n || rights === 0n || ((rights & EPT.W) !== 0n && (rights & EPT.R) === 0n)) {
    throw new RangeError(`EPT rights ${hex(rights)} must be a non-empty R/W/X set with R wherever W is`);
  }
}

export class Ept {
  readonly root: Hpa;
  readonly levels: 4 | 5;
  /** EPT pointer for cpu.setVmcs: write-back, `levels`-level walk, A/D as configured. */
  readonly eptp: bigint;
  readonly stats: EptStats = { tables: 0, invalidations: 0, splits: 0, largeMaps: 0 };
  private pending = false;
  private deferring = 0;
  private readonly onInvalidate: () => void;

  constructor(private readonly mem: PhysicalMemory, private readonly frames: TableFrames, o: EptOptions = {}) {
    this.levels = o.levels ?? 4;
    this.onInvalidate = o.onInvalidate ?? (() => {});
    this.root = this.newTable();
    this.eptp = makeEptp(this.root, this.levels, o.ad ?? true);
  }

  private newTable(): Hpa {
    this.stats.tables++;
    return hpaOf(this.frames.alloc());
  }

  private entryAt(table: bigint, gfn: number, level: number): Hpa {
    return toHpa(table + index(gfn, level) * 8n);
  }

  /** Writes an entry; a change to a present entry (beyond A/D) needs an invalidation. */
  private put(at: Hpa, v: bigint): void {
    const old = this.mem.read64(at);
    if ((old & ~AD) === (v & ~AD)) return;
    this.mem.write64(at, v);
    if (present(old)) this.pending = true;
  }

  private flush(): void {
    if (!this.pending || this.deferring > 0) return;
    this.pending = false;
    this.stats.invalidations++;
    this.onInvalidate();
  }

  /** Replaces a large leaf at `level` by a table of 512 entries with the same translations. */
  private split(at: Hpa, leaf: bigint, level: number): bigint {
    const t = this.newTable();
    const childBytes = BigInt(span(level - 1)) << 12n;
    const base = leaf & ADDR;
    const flags = (leaf & (LEAF_FLAGS | AD)) | (level - 1 > 1 ? EPT.PS : 0n);
    for (let i = 0n; i < 512n; i++) this.mem.write64(t + i * 8n, (base + i * childBytes) | flags);
    this.mem.write64(at, t | RWX); // same translations: no invalidation needed for the split itself
    this.stats.splits++;
    return t;
  }

  /** The entry address for gfn at `level`, creating tables and splitting large leaves above it. */
  private slot(gfn: number, level: number): Hpa {
    let table: bigint = this.root;
    for (let l = this.levels; l > level; l--) {
      const at = this.entryAt(table, gfn, l);
      const e = this.mem.read64(at);
      if (!present(e)) {
        table = this.newTable();
        this.mem.write64(at, table | RWX);
      } else if (isLeaf(e, l)) {
        table = this.split(at, e, l);
      } else {
        table = e & ADDR;
      }
    }
    return this.entryAt(table, gfn, level);
  }

  /** Maps gfn → hfn with `rights`, as one page of `size` (both must be size-aligned). */
  map(gfn: Gfn, hfn: Hfn, rights: bigint = RWX, size: PageSize = PAGE_4K): void {
    if (rights !== RWX && rights !== RX) checkRights(rights); // the p2m's two are valid
    const level = LEVEL_OF[size];
    if (level === undefined) throw new RangeError(`EPT page size ${size} is not 4 KiB, 2 MiB or 1 GiB`);
    if (gfn % span(level) !== 0 || hfn % span(level) !== 0) {
      throw new RangeError(`EPT ${size}-byte page gfn ${hex(gfn)} → hfn ${hex(hfn)} is not aligned`);
    }
    if (level === 1 && this.mapUnderTables(gfn, hfn, Number(rights))) return;
    const want = hpaOf(hfn) | rights | EPT.MT_WB | (level > 1 ? EPT.PS : 0n);
    const cur = this.lookup(gfn);
    if (cur && cur.level === level && (cur.entry & ~AD) === want) return;
    // Already translated identically by a larger leaf: leave it (no split).
    if (level === 1 && cur && cur.level > 1 && cur.hfn === hfn && cur.rights === rights) return;
    const at = this.slot(gfn, level);
    const old = this.mem.read64(at);
    this.put(at, want);
    if (level > 1 && present(old) && !isLeaf(old, level)) this.freeTree(old & ADDR, level - 1);
    if (level > 1) this.stats.largeMaps++;
    this.flush();
  }

  /**
   * map's common case (a 4 KiB leaf under tables that all exist, no large leaf above):
   * one descent on the entries' 32-bit halves (no BigInt), the same writes and
   * invalidation as the general path. False when a table is missing or a large leaf
   * covers gfn: the general path decides. hfn < 2^24 (p2m), so the leaf's hpa < 2^36.
   */
  private mapUnderTables(gfn: number, hfn: number, rights: number): boolean {
    let table = Number(this.root);
    for (let l = this.levels; l > 1; l--) {
      const at = table + (Math.floor(gfn / span(l)) % 512) * 8;
      const lo = this.mem.read32(at);
      if ((lo & 7) === 0 || (lo & PS32) !== 0) return false;
      table = (this.mem.read32(at + 4) & 0xf_ffff) * 2 ** 32 + ((lo & 0xffff_f000) >>> 0);
    }
    const at = table + (gfn % 512) * 8;
    const wantLo = (((hfn & 0xf_ffff) << 12) | rights | MT_WB32) >>> 0, wantHi = Math.floor(hfn / 2 ** 20);
    const oldLo = this.mem.read32(at), oldHi = this.mem.read32(at + 4);
    if (((oldLo & ~AD32) >>> 0) === wantLo && oldHi === wantHi) return true; // already so: no write, no invalidation
    this.mem.write32(at, wantLo);
    this.mem.write32(at + 4, wantHi);
    if ((oldLo & 7) !== 0) this.pending = true;
    this.flush();
    return true;
  }

  /** Removes gfn's 4 KiB translation (splitting a large leaf that covers it). */
  unmap(gfn: Gfn): void {
    if (!this.lookup(gfn)) return;
    this.put(this.slot(gfn, 1), 0n);
    this.flush();
  }

  /** The leaf translating gfn, or null if the walk reaches a not-present entry. */
  lookup(gfn: Gfn): EptMapping | null {
    let table: bigint = this.root;
    for (let l = this.levels; l >= 1; l--) {
      const at = this.entryAt(table, gfn, l);
      const e = this.mem.read64(at);
      if (!present(e)) return null;
      if (isLeaf(e, l)) {
        const size = (span(l) * PAGE_4K) as PageSize;
        return { hfn: (hfnOf(toHpa(e & ADDR)) + (gfn % span(l))) as Hfn, rights: e & RWX, size, level: l,
          entryHpa: at, entry: e };
      }
      table = e & ADDR;
    }
    return null;
  }

  /** Calls fn for every present leaf: first gfn, first hfn, 4 KiB frames covered, entry. */
  forEachLeaf(fn: (gfn: Gfn, hfn: Hfn, frames: number, entry: bigint) => void): void {
    const walk = (table: bigint, level: number, gfnBase: number): void => {
      for (let i = 0; i < 512; i++) {
        const e = this.mem.read64(table + BigInt(i) * 8n);
        if (!present(e)) continue;
        const g = gfnBase + i * span(level);
        if (isLeaf(e, level)) fn(g as Gfn, hfnOf(toHpa(e & ADDR)), span(level), e);
        else walk(e & ADDR, level - 1, g);
      }
    };
    walk(this.root, this.levels, 0);
  }

  /**
   * Runs f with invalidations held back, then issues at most one (a batch of p2m changes,
   * as KVM flushes once after write-protecting a whole memslot).
   */
  batch<T>(f: () => T): T {
    this.deferring++;
    try {
      return f();
    } finally {
      this.deferring--;
      this.flush();
    }
  }

  /**
   * Dirty logging with EPT A/D (KVM's D-bit harvesting, as PML's software fallback): calls
   * fn(first gfn, frames) for every leaf whose D bit (9) is set, clears D in place and, if
   * any was cleared, invalidates once, so the next write through a cached translation sets
   * D again. A large leaf reports all its frames. Reads each table as one 4 KiB block.
   * Returns the leaves visited and the dirty ones.
   */
  harvestDirty(fn: (gfn: Gfn, frames: number) => void): { leaves: number; dirty: number } {
    let leaves = 0, dirty = 0;
    const walk = (table: bigint, level: number, gfnBase: number): void => {
      const words = new Uint32Array(this.mem.read(table, 4096).buffer);
      for (let i = 0; i < 512; i++) {
        const lo = words[2 * i];
        if ((lo & 7) === 0) continue;
        const g = gfnBase + i * span(level);
        if (level > 1 && (lo & 0x80) === 0) {
          walk(BigInt(lo & 0xffff_f000) + (BigInt(words[2 * i + 1] & 0xf_ffff) << 32n), level - 1, g);
          continue;
        }
        leaves++;
        if ((lo & 0x200) === 0) continue;
        dirty++;
        const at = table + BigInt(i) * 8n;
        this.mem.write64(at, this.mem.read64(at) & ~EPT.D);
        fn(g as Gfn, span(level));
      }
    };
    walk(this.root, this.levels, 0);
    if (dirty > 0) { this.pending = true; this.flush(); }
    return { leaves, dirty };
  }

  /** Frees the table at `table` (holding level-`level` entries) and every table below it. */
  private freeTree(table: bigint, level: number): void {
    if (level > 1) {
      for (let i = 0n; i < 512n; i++) {
        const e = this.mem.read64(table + i * 8n);
        if (present(e) && !isLeaf(e, level)) this.freeTree(e & ADDR, level - 1);
      }
    }
    this.frames.free(hfnOf(toHpa(table)));
    this.stats.tables--;
  }

  /** Frees every table frame, the root included; the Ept is unusable afterwards. */
  destroy(): void { this.freeTree(this.root, this.levels); }

  /**
   * Replaces 4 KiB leaves by 2 MiB (and then 1 GiB) leaves wherever the p2m backs a whole
   * aligned range with contiguous, equally aligned host frames and the same rights.
   * Returns how many large leaves were made.
   */
  coalesce(p2m: P2m, sizes: PageSize[] = [PAGE_2M, PAGE_1G]): number {
    let made = 0;
    for (const size of sizes) {
      const n = span(LEVEL_OF[size]);
      for (let g = 0; g + n <= p2m.frames; g += n) {
        const r = uniformRun(p2m, g as Gfn, n);
        if (r === null) continue;
        const cur = this.lookup(g as Gfn);
        if (cur?.size === size) continue;
        this.map(g as Gfn, r.hfn, r.rights, size);
        made++;
      }
    }
    return made;
  }
}

/** EPT rights for a p2m entry: null if not present; read-only while write-protected, shared or logged. */
export function eptRights(word: number): bigint | null {
  if (!(word & P2M.PRESENT) || word & P2M.TRAPPED) return null;
  return word & (P2M.WRITE_PROTECTED | P2M.SHARED | P2M.LOGGED) ? RX : RWX;
}

/** If gfns [g, g+n) are present with contiguous hfns aligned to n and equal rights, their first hfn. */
function uniformRun(p2m: P2m, g: Gfn, n: number): { hfn: Hfn; rights: bigint } | null {
  const first = p2m.raw(g);
  const rights = eptRights(first);
  const hfn = frameField(first);
  if (rights === null || hfn % n !== 0) return null;
  for (let i = 1; i < n; i++) {
    const w = p2m.raw((g + i) as Gfn);
    if (frameField(w) !== hfn + i || eptRights(w) !== rights) return null;
  }
  return { hfn: hfn as Hfn, rights };
}

/** Brings gfn's EPT entry in line with a p2m change (4 KiB granularity). */
export function syncEntry(ept: Ept, gfn: Gfn, before: number, after: number): void {
  const rights = eptRights(after);
  if (rights !== null) ept.map(gfn, frameField(after) as Hfn, rights);
  else if (before & P2M.PRESENT) ept.unmap(gfn);
}

/** Keeps `ept` equal to the p2m from now on; returns the unsubscribe function. */
export function attachToP2m(ept: Ept, p2m: P2m): () => void {
  return p2m.onChange((gfn, before, after) => syncEntry(ept, gfn, before, after));
}
