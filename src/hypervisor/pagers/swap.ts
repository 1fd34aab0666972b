// Hypervisor swapping (ESX §3.3, "demand paging"): when ballooning cannot reclaim enough,
// the host writes guest frames to its own swap file without the guest's involvement and
// faults them back in when they are touched.
//
// Swap-out (swapOut / swapOutGfn): the victim's 4 KiB are written to a SwapFile slot, the
// p2m entry becomes SWAPPED | slot (its EPT leaf goes and shadow leaves of the old frame
// are zapped by the p2m listeners), and the host frame returns to the VM pool. Victims are
// chosen uniformly at random among the VM's plain present frames, as ESX does "to avoid
// pathological interactions with guest policies": not SHARED (the sharing pager owns those
// refcounts), not PAGE_TABLE (shadow paging tracks them), not TRAPPED (sampling owns the
// trap), not WRITE_PROTECTED (someone watches its writes). Every swap-out writes the page:
// there is no clean-page shortcut and no swap cache.
//
// Swap-in (resolve, the VmPager hook): a guest access (nested EPT violation, shadow-mode
// guest walk) or a host access through vm.memory to a SWAPPED gfn allocates a frame
// (OutOfFramesError propagates: the vCPU turns it into an OUT_OF_FRAMES exit, the caller
// reclaims and retries), reads and verifies the slot, maps the frame and frees the slot.
// A failed read (an I/O error, a short read, a corrupt slot) leaves the entry SWAPPED, the
// slot allocated and no frame taken, and throws (SwapIoError / SwapChecksumError, its
// message naming the VM and gfn): the access that needed the page cannot complete, so the
// vCPU's run throws it — that VM stops; other VMs and their slots are untouched.
// A failed write (ENOSPC, EIO, short) leaves the page resident and the slot free:
// swapOutGfn throws it; swapOut stops at it, counts it (writeErrors) and returns the
// frames freed so far, so a reclaimer sees exactly what it got.
// The modeled cost of a swap-in is one page read on the shared disk model
// (src/core/disk-model.ts: DEFAULT_DISK, 88 192 cycles, the same disk the guest's own
// swap disk uses, so both swap paths pay alike). Swap-out writes are not charged to the
// guest: swapOut writes at once (the manager's emergency path, when a VM needs a frame
// now); the memory manager's reallocations go through the swap daemon (swap-daemon.ts),
// which writes clusters asynchronously on the simulated clock (pickVictims, tryShare,
// commitWritten are its hooks here).
//
// Double paging (ESX §3.1): the guest OS picks for its own swap a page the host already
// swapped, so the host reads it back only for the guest to write it out again. watchGuest
// hooks a guest kernel's Swapper and counts such page-outs (the swap-in itself happens
// naturally when the guest reads the frame through its vCPU).
//
// Slots live in the 24-bit frame field of the p2m entry (SwapFile caps capacity at 2^24);
// slot 0 is legal because the entry also carries SWAPPED.

import { requirePageable } from '../monitor/paging.js';
import { type Gfn, type Hfn, hpaOf, hex } from '../../core/addr.js';
import type { PhysicalMemory } from '../../core/memory.js';
import { Rng } from '../../util/rng.js';
import type { HostFrames } from '../monitor/frames.js';
import { P2M, frameField } from '../monitor/p2m.js';
import type { Vm, VmPager } from '../monitor/vm.js';
import { SwapFile, SwapIoError, SwapChecksumError, SLOT_BYTES } from './swapfile.js';
import { DEFAULT_DISK, checkDisk, pageTransferCycles, type DiskModel } from '../../core/disk-model.js';

export { SwapFile, SwapFullError, SwapChecksumError, SwapIoError, nodeSwapIo, slotChecksum, SLOT_BYTES, MAX_SLOTS,
  type SwapFileOptions, type SwapFileStats, type SwapIo } from './swapfile.js';

/** Default modeled cycles of one swap-in: one page read on the default disk model. */
export const DEFAULT_SWAP_IN_CYCLES = pageTransferCycles(DEFAULT_DISK);
/** Default swap file size in slots when HostSwap creates its own (256 MiB, sparse on disk). */
export const DEFAULT_SWAP_SLOTS = 1 << 16;

/** State bits that keep a present frame from being swapped (see the header). */
const UNSWAPPABLE = P2M.SHARED | P2M.PAGE_TABLE | P2M.TRAPPED | P2M.WRITE_PROTECTED;

