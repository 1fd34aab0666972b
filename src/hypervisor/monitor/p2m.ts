// The p2m: one VM's guest-frame → host-frame map, one u32 per gfn in Wasm linear memory
// (so later core code — page hashing, a sharing scanner — can read it without a copy).
//
// Entry layout (u32):
//
//   31 30 29 28 27 26 25 24 23                                         0
//  ┌──┬──┬──┬──┬──┬──┬──┬──┬────────────────────────────────────────────┐
//  │LG│TR│PT│BL│SW│SH│WP│P │ hfn when P=1 · swap slot when SW=1 · else 0 │
//  └──┴──┴──┴──┴──┴──┴──┴──┴────────────────────────────────────────────┘
//   P   present: backed by host frame hfn
//   WP  write-protected: the EPT maps the frame read-only (writes exit)
//   SH  shared: hfn is a content-shared frame (copy-on-write; implies read-only)
//   SW  swapped: the contents sit in the hypervisor's swap, in slot `hfn`
//   BL  ballooned: the guest gave the frame back (balloon driver); not backed
//   PT  the guest uses this frame as a page-table page (shadow paging tracks it)
//   TR  trapped: backed (P=1) but the EPT maps nothing, so the next guest access exits
//       (active-memory sampling invalidates a sampled page's mapping this way)
//   LG  logged: backed (P=1) and mapped read-only for dirty logging (live migration's
//       write-protection tracker); the first guest or host write is recorded by the
//       tracker's pager, which clears LG. Any remap (map/unmap) drops it.
//
// "Unbacked" is not a bit: it is P = SW = BL = 0, so the zeroed array the core hands
// out is an all-unbacked p2m and the first touch of any gfn finds 0.
// 24 bits of hfn cover 64 GiB of host memory (the core holds at most 3.5 GiB).

import type { Core } from '../../core/wasm.js';
import { type Gfn, type Hfn, hex } from '../../core/addr.js';

export const P2M = {
  PRESENT: 1 << 24, WRITE_PROTECTED: 1 << 25, SHARED: 1 << 26,
  SWAPPED: 1 << 27, BALLOONED: 1 << 28, PAGE_TABLE: 1 << 29, TRAPPED: 1 << 30, LOGGED: 1 << 31,
} as const;
export const HFN_MASK = 0x00ff_ffff;
const STATE_MASK = 0xff00_0000;

/** The host frame (or swap slot) field of a p2m entry. */
export const frameField = (word: number): number => word & HFN_MASK;
/** The state bits of a p2m entry. */
export const stateBits = (word: number): number => (word & STATE_MASK) >>> 0;
/** True if the entry is unbacked (never touched, or unmapped without a new state). */
export const isUnbacked = (word: number): boolean =>
  (word & (P2M.PRESENT | P2M.SWAPPED | P2M.BALLOONED)) === 0;

/**
 * True if a guest access (write or not) to an entry with this word needs the hypervisor
 * first: the frame is swapped out, trapped for sampling, or shared or logged and being written.
 */
export const needsResolve = (word: number, write: boolean): boolean =>
  (word & (P2M.SWAPPED | P2M.TRAPPED)) !== 0 ||
  (write && (word & P2M.PRESENT) !== 0 && (word & (P2M.SHARED | P2M.LOGGED)) !== 0);

/** Called after an entry changes, with its old and new words. */
export type P2mListener = (gfn: Gfn, before: number, after: number) => void;

export class P2m {
  private at: number;
  private n: number;
  private view: Uint32Array;
  private listeners: P2mListener[] = [];
  private present = 0;

  constructor(private readonly core: Core, frames: number) {
    if (!Number.isInteger(frames) || frames < 1 || frames > 2 ** 28) {
      throw new RangeError(`a p2m needs 1..2^28 frames, got ${frames}`);
    }
    this.n = frames;
    this.at = this.allocWords(frames);
    this.view = new Uint32Array(core.memory.buffer, this.at, frames);
  }

  /** Byte offset of entry 0 in the core's linear memory (it moves when the p2m grows). */
  get ptr(): number { return this.at; }
  /** Entries (the VM's guest frames). */
  get frames(): number { return this.n; }

  private allocWords(frames: number): number {
    const p = this.core.allocBytes(BigInt(frames * 4));
    if (p === 0) throw new RangeError(`out of core memory for a p2m of ${frames} frames`);
    return p;
  }

  /**
   * Memory hot-add: `frames` entries from now on, the new ones unbacked. The table moves to
   * a new core allocation (the core's allocator never frees: the old one is left behind).
   */
  grow(frames: number): void {
    if (!Number.isInteger(frames) || frames <= this.n || frames > 2 ** 28) {
      throw new RangeError(`a p2m of ${this.n} frames can only grow, to at most 2^28; got ${frames}`);
    }
    const at = this.allocWords(frames);
    const next = new Uint32Array(this.core.memory.buffer, at, frames);
    next.set(this.words());
    this.at = at;
    this.n = frames;
    this.view = next;
  }

