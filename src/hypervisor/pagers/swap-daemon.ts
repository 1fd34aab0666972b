// The swap daemon (ESX §3.3): "a higher-level policy module" sets per-VM target swap
// levels; the daemon picks candidate pages and writes them asynchronously, clustering
// writes into contiguous swap-file slots. Writes take disk time, and a page stays resident
// (readable and writable by its guest) until its write completes.
//
//   setTarget(vm, n) ──► wanted[vm] = n ─► kick: disk idle? pick the VM that wants most,
//                                           up to CLUSTER random victims (share-before-swap
//                                           first), one run of contiguous slots, snapshot
//                                           the frames, one disk transfer
//                                              │  transferCycles(disk, pages · 4 KiB) later
//                                              ▼
//   complete: per page, still mapping the same frame, still swappable, bytes unchanged?
//             yes: p2m → SWAPPED | slot, frame freed     no: slot freed (the write is void:
//             the guest touched the page, or someone else took it) ─► kick the next cluster
//
// One cluster is in flight at a time (one disk queue), back to back: the next transfer
// starts when the last one ended, even if the clock (which moves in guest batches) noticed
// the completion later. Victims are chosen when the completion is handled, not at
// setTarget, so they are fresh. A guest write to a page under write-out
// re-dirties it: the page stays resident with its new bytes and its slot is freed at
// completion (checked by comparing the frame with the bytes written, so a store of the
// same value is harmless: the disk copy is still right). Reads never disturb a write-out.
//
// Cluster size: 16 pages (64 KiB). The paper states no size. On the shared disk model
// (40 µs latency, 1 GB/s) a transfer's latency equals its data time at ~40 KB, so 16 pages
// put a cluster past that break-even: 16 pages cost 211 072 cycles, 6.7× less than 16
// single-page writes (1 411 072); 64 KiB is also a common storage I/O size. Larger clusters
// save little more (latency is already < 40 % of the transfer) and keep pages resident
// longer (a 16-page cluster holds them ~106 µs).

import type { Gfn, Hfn } from '../../core/addr.js';
import { hpaOf } from '../../core/addr.js';
import { DEFAULT_DISK, checkDisk, transferCycles, type DiskModel } from '../../core/disk-model.js';
import { frameField } from '../monitor/p2m.js';
import type { Vm } from '../monitor/vm.js';
import { SwapIoError, SLOT_BYTES } from './swapfile.js';
import { isSwappable, type HostSwap, type SwapHost } from './swap.js';

/** Pages per clustered write (see the header for why 16). */
export const SWAP_CLUSTER_PAGES = 16;

/** The clock the daemon runs on (a Scheduler is one): now in cycles, and a one-shot timer. */
export interface SwapClock {
  readonly now: number;
  after(cycles: number, fn: (now: number) => void): void;
}

export interface SwapDaemonOptions {
  /** Pages per clustered write (default SWAP_CLUSTER_PAGES). */
  clusterPages?: number;
  /** The swap disk (default DEFAULT_DISK, the disk every swap path shares). */
  disk?: DiskModel;
  /** Called when a cluster's writes complete with the frames they freed (and those share-before-swap freed). */
  onSwapped?: (vm: Vm, frames: number) => void;
}

export interface SwapDaemonStats {
  /** Disk transfers (one per cluster). */
  clusters: number;
  /** Pages written, pages swapped out by them, writes voided because the page changed or moved. */
  pagesWritten: number;
  pagesSwapped: number;
  cancelled: number;
  /** Victims freed by share-before-swap instead of a write. */
  sharedInstead: number;
  /** Cycles the disk spent writing. */
  diskCycles: number;
}

interface Cluster { vm: Vm; first: number; gfns: Gfn[]; hfns: Hfn[]; data: Uint8Array; shared: number }

export class SwapDaemon {
  readonly clusterPages: number;
  readonly disk: DiskModel;
  readonly stats: SwapDaemonStats = { clusters: 0, pagesWritten: 0, pagesSwapped: 0, cancelled: 0, sharedInstead: 0, diskCycles: 0 };
  private readonly wanted = new Map<Vm, number>();
  private current: Cluster | null = null;
  private readonly onSwapped?: (vm: Vm, frames: number) => void;

  constructor(private readonly swap: HostSwap, private readonly host: SwapHost, private readonly clock: SwapClock, o: SwapDaemonOptions = {}) {
    this.clusterPages = o.clusterPages ?? SWAP_CLUSTER_PAGES;
    if (!Number.isInteger(this.clusterPages) || this.clusterPages < 1 || this.clusterPages > 512) {
      throw new RangeError(`clusterPages must be 1..512, got ${this.clusterPages}`);
    }
    this.disk = checkDisk(o.disk ?? DEFAULT_DISK);
    this.onSwapped = o.onSwapped;
  }

  /**
   * vm's target swap level: swap out `frames` more frames, beyond those being written now
   * (replacing any earlier target not yet started; 0 cancels it). Writes start at once if
   * the disk is idle.
   */
  setTarget(vm: Vm, frames: number): void {
    if (!Number.isSafeInteger(frames) || frames < 0) throw new RangeError(`swap target must be a whole number of frames >= 0, got ${frames}`);
    if (frames === 0) this.wanted.delete(vm); else this.wanted.set(vm, frames);
    this.kick();
  }