/** True if a p2m entry is a plain present frame the host may swap out. */
export const isSwappable = (word: number): boolean => (word & (P2M.PRESENT | UNSWAPPABLE)) === P2M.PRESENT;

/** What HostSwap needs from the hypervisor (a Hypervisor fits). */
export interface SwapHost {
  readonly frames: HostFrames;
  readonly machine: { readonly memory: PhysicalMemory };
}

export interface HostSwapOptions {
  /** A swap store to use (HostSwap.close leaves it open). Default: a new SwapFile. */
  file?: SwapFile;
  /** For a new SwapFile: its path (default: a temporary directory) and capacity in slots. */
  path?: string;
  capacity?: number;
  /** Seed of the victim-choice Rng (default 0x5eed5a9). */
  seed?: number;
  /** The swap disk (default DEFAULT_DISK): a swap-in costs one page transfer on it. */
  disk?: DiskModel;
  /** Modeled cycles charged per swap-in, overriding the disk's page transfer (tests). */
  swapInCycles?: number;
}

export interface SwapStats {
  swapOuts: number;
  swapIns: number;
  /** Slots holding this VM's (or all VMs') pages now. */
  slotsInUse: number;
  bytesWritten: number;
  bytesRead: number;
  /** Guest page-outs of gfns the host had already swapped (double paging). */
  doubleSwaps: number;
  /** Modeled cycles returned by swap-ins. */
  swapInCycles: number;
  /** Swap-outs that failed to write (the page stayed resident) and swap-ins that failed to read. */
  writeErrors: number;
  readErrors: number;
}

/** The hook a guest kernel's swapper offers (guests/kernel/swap.ts Swapper). */
export interface GuestPageOutHook { beforePageOut?: (gfn: number) => void }

interface VmSwap { stats: SwapStats; slots: Set<number> }

const zeroStats = (): SwapStats =>
  ({ swapOuts: 0, swapIns: 0, slotsInUse: 0, bytesWritten: 0, bytesRead: 0, doubleSwaps: 0, swapInCycles: 0,
    writeErrors: 0, readErrors: 0 });

export class HostSwap implements VmPager {
  readonly name = 'swap';
  readonly file: SwapFile;
  readonly swapInCycles: number;
  private readonly ownsFile: boolean;
  private readonly rng: Rng;
  private readonly vms = new Map<Vm, VmSwap>();
  private readonly total: SwapStats = zeroStats();

  constructor(private readonly host: SwapHost, o: HostSwapOptions = {}) {
    const c = o.swapInCycles ?? pageTransferCycles(checkDisk(o.disk ?? DEFAULT_DISK));
    if (!Number.isFinite(c) || c < 0) throw new RangeError(`swapInCycles must be a non-negative number, got ${c}`);
    if (o.file && (o.path !== undefined || o.capacity !== undefined)) {
      throw new Error('HostSwap: give either a SwapFile or path/capacity for a new one, not both');
    }
    this.swapInCycles = c;
    this.ownsFile = !o.file;
    this.file = o.file ?? new SwapFile({ capacity: o.capacity ?? DEFAULT_SWAP_SLOTS, path: o.path });
    this.rng = new Rng(o.seed ?? 0x5eed5a9);
  }

  /** Installs this pager on vm (idempotent); swapOut and watchGuest do it themselves. */
  attach(vm: Vm): void { this.state(vm); }

  private state(vm: Vm): VmSwap {
    if (vm.isDestroyed) throw new Error(`VM ${vm.id} was destroyed: nothing to swap`);
    requirePageable(vm, 'its guest-physical frames are host frames, it cannot be swapped');
    let s = this.vms.get(vm);
    if (!s) {
      s = { stats: zeroStats(), slots: new Set() };
      this.vms.set(vm, s);
      vm.addPager(this);
    }
    return s;
  }

