// Dirty-page tracking for live migration: which guest frames changed since the last
// pre-copy round. Two mechanisms, as hypervisors offer them:
//
// - 'ept-dirty' (nested paging, EPT A/D on): the core sets the D bit (9) of an EPT leaf on
//   the first write through it. Each round the tracker walks the EPT, collects the leaves
//   with D set, clears them and invalidates once (KVM's D-bit harvesting; PML without the
//   log buffer). The guest takes no exit; the cost is the host's scan and the TLB refills
//   after the INVEPT. A 2 MiB / 1 GiB leaf reports all its frames. With EPT A/D on, guest
//   page-table reads count as writes (SDM 28.3.5), so page-table pages look dirty whenever
//   the guest walks them.
// - 'write-protect' (shadow or nested paging): every present private frame is marked
//   LOGGED in the p2m, so the EPT maps it read-only and shadow leaves of it are zapped and
//   refilled read-only. The first guest write exits; this pager (a VmPager) records it and
//   clears LOGGED, and the write is retried (KVM's write-protection dirty logging, the only
//   way under shadow paging). Each round re-protects the frames found dirty.
//
// Both also mark, whatever the mechanism: every p2m change that alters a gfn's frame or
// backing state (a first touch, a swap-out or -in, a copy-on-write break, a sharing merge,
// a balloon inflation), and every host-side write through vm.memory (DMA, the loader),
// which neither D bits nor write traps see.
//
// The result is a bitmap, one bit per gfn:
//   word = gfn >> 5, bit = gfn & 31; take() returns the set gfns in ascending order and clears.

import type { Gfn } from '../../core/addr.js';
import { P2M } from '../monitor/p2m.js';
import type { Vm, VmPager } from '../monitor/vm.js';

export type DirtyTracking = 'ept-dirty' | 'write-protect';

/** Modeled cycles of dirty tracking (the host's side; guest exits are charged by the vCPU). */
export interface DirtyCosts {
  /** Host work per EPT leaf examined in a D-bit harvest. */
  scanPerLeaf: number;
  /** One INVEPT after a harvest cleared D bits. */
  invept: number;
  /** Host work to write-protect one frame (p2m, EPT entry, shadow zap). */
  protectPerPage: number;
  /** A logged write's handling beyond the exit itself (record, unprotect); the guest waits for it. */
  wpFault: number;
}

export const DEFAULT_DIRTY_COSTS: DirtyCosts = { scanPerLeaf: 4, invept: 500, protectPerPage: 60, wpFault: 300 };

export interface DirtyStats {
  /** Rounds harvested. */
  harvests: number;
  /** ept-dirty: EPT leaves examined, leaves found dirty, INVEPTs issued. */
  leavesScanned: number; dirtyLeaves: number; invepts: number;
  /** write-protect: frames protected, write exits logged (each one a guest VM exit). */
  pagesProtected: number; wpFaults: number;
  /** gfns marked by p2m changes and by host writes. */
  p2mChanges: number; hostWrites: number;
  /** Host-side cycles (scans, INVEPTs, protection); guest-side cycles of logged writes. */
  hostCycles: number; guestCycles: number;
}

/** A set of gfns as a bitmap. */
export class DirtyBitmap {
  private readonly words: Uint32Array;
  private n = 0;
  constructor(readonly frames: number) { this.words = new Uint32Array(Math.ceil(frames / 32)); }

  set(gfn: number): void {
    const w = gfn >>> 5, b = 1 << (gfn & 31);
    if (this.words[w] & b) return;
    this.words[w] |= b;
    this.n++;
  }

  has(gfn: number): boolean { return (this.words[gfn >>> 5] & (1 << (gfn & 31))) !== 0; }
  get count(): number { return this.n; }

  /** The set gfns in ascending order; the bitmap is empty afterwards. */
  take(): number[] {
    const out: number[] = [];
    for (let w = 0; w < this.words.length; w++) {
      let v = this.words[w];
      while (v !== 0) {
        const b = 31 - Math.clz32(v & -v);
        out.push(w * 32 + b);
        v &= v - 1;
      }
      this.words[w] = 0;
    }
    this.n = 0;
    return out;
  }
}

/** A p2m change alters what the destination must hold: a new frame, or a new backing state. */
const REPRESENTATION = P2M.PRESENT | P2M.SHARED | P2M.SWAPPED | P2M.BALLOONED | 0x00ff_ffff;

export class DirtyTracker implements VmPager {
  readonly name = 'dirty-log';
  readonly stats: DirtyStats = { harvests: 0, leavesScanned: 0, dirtyLeaves: 0, invepts: 0, pagesProtected: 0,
    wpFaults: 0, p2mChanges: 0, hostWrites: 0, hostCycles: 0, guestCycles: 0 };
  private readonly bitmap: DirtyBitmap;
  private readonly undo: (() => void)[] = [];
  private stopped = false;