  /** Frames vm still wants swapped that no write has started on. */
  pending(vm: Vm): number { return this.wanted.get(vm) ?? 0; }
  /** Pages of vm being written now (resident until their write completes). */
  inFlight(vm?: Vm): number {
    const c = this.current;
    return c && (vm === undefined || c.vm === vm) ? c.gfns.length : 0;
  }
  /** The gfns of vm being written now. */
  writing(vm: Vm): Gfn[] { return this.current?.vm === vm ? [...this.current.gfns] : []; }
  /** True while a cluster is being written. */
  get busy(): boolean { return this.current !== null; }

  /** Forgets vm's target (the VM leaves management); a write in flight still completes. */
  forget(vm: Vm): void { this.wanted.delete(vm); }

  /**
   * Starts the next cluster if the disk is idle and some VM wants swapping. `from`: when
   * the disk became idle (a completion's due time: the clock may have run past it while a
   * guest finished its batch, and the disk does not wait for the CPU).
   */
  private kick(from = this.clock.now): void {
    while (!this.current) {
      const vm = this.nextVm();
      if (!vm) return;
      this.start(vm, Math.min(from, this.clock.now));
    }
  }

  /** The VM that wants the most frames swapped (ties: lowest VM id), dropping destroyed ones. */
  private nextVm(): Vm | null {
    let best: Vm | null = null;
    for (const [vm, n] of [...this.wanted]) {
      if (vm.isDestroyed) { this.wanted.delete(vm); continue; }
      if (!best || n > this.wanted.get(best)! || (n === this.wanted.get(best)! && vm.id < best.id)) best = vm;
    }
    return best;
  }

  /** Picks vm's next cluster, writes it with one transfer and schedules its completion. */
  private start(vm: Vm, at: number): void {
    const want = this.wanted.get(vm)!;
    const picked = this.swap.pickVictims(vm, Math.min(want, this.clusterPages));
    const victims: Gfn[] = [];
    let shared = 0;
    for (const g of picked) {
      if (this.swap.tryShare(vm, g)) shared++;
      else if (isSwappable(vm.p2m.raw(g))) victims.push(g); // sharing may have made it shared without freeing a frame
    }
    const first = victims.length ? this.allocRun(victims.length) : null;
    const n = first === null ? 0 : first.count;
    // Nothing to write (no swappable page, or no free slot): this target cannot be met now.
    const left = picked.length === 0 || (victims.length > 0 && n === 0) ? 0 : want - shared - n;
    if (left > 0) this.wanted.set(vm, left); else this.wanted.delete(vm);
    this.stats.sharedInstead += shared;
    if (n === 0) { if (shared) this.onSwapped?.(vm, shared); return; }
    const gfns = victims.slice(0, n);
    const hfns = gfns.map((g) => frameField(vm.p2m.raw(g)) as Hfn);
    const data = new Uint8Array(n * SLOT_BYTES);
    hfns.forEach((h, i) => data.set(this.host.machine.memory.read(hpaOf(h), SLOT_BYTES), i * SLOT_BYTES));
    try {
      this.swap.file.writeRun(first!.slot, data);
    } catch (e) {
      for (let s = first!.slot; s < first!.slot + n; s++) this.swap.file.free(s);
      if (!(e instanceof SwapIoError)) throw e;
      this.swap.countWriteError(vm);
      this.wanted.delete(vm); // the disk is failing: stop swapping this VM until the next target
      if (shared) this.onSwapped?.(vm, shared);
      return;
    }
    this.swap.countWritten(vm, data.length);
    const cycles = transferCycles(this.disk, data.length);
    this.stats.clusters++;
    this.stats.pagesWritten += n;
    this.stats.diskCycles += cycles;
    const c: Cluster = { vm, first: first!.slot, gfns, hfns, data, shared };
    this.current = c;
    this.clock.after(Math.max(0, at + cycles - this.clock.now), (due) => this.complete(c, Math.max(due, at + cycles)));
  }

  /** A run of contiguous free slots for up to `n` pages: n if free, else the longest run tried by halving. */
  private allocRun(n: number): { slot: number; count: number } | null {
    for (let k = n; k >= 1; k = Math.floor(k / 2)) {
      const slot = this.swap.file.allocRun(k);
      if (slot !== null) return { slot, count: k };
    }
    return null;
  }

  /** The cluster's write is done: swap out the pages that are still as written, void the rest. */
  private complete(c: Cluster, due: number): void {
    this.current = null;
    const file = this.swap.file;
    let swapped = 0;
    for (let i = 0; i < c.gfns.length; i++) {
      const slot = c.first + i;
      const ok = !file.isClosed && this.swap.commitWritten(c.vm, c.gfns[i], c.hfns[i], slot,
        c.data.subarray(i * SLOT_BYTES, (i + 1) * SLOT_BYTES));
      if (ok) { swapped++; continue; }
      this.stats.cancelled++;
      if (!file.isClosed) file.free(slot);
    }
    this.stats.pagesSwapped += swapped;
    if (!c.vm.isDestroyed && swapped + c.shared > 0) this.onSwapped?.(c.vm, swapped + c.shared);
    if (!file.isClosed) this.kick(due);
  }
}