  /**
   * Swaps out up to `count` of vm's swappable frames, chosen uniformly at random with
   * `rng` (default: this swap's seeded Rng). Returns the host frames freed: fewer than
   * `count` when the VM has fewer swappable frames or the swap file fewer free slots, or
   * when a write fails (SwapIoError: that page stays resident; counted in writeErrors).
   */
  swapOut(vm: Vm, count: number, rng: Rng = this.rng): number {
    if (!Number.isInteger(count) || count < 0) throw new RangeError(`swapOut count must be a non-negative integer, got ${count}`);
    const victims = this.pickVictims(vm, Math.min(count, this.file.freeSlots), rng);
    let freed = 0;
    for (let i = 0; i < victims.length; i++) {
      if (this.tryShare(vm, victims[i])) { freed++; continue; } // freed without a write
      // Sharing may have made the page shared without freeing one of this VM's frames (its
      // content joined another VM's page): it is no longer this VM's to swap.
      if (!isSwappable(vm.p2m.raw(victims[i]))) continue;
      try {
        this.swapOutGfn(vm, victims[i]);
        freed++;
      } catch (e) {
        if (!(e instanceof SwapIoError)) throw e;
        this.countError(vm, 'writeErrors');
        return freed; // the disk is failing: stop, report what was freed
      }
    }
    return freed;
  }

  /**
   * Up to `count` of vm's swappable gfns, uniformly at random (the first `count` of a
   * random permutation: partial Fisher–Yates), except those in `skip`.
   */
  pickVictims(vm: Vm, count: number, rng: Rng = this.rng, skip?: ReadonlySet<number>): Gfn[] {
    this.state(vm);
    const cands: Gfn[] = [];
    vm.p2m.forEach((g) => { if (!skip?.has(g)) cands.push(g); }, P2M.PRESENT | UNSWAPPABLE, P2M.PRESENT);
    const n = Math.min(count, cands.length);
    for (let i = 0; i < n; i++) {
      const j = i + rng.below(cands.length - i);
      [cands[i], cands[j]] = [cands[j], cands[i]];
    }
    return cands.slice(0, n);
  }

  /**
   * ESX "always attempts to share a page before paging it out" (§4.3): set by whoever owns
   * page sharing (the memory manager); returns true if the gfn became shared.
   */
  shareFirst?: (vm: Vm, gfn: Gfn) => boolean;
  /** Pages a swap-out freed by sharing them instead of writing them. */
  sharedInsteadOfSwapped = 0;

  /** Shares gfn instead of swapping it if sharing is set up and its content is already shared; true if that freed its frame. */
  tryShare(vm: Vm, gfn: Gfn): boolean {
    if (!this.shareFirst) return false;
    const before = this.host.frames.usedBy(vm.id);
    if (!this.shareFirst(vm, gfn) || this.host.frames.usedBy(vm.id) >= before) return false;
    this.sharedInsteadOfSwapped++;
    return true;
  }

  /**
   * Swaps out one gfn. Throws (changing nothing) if it is not swappable (see isSwappable),
   * if the VM does not own its frame, or if the swap file is full (SwapFullError).
   */
  swapOutGfn(vm: Vm, gfn: Gfn): void {
    const s = this.state(vm);
    const w = vm.p2m.raw(gfn);
    if (!isSwappable(w)) throw new Error(`gfn ${hex(gfn)} of VM ${vm.id} is not swappable (p2m ${hex(w)}): ${why(w)}`);
    const hfn = frameField(w) as Hfn;
    const owner = this.host.frames.ownerOf(hfn);
    if (owner !== vm.id) throw new Error(`gfn ${hex(gfn)} of VM ${vm.id} maps host frame ${hex(hfn)}, owned by ${owner}`);
    const data = this.host.machine.memory.read(hpaOf(hfn), SLOT_BYTES);
    const slot = this.file.alloc();
    try {
      this.file.write(slot, data);
      this.unmapToSlot(vm, gfn, hfn, slot);
    } catch (e) {
      this.file.free(slot);
      throw e;
    }
    this.host.frames.free(hfn, vm.id);
    s.slots.add(slot);
    this.count(s, 'swapOuts', 1, 'bytesWritten');
  }

