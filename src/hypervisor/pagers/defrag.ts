// The large-page defragmenter: puts 2 MiB EPT leaves back where sharing, sampling or a
// fragmented pool left a 2 MiB guest range mapped by 512 4 KiB leaves.
//
// Splits are cheap and happen on their own (sharing one 4 KiB part of a 2 MiB leaf splits
// it, ept.ts); nothing ever coalesced them again. A pass of this daemon looks at every
// 2 MiB-aligned gfn range ("chunk") of a nested VM that is not mapped large and:
//
//   1. classifies the chunk's 512 p2m entries:
//        private  present, no other state            → can be moved
//        shared   present, SHARED (copy-on-write)     → can be un-shared, at one frame each
//        other    unbacked, swapped, ballooned, trapped, write-protected, page table,
//                 dirty-logged for a migration → skip
//   2. skips the chunk when it has `other` entries or more than `maxSharedParts` shared ones
//      (the explicit trade-off: each shared part costs a host frame to keep the range large);
//   3. picks a target run of 512 contiguous, 2 MiB-aligned host frames: in place when every
//      frame of the run the chunk's private pages mostly sit in is either already the right
//      one or free (the common case: sharing freed a few frames of the original run), else a
//      free aligned run from the pool;
//   4. un-shares the shared parts (the sharing pager's copy-on-write break), copies each
//      page that is not already in place into its slot of the run, remaps the p2m without
//      per-page EPT updates, frees the old frames, and installs one 2 MiB leaf (one INVEPT).
//
// Compaction (moving other owners' frames out of a run) is left out: a chunk with no free
// run is counted as `noRun`. Shadow VMs are skipped: their host page size is the shadow
// tables' 4 KiB, and large shadow mappings are not modelled.
// Copy cost: `copyCycles` per 4 KiB page moved (default 1000: 4 KiB at ~4 B/cycle, the
// same figure the sharing pager uses for a copy-on-write copy).

import { type Gfn, type Hfn } from '../../core/addr.js';
import { PAGE_2M } from '../../core/bits.js';
import { P2M, frameField } from '../monitor/p2m.js';
import type { HostFrames } from '../monitor/frames.js';
import type { Vm } from '../monitor/vm.js';

export const CHUNK = 512; // 4 KiB frames in 2 MiB

export interface DefragOptions {
  /** Shared 4 KiB parts a chunk may have and still be made large (each costs a frame). Default 0. */
  maxSharedParts?: number;
  /** Chunks made large per pass at most (a daemon's rate limit). Default: no limit. */
  maxChunksPerPass?: number;
  /** Modeled cycles per 4 KiB page copied (default 1000). */
  copyCycles?: number;
}

export interface DefragPass {
  /** Chunks looked at (whole 2 MiB ranges inside the VM). */
  chunks: number;
  alreadyLarge: number;
  /** Chunks given a 2 MiB leaf by this pass. */
  restored: number;
  /** … of which in place (no new run taken). */
  inPlace: number;
  /** Skipped: an entry is unbacked, swapped, ballooned, trapped, write-protected or a page table. */
  notMovable: number;
  /** Skipped: more shared parts than maxSharedParts. */
  tooShared: number;
  /** Skipped: no free contiguous aligned run of host frames. */
  noRun: number;
  /** Shared parts un-shared to restore chunks (host frames this pass cost in sharing). */
  unshared: number;
  /** 4 KiB pages copied. */
  copied: number;
  /** Modeled cycles (copies and un-sharing). */
  cycles: number;
}

interface Chunk { g: number; shared: number[]; movable: boolean }

/** The defragmenter for one host's VMs (stateless between passes but for its options). */
export class Defragmenter {
  private readonly maxShared: number;
  private readonly maxChunks: number;
  private readonly copyCycles: number;

  constructor(private readonly frames: HostFrames, o: DefragOptions = {}) {
    this.maxShared = o.maxSharedParts ?? 0;
    this.maxChunks = o.maxChunksPerPass ?? Infinity;
    this.copyCycles = o.copyCycles ?? 1000;
    if (!Number.isInteger(this.maxShared) || this.maxShared < 0 || this.maxShared > CHUNK) {
      throw new RangeError(`maxSharedParts must be an integer in 0..${CHUNK}, got ${o.maxSharedParts}`);
    }
    if (!(this.maxChunks >= 1)) throw new RangeError(`maxChunksPerPass must be ≥ 1, got ${o.maxChunksPerPass}`);
  }