  constructor(readonly vm: Vm, readonly method: DirtyTracking, readonly costs: DirtyCosts = DEFAULT_DIRTY_COSTS) {
    if (!vm.ept) throw new Error(`VM ${vm.id} is ${vm.mode}: dirty tracking needs a p2m it can remap (nested or shadow paging)`);
    if (method === 'ept-dirty' && !(vm.paging.eptWalked && (vm.ept.eptp & 0x40n) !== 0n)) {
      throw new Error(`VM ${vm.id}: 'ept-dirty' tracking needs nested paging with EPT A/D flags on (mode ${vm.mode}); use 'write-protect'`);
    }
    if (method !== 'ept-dirty' && method !== 'write-protect') throw new RangeError(`dirty tracking must be 'ept-dirty' or 'write-protect', got ${String(method)}`);
    this.bitmap = new DirtyBitmap(vm.frameCount);
    this.undo.push(vm.p2m.onChange((gfn, before, after) => {
      if (((before ^ after) & REPRESENTATION) !== 0) { this.stats.p2mChanges++; this.bitmap.set(gfn); }
    }));
    this.undo.push(vm.watchHostWrites((gfn) => { this.stats.hostWrites++; this.bitmap.set(gfn); }));
    if (method === 'write-protect') vm.addPager(this);
    this.arm();
  }

  /** Starts a clean log: clears D bits, or protects every present private frame. */
  private arm(): void {
    if (this.method === 'ept-dirty') this.harvestEpt(() => {});
    else this.protect(allGfns(this.vm.frameCount));
    this.bitmap.take();
  }

  /** The gfns dirtied since the last call (or since the tracker started); re-arms tracking for them. */
  harvest(): number[] {
    this.live();
    this.stats.harvests++;
    if (this.method === 'ept-dirty') this.harvestEpt((g, n) => { for (let i = 0; i < n; i++) this.bitmap.set(g + i); });
    const dirty = this.bitmap.take();
    if (this.method === 'write-protect') this.protect(dirty);
    return dirty;
  }

  /** gfns dirtied since the last harvest, without taking them. */
  get pending(): number { return this.bitmap.count; }

  private harvestEpt(fn: (gfn: Gfn, frames: number) => void): void {
    const r = this.vm.ept!.harvestDirty(fn);
    this.stats.leavesScanned += r.leaves;
    this.stats.dirtyLeaves += r.dirty;
    this.stats.hostCycles += r.leaves * this.costs.scanPerLeaf;
    if (r.dirty > 0) { this.stats.invepts++; this.stats.hostCycles += this.costs.invept; }
  }

  /** Marks the present private frames among gfns LOGGED (read-only until their next write), one invalidation. */
  private protect(gfns: Iterable<number>): void {
    const p2m = this.vm.p2m;
    let n = 0;
    this.vm.ept!.batch(() => {
      for (const g of gfns) {
        const w = p2m.raw(g as Gfn);
        if ((w & (P2M.PRESENT | P2M.SHARED | P2M.LOGGED)) !== P2M.PRESENT) continue;
        p2m.setState(g as Gfn, P2M.LOGGED);
        n++;
      }
    });
    this.stats.pagesProtected += n;
    this.stats.hostCycles += n * this.costs.protectPerPage;
  }

  /** VmPager: a write to a LOGGED frame: record it, open the frame; the guest pays wpFault (its vCPU adds the exit). */
  resolve(vm: Vm, gfn: Gfn, word: number, write: boolean): number | null {
    if (vm !== this.vm || !(word & P2M.LOGGED)) return null;
    if (!write) return 0;
    this.bitmap.set(gfn);
    vm.p2m.setState(gfn, 0, P2M.LOGGED);
    this.stats.wpFaults++;
    this.stats.guestCycles += this.costs.wpFault;
    return this.costs.wpFault;
  }

  /** Stops tracking: unprotects every LOGGED frame and unhooks from the VM. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    for (const u of this.undo) u();
    if (this.method === 'write-protect' && !this.vm.isDestroyed) {
      const p2m = this.vm.p2m;
      this.vm.ept!.batch(() => p2m.forEach((g) => p2m.setState(g, 0, P2M.LOGGED), P2M.LOGGED, P2M.LOGGED));
      this.vm.removePager(this);
    }
  }

  private live(): void { if (this.stopped) throw new Error('the dirty tracker was stopped'); }
}

function* allGfns(n: number): Iterable<number> { for (let g = 0; g < n; g++) yield g; }