  /**
   * Completes an asynchronous write-out (the swap daemon's): `slot` already holds gfn's
   * bytes as they were in frame hfn. If gfn still maps hfn, is still swappable and its
   * bytes are still those written (`written`), the p2m entry becomes SWAPPED | slot and
   * the frame is freed: true. Otherwise (the guest wrote the page meanwhile, it was
   * shared, ballooned, swapped or remapped) nothing changes and the caller frees the
   * slot: false. Throws only if the EPT update fails (the mapping is then restored).
   */
  commitWritten(vm: Vm, gfn: Gfn, hfn: Hfn, slot: number, written: Uint8Array): boolean {
    const s = this.vms.get(vm);
    if (!s || vm.isDestroyed) return false;
    const w = vm.p2m.raw(gfn);
    if (!isSwappable(w) || frameField(w) !== hfn || this.host.frames.ownerOf(hfn) !== vm.id) return false;
    if (!sameBytes(this.host.machine.memory.read(hpaOf(hfn), SLOT_BYTES), written)) return false; // re-dirtied
    this.unmapToSlot(vm, gfn, hfn, slot);
    this.host.frames.free(hfn, vm.id);
    s.slots.add(slot);
    for (const t of [s.stats, this.total]) { t.swapOuts++; t.slotsInUse++; } // its bytes were counted when written
    return true;
  }

  /** Counts bytes written for vm by a clustered write (the daemon's), whatever becomes of the pages. */
  countWritten(vm: Vm, bytes: number): void {
    const s = this.state(vm);
    s.stats.bytesWritten += bytes;
    this.total.bytesWritten += bytes;
  }

  /** Counts a failed write for vm (the daemon's clustered write). */
  countWriteError(vm: Vm): void { this.countError(vm, 'writeErrors'); }

  /** p2m → SWAPPED | slot; if the EPT update fails (a split needs a table frame), the mapping is restored. */
  private unmapToSlot(vm: Vm, gfn: Gfn, hfn: Hfn, slot: number): void {
    try {
      vm.p2m.unmap(gfn, P2M.SWAPPED, slot);
    } catch (e) {
      vm.p2m.map(gfn, hfn); // the EPT still translates gfn to hfn, so this only rewrites the p2m word
      throw e;
    }
  }

  /** The VmPager hook: swaps gfn back in if it is swapped; null otherwise (not this pager's state). */
  resolve(vm: Vm, gfn: Gfn, word: number, _write: boolean): number | null {
    if (!(word & P2M.SWAPPED)) return null;
    const s = this.vms.get(vm);
    if (!s) return null; // not a VM this swap serves (another swap pager may hold it)
    const slot = frameField(word);
    if (!s.slots.has(slot)) {
      throw new Error(`gfn ${hex(gfn)} of VM ${vm.id} is swapped to slot ${slot}, which this swap does not hold for it`);
    }
    const hfn = this.host.frames.alloc(vm.id); // OutOfFramesError: the caller reclaims and retries
    try {
      this.host.machine.memory.write(hpaOf(hfn), this.file.read(slot)); // verifies the checksum
      this.mapFromSlot(vm, gfn, hfn, slot);
    } catch (e) {
      this.host.frames.free(hfn, vm.id);
      if (e instanceof SwapIoError || e instanceof SwapChecksumError) {
        this.countError(vm, 'readErrors');
        e.message = `swap-in of gfn ${hex(gfn)} of VM ${vm.id} failed: ${e.message}`;
      }
      throw e;
    }
    this.file.free(slot);
    s.slots.delete(slot);
    this.count(s, 'swapIns', -1, 'bytesRead');
    s.stats.swapInCycles += this.swapInCycles;
    this.total.swapInCycles += this.swapInCycles;
    return this.swapInCycles;
  }

  /** p2m → hfn; if the EPT update fails (no table frame), the entry goes back to SWAPPED | slot. */
  private mapFromSlot(vm: Vm, gfn: Gfn, hfn: Hfn, slot: number): void {
    try {
      vm.p2m.map(gfn, hfn);
    } catch (e) {
      vm.p2m.unmap(gfn, P2M.SWAPPED, slot);
      throw e;
    }
  }

  private countError(vm: Vm, what: 'writeErrors' | 'readErrors'): void {
    this.vms.get(vm)!.stats[what]++;
    this.total[what]++;
  }

  private count(s: VmSwap, what: 'swapOuts' | 'swapIns', slots: number, bytes: 'bytesWritten' | 'bytesRead'): void {
    for (const t of [s.stats, this.total]) { t[what]++; t.slotsInUse += slots; t[bytes] += SLOT_BYTES; }
  }