  /** One pass over `vm`'s chunks. */
  pass(vm: Vm): DefragPass {
    const r: DefragPass = { chunks: 0, alreadyLarge: 0, restored: 0, inPlace: 0, notMovable: 0, tooShared: 0, noRun: 0, unshared: 0, copied: 0, cycles: 0 };
    const ept = vm.ept;
    if (!ept || !vm.paging.eptWalked) return r;
    for (let g = 0; g + CHUNK <= vm.frameCount && r.restored < this.maxChunks; g += CHUNK) {
      r.chunks++;
      if (ept.lookup(g as Gfn)?.size === PAGE_2M) { r.alreadyLarge++; continue; }
      const c = classify(vm, g);
      if (!c.movable) { r.notMovable++; continue; }
      if (c.shared.length > this.maxShared) { r.tooShared++; continue; }
      const target = this.targetRun(vm, g, c);
      if (target === null) { r.noRun++; continue; }
      if (this.frames.counts().vmFree < c.shared.length) { // un-sharing needs a frame per part
        this.release(vm, g, target);
        r.noRun++;
        continue;
      }
      for (const gfn of c.shared) {
        r.cycles += vm.resolve(gfn as Gfn, true) ?? 0; // copy-on-write break: now private
        r.unshared++;
      }
      r.copied += vm.relocateLarge(g as Gfn, target.base);
      r.restored++;
      if (target.inPlace) r.inPlace++;
    }
    r.cycles += r.copied * this.copyCycles;
    return r;
  }

  /** Gives back the frames targetRun claimed for a chunk that will not move after all. */
  private release(vm: Vm, g: number, t: { base: Hfn; inPlace: boolean }): void {
    for (let i = 0; i < CHUNK; i++) {
      const h = (t.base + i) as Hfn;
      const w = vm.p2m.raw((g + i) as Gfn);
      const mapped = (w & P2M.PRESENT) !== 0 && (w & P2M.SHARED) === 0 && frameField(w) === h;
      if (!(t.inPlace && mapped)) this.frames.free(h, vm.id);
    }
  }

  /**
   * The run the chunk goes to. In place: the aligned run holding the chunk's first private
   * page's "home" frame, if each of its frames is already the chunk's page in that slot or
   * free (those are claimed now). Else a free aligned run. null if neither exists.
   */
  private targetRun(vm: Vm, g: number, c: Chunk): { base: Hfn; inPlace: boolean } | null {
    const home = homeRun(vm, g);
    if (home !== null) {
      const free: number[] = [];
      let ok = true;
      for (let i = 0; i < CHUNK && ok; i++) {
        const w = vm.p2m.raw((g + i) as Gfn);
        if ((w & P2M.SHARED) === 0 && frameField(w) === home + i) continue;
        if (this.frames.ownerOf((home + i) as Hfn) === 0 && home + i < this.frames.hypervisorStart) free.push(home + i);
        else ok = false;
      }
      if (ok) {
        for (const h of free) this.frames.claimRange(vm.id, h, 1);
        return { base: home as Hfn, inPlace: true };
      }
    }
    const base = this.frames.tryAllocContiguous(vm.id, CHUNK, CHUNK);
    return base === null ? null : { base, inPlace: false };
  }
}

/** The chunk's shared gfns, and whether every entry is private or shared (nothing else). */
function classify(vm: Vm, g: number): Chunk {
  const shared: number[] = [];
  const other = P2M.SWAPPED | P2M.BALLOONED | P2M.TRAPPED | P2M.WRITE_PROTECTED | P2M.PAGE_TABLE | P2M.LOGGED;
  for (let i = 0; i < CHUNK; i++) {
    const w = vm.p2m.raw((g + i) as Gfn);
    if ((w & P2M.PRESENT) === 0 || (w & other) !== 0) return { g, shared, movable: false };
    if (w & P2M.SHARED) shared.push(g + i);
  }
  return { g, shared, movable: true };
}

/** The 2 MiB-aligned host run most of the chunk's private pages sit in at their own slot, or null. */
function homeRun(vm: Vm, g: number): number | null {
  const votes = new Map<number, number>();
  for (let i = 0; i < CHUNK; i++) {
    const w = vm.p2m.raw((g + i) as Gfn);
    if (w & P2M.SHARED) continue;
    const base = frameField(w) - i;
    if (base >= 0 && base % CHUNK === 0) votes.set(base, (votes.get(base) ?? 0) + 1);
  }
  let best: number | null = null, n = 0;
  for (const [b, k] of votes) if (k > n) { best = b; n = k; }
  return best;
}