  /** The core's memory grows when it allocates; the view must follow its buffer. */
  private words(): Uint32Array {
    if (this.view.length === 0) { // growing a non-shared memory detaches the old buffer: length 0
      this.view = new Uint32Array(this.core.memory.buffer, this.at, this.n);
    }
    return this.view;
  }

  private check(gfn: number): void {
    if (!Number.isInteger(gfn) || gfn < 0 || gfn >= this.frames) {
      throw new RangeError(`gfn ${hex(gfn)} outside the p2m (${this.frames} frames)`);
    }
  }

  /** The raw entry (see the layout above). */
  raw(gfn: Gfn): number { this.check(gfn); return this.words()[gfn]; }
  /** The host frame backing gfn, or null if it is not present. */
  lookup(gfn: Gfn): Hfn | null {
    const w = this.raw(gfn);
    return w & P2M.PRESENT ? (frameField(w) as Hfn) : null;
  }
  state(gfn: Gfn): number { return stateBits(this.raw(gfn)); }
  /** Number of present (backed) gfns. */
  get backed(): number { return this.present; }

  private write(gfn: Gfn, after: number): void {
    const v = this.words();
    const before = v[gfn];
    if (before === after) return;
    const d = ((after & P2M.PRESENT) !== 0 ? 1 : 0) - ((before & P2M.PRESENT) !== 0 ? 1 : 0);
    v[gfn] = after;
    this.present += d;
    try {
      for (const l of this.listeners) l(gfn, before, after);
    } catch (e) {
      // A listener that cannot follow (the EPT sync needing a table frame the hypervisor pool
      // lacks, to split a large leaf) leaves the entry as it was: p2m and EPT never disagree.
      this.words()[gfn] = before;
      this.present -= d;
      throw e;
    }
  }

  /** Backs gfn with hfn; `flags` adds state bits (e.g. WRITE_PROTECTED, SHARED); PAGE_TABLE is kept. */
  map(gfn: Gfn, hfn: Hfn, flags = 0): void {
    this.check(gfn);
    if (!Number.isInteger(hfn) || hfn < 0 || hfn > HFN_MASK) throw new RangeError(`hfn ${hex(hfn)} does not fit a p2m entry`);
    if (flags & ~(STATE_MASK & ~(P2M.SWAPPED | P2M.BALLOONED))) {
      throw new RangeError(`p2m.map flags ${hex(flags)} include bits that contradict present`);
    }
    const keep = this.words()[gfn] & P2M.PAGE_TABLE; // a property of the gfn's use, not of its backing
    this.write(gfn, (P2M.PRESENT | flags | keep | hfn) >>> 0);
  }

  /**
   * Drops gfn's backing and returns the host frame it had (the caller frees it).
   * The entry becomes `flags | slot`: 0 = unbacked, SWAPPED | slot, or BALLOONED.
   * The PAGE_TABLE bit is kept: the guest still uses the gfn as a page table.
   */
  unmap(gfn: Gfn, flags = 0, slot = 0): Hfn | null {
    const old = this.raw(gfn);
    if (flags & (P2M.PRESENT | P2M.TRAPPED | P2M.LOGGED | ~STATE_MASK)) throw new RangeError(`p2m.unmap flags ${hex(flags)} are not a non-present state`);
    if (slot !== 0 && !(flags & P2M.SWAPPED)) throw new RangeError('a swap slot needs the SWAPPED state');
    this.write(gfn, (flags | (old & P2M.PAGE_TABLE) | (slot & HFN_MASK)) >>> 0);
    return old & P2M.PRESENT ? (frameField(old) as Hfn) : null;
  }

  /** Sets and clears state bits other than PRESENT (which only map/unmap change). */
  setState(gfn: Gfn, set: number, clear = 0): void {
    const old = this.raw(gfn);
    if ((set | clear) & (~STATE_MASK | P2M.PRESENT)) throw new RangeError(`p2m.setState: ${hex(set | clear)} is not a state change`);
    this.write(gfn, ((old & ~clear) | set) >>> 0);
  }

  /** Calls fn for each gfn whose entry has (word & mask) === match (all gfns by default). */
  forEach(fn: (gfn: Gfn, word: number) => void, mask = 0, match = 0): void {
    for (let g = 0; g < this.frames; g++) {
      const w = this.words()[g]; // re-read: fn may grow memory
      if ((w & mask) === match) fn(g as Gfn, w);
    }
  }

  /** Number of gfns whose entry has (word & mask) === match. */
  count(mask: number, match: number): number {
    const v = this.words();
    let n = 0;
    for (let g = 0; g < this.frames; g++) if ((v[g] & mask) === match) n++;
    return n;
  }

  /** Subscribes to entry changes; returns the unsubscribe function. */
  onChange(l: P2mListener): () => void {
    this.listeners.push(l);
    return () => { this.listeners = this.listeners.filter((x) => x !== l); };
  }
}