  /** VM teardown: frees every slot holding its pages (the counters stay readable). */
  /** A balloon took gfn: its swapped contents are not needed any more; free the slot, leave it unbacked. */
  discard(vm: Vm, gfn: Gfn, word: number): boolean {
    const s = this.vms.get(vm);
    const slot = frameField(word);
    if (!(word & P2M.SWAPPED) || !s || !s.slots.has(slot)) return false;
    vm.p2m.unmap(gfn);
    this.file.free(slot);
    s.slots.delete(slot);
    s.stats.slotsInUse--;
    this.total.slotsInUse--;
    return true;
  }

  /**
   * Live migration with the swap file on storage both hosts reach (VMFS, as VMotion's): hands
   * gfn's slot to another VM without reading it. The gfn becomes unbacked here and the slot
   * stays allocated; the destination's swap calls adopt. Returns the slot.
   */
  release(vm: Vm, gfn: Gfn): number {
    const s = this.vms.get(vm);
    const w = vm.p2m.raw(gfn), slot = frameField(w);
    if (!(w & P2M.SWAPPED) || !s || !s.slots.has(slot)) throw new Error(`gfn ${hex(gfn)} of VM ${vm.id} is not swapped by this swap (p2m ${hex(w)})`);
    vm.p2m.unmap(gfn);
    s.slots.delete(slot);
    s.stats.slotsInUse--;
    this.total.slotsInUse--;
    return slot;
  }

  /** Takes over a slot another HostSwap on the same file released (see release): gfn becomes SWAPPED | slot. */
  adopt(vm: Vm, gfn: Gfn, slot: number, from: HostSwap): void {
    if (from.file !== this.file) throw new Error('a swap slot can only be adopted from a swap on the same file');
    const s = this.state(vm);
    const w = vm.p2m.raw(gfn);
    if (w & (P2M.PRESENT | P2M.SWAPPED | P2M.SHARED)) throw new Error(`gfn ${hex(gfn)} of VM ${vm.id} is in use (p2m ${hex(w)}): unback it first`);
    if (s.slots.has(slot)) throw new Error(`slot ${slot} is already VM ${vm.id}'s`);
    vm.p2m.unmap(gfn, P2M.SWAPPED, slot);
    s.slots.add(slot);
    s.stats.slotsInUse++;
    this.total.slotsInUse++;
  }

  detach(vm: Vm): void {
    const s = this.vms.get(vm);
    if (!s) return;
    for (const slot of s.slots) this.file.free(slot);
    this.total.slotsInUse -= s.slots.size;
    s.stats.slotsInUse = 0;
    s.slots.clear();
  }

  /**
   * Records a guest page-out of gfn: if the host has it swapped, that is double paging
   * (counted; returns true). The guest's read of the frame then swaps it in as usual.
   */
  noteGuestPageOut(vm: Vm, gfn: number): boolean {
    const s = this.state(vm);
    if (!(vm.p2m.raw(gfn as Gfn) & P2M.SWAPPED)) return false;
    s.stats.doubleSwaps++;
    this.total.doubleSwaps++;
    return true;
  }

  /** Counts double paging by a guest kernel's swapper (chains any hook already set). Returns the unwatch function. */
  watchGuest(vm: Vm, swapper: GuestPageOutHook): () => void {
    this.state(vm);
    const prev = swapper.beforePageOut;
    const hook = (gfn: number): void => { this.noteGuestPageOut(vm, gfn); prev?.(gfn); };
    swapper.beforePageOut = hook;
    return () => { if (swapper.beforePageOut === hook) swapper.beforePageOut = prev; };
  }

  /** Counters for one VM, or totals over every VM this swap has served. */
  stats(vm?: Vm): SwapStats {
    if (!vm) return { ...this.total };
    const s = this.vms.get(vm);
    return s ? { ...s.stats } : zeroStats();
  }

  /** The slots holding vm's pages (for tests and tools). */
  slotsOf(vm: Vm): number[] { return [...(this.vms.get(vm)?.slots ?? [])].sort((a, b) => a - b); }

  /** Closes the swap file if this swap created it (its temporary directory is removed). Swapped pages are lost. */
  close(): void { if (this.ownsFile) this.file.close(); }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function why(w: number): string {
  if (!(w & P2M.PRESENT)) return 'not present';
  const names: [number, string][] = [[P2M.SHARED, 'shared'], [P2M.PAGE_TABLE, 'a guest page table'],
    [P2M.TRAPPED, 'trapped for sampling'], [P2M.WRITE_PROTECTED, 'write-protected']];
  return names.filter(([b]) => w & b).map(([, n]) => n).join(', ');
}
