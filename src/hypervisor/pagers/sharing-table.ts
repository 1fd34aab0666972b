// The content table of page sharing: one global map from hash key to what is known about
// pages with that key, and the shared frames with their reference counts.
//
//   table: key (low hashBits bits of the hash) → entry
//     HINT    { vm, gfn }          an unshared page seen with this hash; not write-protected,
//                                  so it may have changed: re-hashed before any use
//     SHARED  { hfn, refs, zero }  a read-only frame that `refs` guest pages map (COW)
//
// The table keeps only bookkeeping; frames, p2m and EPT are changed by its callers
// (sharing.ts when pages are merged, sharing-cow.ts when they are written or dropped).

import type { Hfn } from '../../core/addr.js';
import type { ScannedVm } from './sharing-scanner.js';

export interface Hint { readonly kind: 'hint'; readonly st: ScannedVm; readonly gfn: number; readonly key: number }
export interface Shared { readonly kind: 'shared'; readonly hfn: number; readonly key: number; refs: number; readonly zero: boolean }
export type Entry = Hint | Shared;

export class ContentTable {
  private readonly table = new Map<number, Entry>();
  private readonly byHfn = new Map<number, Shared>();
  /** The shared zero frame, if any page maps it. */
  zero: Shared | null = null;
  /** Guest pages mapping shared frames, Σ refs. */
  refs = 0;
  /** Hints in the table. */
  hintCount = 0;

  get(key: number): Entry | undefined { return this.table.get(key); }
  /** The shared frame record of hfn, if hfn is a shared frame. */
  shared(hfn: number): Shared | undefined { return this.byHfn.get(hfn); }
  /** Shared frames in use. */
  get sharedCount(): number { return this.byHfn.size; }
  sharedEntries(): IterableIterator<Shared> { return this.byHfn.values(); }

  /** Records hfn as a shared frame with one reference (the page whose frame it was). */
  addShared(hfn: number, key: number, zero: boolean): Shared {
    const e: Shared = { kind: 'shared', hfn, key, refs: 1, zero };
    this.table.set(key, e);
    this.byHfn.set(hfn, e);
    this.refs++;
    return e;
  }

  /**
   * A further frame with e's content (a NUMA replica, pagers/numa.ts): known by its hfn,
   * with no references yet; matches by key still find the first frame.
   */
  addReplica(hfn: number, of: Shared): Shared {
    const e: Shared = { kind: 'shared', hfn, key: of.key, refs: 0, zero: of.zero };
    this.byHfn.set(hfn, e);
    return e;
  }

  /** Makes e the frame new matches of its key find, if the key has no entry (its first frame went away). */
  promote(e: Shared): void {
    if (!this.table.has(e.key)) this.table.set(e.key, e);
    if (e.zero && !this.zero) this.zero = e;
  }

  /** One more page maps e. */
  ref(e: Shared): void {
    e.refs++;
    this.refs++;
  }

  /** One page fewer maps e; true if that was the last (e is then forgotten; its frame is the caller's). */
  unref(e: Shared): boolean {
    e.refs--;
    this.refs--;
    if (e.refs > 0) return false;
    this.forget(e);
    return true;
  }

  /** Removes a shared frame from the table (its frame is freed or handed back by the caller). */
  forget(e: Shared): void {
    if (this.table.get(e.key) === e) this.table.delete(e.key);
    this.byHfn.delete(e.hfn);
    if (this.zero === e) this.zero = null;
  }

  addHint(st: ScannedVm, gfn: number, key: number): void {
    const h: Hint = { kind: 'hint', st, gfn, key };
    this.table.set(key, h);
    st.hints.set(gfn, key);
    this.hintCount++;
  }

  dropHint(st: ScannedVm, gfn: number): void {
    const key = st.hints.get(gfn);
    if (key === undefined) return;
    st.hints.delete(gfn);
    const e = this.table.get(key);
    if (e?.kind === 'hint' && e.st === st && e.gfn === gfn) this.table.delete(key);
    this.hintCount--;
  }

  /** The shared frames and their reference counts (lowest hfn first). */
  sharedFrames(): { hfn: Hfn; refs: number; zero: boolean }[] {
    return [...this.byHfn.values()].map((e) => ({ hfn: e.hfn as Hfn, refs: e.refs, zero: e.zero }))
      .sort((a, b) => a.hfn - b.hfn);
  }
}
