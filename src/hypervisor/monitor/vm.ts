// One virtual machine: its guest-physical memory (p2m), its EPT, its vCPUs.
//
// Placement by mode:
// - nested: guest frames are backed on first touch by any free VM-pool frame (zeroed);
//   the EPT maps exactly the VM's backed gfns, so the guest can reach nothing else.
// - shadow: the same p2m and EPT (the EPT serves the shadow MMU's guest walker, which
//   therefore also sees only this VM's frames); the vCPU runs on shadow tables.
// - native: no virtualization, the guest's tables hold host-physical addresses. A native
//   VM owns host frames [0, n) (gpa = hpa), claimed at creation, and must be the only VM:
//   nothing can confine a guest that addresses host memory directly (it could also
//   reach the hypervisor region above it). It is the measurement baseline.

import type { Machine } from '../../core/machine.js';
import type { CpuOptions } from '../../core/cpu.js';
import { PAGE_4K, PAGE_2M, type PageSize } from '../../core/bits.js';
import { type Gfn, type Gpa, type Hfn, gfnOf, hpaOf, hfnOf, hpa as toHpa, hex } from '../../core/addr.js';
import { HV_OWNER, type HostFrames } from './frames.js';
import { P2m, P2M, isUnbacked, frameField, needsResolve } from './p2m.js';
import { Ept, RWX, eptRights, syncEntry } from './ept.js';
import { GuestMemory } from './gmem.js';
import { Vcpu } from './vcpu.js';
import type { ShadowBacking } from './shadow.js';
import { pagingFor, tableReserveFrames, DEFAULT_SHADOW_POOL_PAGES, type Paging } from './paging.js';
import type { HvCosts, VmMode } from './types.js';

export interface VmOptions {
  /** Guest-physical memory in bytes: a positive multiple of 4096, at most 64 GiB. */
  memoryBytes: number | bigint;
  mode: VmMode;
  /** Number of vCPUs (default 1; shadow mode supports 1, see ShadowMmu). */
  vcpus?: number;
  /** TLB / cache geometry and latencies of each vCPU. */
  cpu?: CpuOptions;
  eptLevels?: 4 | 5;
  /** EPT accessed/dirty flags (EPTP bit 6), default on in nested mode. */
  eptAd?: boolean;
  /** Shadow mode: most shadow pages per vCPU (default 4096; the pool is zapped before it would exceed this). */
  shadowPoolPages?: number;
  costs?: Partial<HvCosts>;
}

/** What a VM needs from its hypervisor. */
export interface VmHost {
  readonly machine: Machine;
  readonly frames: HostFrames;
  readonly costs: HvCosts;
  nextVpid(): number;
}

export interface VmStats {
  /** Guest frames backed (on first touch, by prefault, or by host-side writes). */
  pagesBacked: number;
  /** Hypervisor-region frames in use for this VM's paging structures (EPT and shadow tables). */
  tableFrames: number;
  /** Hypervisor-region frames of the VM's fixed and per-MiB overhead (allocOverhead). */
  overheadFrames: number;
  /** INVEPTs issued after EPT entries changed. */
  invepts: number;
  /** Shadow-table zaps caused by p2m changes or host writes to guest page tables. */
  shadowZaps: number;
  /** Pager resolutions (swap-ins, copy-on-write breaks, ended traps) and their modeled cycles. */
  resolves: number;
  pagerCycles: number;
}

const MAX_VM_BYTES = 64n * 2n ** 30n;

/**
 * A hypervisor service that owns some non-plain p2m states (swapped, shared, trapped) and
 * makes a gfn usable again when the guest or the host touches it (KVM's fault path
 * handing a gfn to the subsystem that knows it).
 */
export interface VmPager {
  readonly name: string;
  /**
   * gfn's entry is `word` and a (write) access needs it usable: resolve it (swap in,
   * copy-on-write break, end a sampling trap) and return the modeled cycles spent, or
   * null if the state is not this pager's. May throw OutOfFramesError (no frame yet).
   */
  resolve(vm: Vm, gfn: Gfn, word: number, write: boolean): number | null;
  /** The VM is being destroyed: release what the pager holds for it (shared refs, swap slots). */
  detach?(vm: Vm): void;
  /**
   * The guest gave gfn up (a balloon LOCK): drop what the pager holds for it (a shared
   * frame's reference, a swap slot) and leave it unbacked. False if the state is not this pager's.
   */
  discard?(vm: Vm, gfn: Gfn, word: number): boolean;
}

export class Vm {
  private bytes: bigint;
  private nFrames: number;
  /** Guest-physical memory in bytes (grows with hotAdd). */
  get memoryBytes(): bigint { return this.bytes; }
  /** Guest-physical memory in 4 KiB frames (grows with hotAdd). */
  get frameCount(): number { return this.nFrames; }
  readonly p2m: P2m;
  /** Nested: the EPT the vCPUs use. Shadow: the EPT the shadow MMU's guest walker uses. */
  readonly ept: Ept | null;
  /** The paging strategy, chosen once from the mode (paging.ts). */
  readonly paging: Paging;
  readonly vcpus: Vcpu[] = [];
  /** The host's view of guest-physical memory (backs on write). */
  readonly memory: GuestMemory;
  readonly costs: HvCosts;
  readonly stats: VmStats = { pagesBacked: 0, tableFrames: 0, overheadFrames: 0, invepts: 0, shadowZaps: 0, resolves: 0, pagerCycles: 0 };
  /**
   * The most hypervisor-region frames this VM's paging structures can hold (see
   * tableReserveFrames): what admission control reserves for them.
   */
  readonly tableReserve: number;
  private readonly tables = new Set<number>(); // hfns of this VM's paging-structure frames
  private readonly overhead: Hfn[] = [];        // hfns of its fixed / per-MiB overhead
  private bulk = false;                         // p2m writes whose EPT update the caller makes
  private readonly pagers: VmPager[] = [];
  private destroyed = false;

  constructor(private readonly host: VmHost, readonly id: number, readonly mode: VmMode, o: VmOptions) {
    this.bytes = checkBytes(o.memoryBytes);
    this.nFrames = Number(this.bytes >> 12n);
    this.costs = { ...host.costs, ...o.costs };
    const vcpus = o.vcpus ?? 1;
    if (!Number.isInteger(vcpus) || vcpus < 1 || vcpus > 64) throw new RangeError(`vcpus must be 1..64, got ${vcpus}`);
    this.paging = pagingFor(mode);
    if (vcpus > this.paging.maxVcpus) throw new RangeError(this.paging.maxVcpusReason ?? `${mode} VMs have at most ${this.paging.maxVcpus} vCPUs`);
    const shadowPages = o.shadowPoolPages ?? DEFAULT_SHADOW_POOL_PAGES;
    // At the cap a fill first zaps the pool to its root, then adds up to 2·levels + 2 pages:
    // from 16 pages on the pool never holds more than its cap (the admission reserve).
    if (!Number.isInteger(shadowPages) || shadowPages < 16) throw new RangeError(`a shadow pool needs at least 16 pages, got ${shadowPages}`);
    this.tableReserve = tableReserveFrames(this.frameCount, mode, { eptLevels: o.eptLevels, vcpus, shadowPoolPages: shadowPages });
    if (this.paging.direct) host.frames.claimRange(id, 0, this.frameCount); // before allocating anything
    this.p2m = new P2m(host.machine.core, this.frameCount);
    this.memory = new GuestMemory(host.machine.memory, this);
    if (this.paging.direct) {
      for (let g = 0; g < this.frameCount; g++) this.p2m.map(g as Gfn, g as Hfn);
      this.stats.pagesBacked = this.frameCount;
      this.ept = null;
    } else {
      this.ept = new Ept(host.machine.memory, { alloc: () => this.allocTable(), free: (h) => this.freeTable(h) },
        { levels: o.eptLevels, ad: this.paging.eptWalked && (o.eptAd ?? true), onInvalidate: () => this.invalidate() });
      this.p2m.onChange((gfn, before, after) => this.sync(gfn, before, after));
    }
    for (let i = 0; i < vcpus; i++) this.addVcpu(shadowPages, o.cpu);
  }

  private addVcpu(shadowPages: number, opts?: CpuOptions): void {
    const cpu = this.host.machine.createCpu(opts);
    const vpid = this.host.nextVpid();
    const shadow = this.paging.attachVcpu(this.host.machine, cpu, () => this.ept!.eptp, vpid, () => this.shadowBacking(), shadowPages);
    this.vcpus.push(new Vcpu(this, this.vcpus.length, cpu, vpid, shadow));
  }

  /** Keeps the EPT equal to the p2m, and drops shadow entries derived from a changed mapping. */
  private sync(gfn: Gfn, before: number, after: number): void {
    if (this.bulk) return;
    syncEntry(this.ept!, gfn, before, after);
    const remapped = (before & P2M.PRESENT) !== 0 &&
      (frameField(before) !== frameField(after) || eptRights(before) !== eptRights(after));
    if (remapped) {
      const old = hpaOf(frameField(before) as Hfn);
      for (const v of this.vcpus) if (v.shadow?.zapGfn(gfn, old)) this.stats.shadowZaps++; // only leaves mapping the old frame are stale
    }
  }

  private zapShadows(): void {
    for (const v of this.vcpus) {
      if (v.shadow && v.shadow.stats.shadowPages > 0) { v.shadow.zapAll(); this.stats.shadowZaps++; }
    }
  }

  /** INVEPT (single context) on every vCPU after a present EPT entry changed. */
  invalidate(): void {
    if (!this.paging.eptWalked) return; // the shadow walker caches nothing
    for (const v of this.vcpus) v.cpu.invept(1);
    this.stats.invepts++;
  }

  private allocTable(): Hfn {
    const h = this.host.frames.alloc(HV_OWNER);
    this.tables.add(h);
    this.stats.tableFrames++;
    return h;
  }

  private freeTable(h: Hfn): void {
    this.host.frames.free(h, HV_OWNER);
    this.tables.delete(h);
    this.stats.tableFrames--;
  }

  /**
   * Takes `frames` hypervisor-region frames as this VM's overhead memory (ESX's per-VM
   * overhead: frame buffer, monitor state; a fixed part plus a per-MiB part), held until
   * the VM is destroyed. All or nothing: OutOfFramesError leaves nothing taken.
   */
  allocOverhead(frames: number): void {
    this.live();
    if (!Number.isSafeInteger(frames) || frames < 0) throw new RangeError(`overhead must be a whole number of frames >= 0, got ${frames}`);
    const got: Hfn[] = [];
    try {
      for (let i = 0; i < frames; i++) got.push(this.host.frames.alloc(HV_OWNER));
    } catch (e) {
      for (const h of got) this.host.frames.free(h, HV_OWNER);
      throw e;
    }
    this.overhead.push(...got);
    this.stats.overheadFrames += frames;
  }

  /** Hypervisor-region frames this VM holds now: paging structures plus overhead memory. */
  get overheadInUse(): number { return this.stats.tableFrames + this.stats.overheadFrames; }

  /** The hook shadow paging builds on: table frames from the hypervisor region, guest walks over this VM's EPT. */
  shadowBacking(): ShadowBacking {
    return {
      allocTableFrame: () => hpaOf(this.allocTable()),
      freeTableFrame: (h: bigint) => this.freeTable(hfnOf(toHpa(h))),
      walkerEptp: this.ept!.eptp,
      // Unbacked gfns are backed here, swapped / shared / trapped ones resolved by their
      // pager; anything else (ballooned, unowned) must reach the caller.
      backGpa: (g: bigint, write: boolean) => {
        if (!this.contains(g)) return false;
        const gfn = gfnOf(g as Gpa), w = this.p2m.raw(gfn);
        if (isUnbacked(w)) return this.backGfn(gfn, true) !== null;
        return needsResolve(w, write) && this.resolve(gfn, write) !== null;
      },
      writable: (gfn: number) => gfn < this.frameCount &&
        (this.p2m.raw(gfn as Gfn) & (P2M.PRESENT | P2M.WRITE_PROTECTED | P2M.SHARED | P2M.TRAPPED | P2M.LOGGED)) === P2M.PRESENT,
      markPageTable: (gfn: number, on: boolean) => {
        if (gfn < this.frameCount) this.p2m.setState(gfn as Gfn, on ? P2M.PAGE_TABLE : 0, on ? 0 : P2M.PAGE_TABLE);
      },
    };
  }

  private hostWriteWatchers: ((gfn: Gfn) => void)[] = [];

  /**
   * Calls f(gfn) before every host-side write to guest memory (vm.memory: loaders, DMA,
   * the balloon's reads and writes), which no EPT D bit or write trap sees (KVM's
   * mark_page_dirty). Returns the unwatch function.
   */
  watchHostWrites(f: (gfn: Gfn) => void): () => void {
    this.hostWriteWatchers.push(f);
    return () => { this.hostWriteWatchers = this.hostWriteWatchers.filter((x) => x !== f); };
  }

  private resizeWatchers: ((oldFrames: number, frames: number) => void)[] = [];

  /**
   * Memory hot-add (as a DIMM plugged into a running VM): guest-physical memory grows by
   * `bytes` (a positive multiple of 4096; at most 64 GiB in all). The p2m grows with the
   * new gfns unbacked; the EPT (nested) and the shadow MMU's walker EPT map them on first
   * touch, as any unbacked gfn, so no translation changes and nothing is invalidated.
   * Watchers (watchResize: page sharing's scanner, the memory manager) follow; telling the
   * guest is the board's job (its platform's memory-added notification). Native VMs own
   * host frames [0, n) and cannot grow. Returns the first new gfn.
   */
  hotAdd(bytes: number | bigint): Gfn {
    this.live();
    if (this.paging.direct) throw new Error(`VM ${this.id} is native: its memory is host frames [0, n), it cannot grow`);
    const add = typeof bytes === 'bigint' ? bytes : Number.isInteger(bytes) ? BigInt(bytes) : -1n;
    if (add <= 0n || add % 4096n !== 0n || this.bytes + add > MAX_VM_BYTES) {
      throw new RangeError(`hot-add needs a positive multiple of 4096 bytes keeping the VM at most 64 GiB (it has ${this.bytes}), got ${bytes}`);
    }
    const old = this.nFrames, frames = Number((this.bytes + add) >> 12n);
    this.p2m.grow(frames);
    this.bytes += add;
    this.nFrames = frames;
    for (const f of this.resizeWatchers) f(old, frames);
    return old as Gfn;
  }

  /** Calls f(oldFrames, frames) after every hotAdd; returns the unwatch function. */
  watchResize(f: (oldFrames: number, frames: number) => void): () => void {
    this.resizeWatchers.push(f);
    return () => { this.resizeWatchers = this.resizeWatchers.filter((x) => x !== f); };
  }

  /** Installs a pager (sharing, swapping, sampling); each resolves the states it owns. */
  addPager(p: VmPager): void { if (!this.pagers.includes(p)) this.pagers.push(p); }

  /** Removes a pager (a dirty-logging tracker when migration ends); the states it owned must be gone. */
  removePager(p: VmPager): void {
    const i = this.pagers.indexOf(p);
    if (i >= 0) this.pagers.splice(i, 1);
  }

  /**
   * Makes a gfn unbacked again, freeing its private frame (a migration destination told the
   * page is zero or gone); `ballooned` leaves it BALLOONED instead. Throws for shared or
   * swapped gfns, whose pagers own them (use discard). Returns whether a frame was freed.
   */
  unback(gfn: Gfn, ballooned = false): boolean {
    this.live();
    const w = this.p2m.raw(gfn);
    if (w & (P2M.SHARED | P2M.SWAPPED)) throw new Error(`gfn ${hex(gfn)} is shared or swapped (p2m ${hex(w)}): its pager owns it`);
    const flags = ballooned ? P2M.BALLOONED : 0;
    if (!(w & P2M.PRESENT)) {
      if ((w & P2M.BALLOONED) !== flags) this.p2m.unmap(gfn, flags);
      return false;
    }
    const h = this.p2m.unmap(gfn, flags)!;
    this.host.frames.free(h, this.id);
    return true;
  }

  /**
   * Makes gfn usable for a (write) access when its state needs the hypervisor (see
   * needsResolve). Returns the modeled cycles spent, or null when no pager owns the state.
   */
  resolve(gfn: Gfn, write: boolean): number | null {
    this.live();
    let cycles = 0;
    for (let round = 0; round < 4; round++) { // e.g. swap in, then break sharing of the same gfn
      const w = this.p2m.raw(gfn);
      if (!needsResolve(w, write)) return cycles;
      let done = false;
      for (const p of this.pagers) {
        const c = p.resolve(this, gfn, w, write);
        if (c !== null) { cycles += c; done = true; this.stats.resolves++; this.stats.pagerCycles += c; break; }
      }
      if (!done) return null;
    }
    throw new Error(`gfn ${hex(gfn)}: pagers did not settle its state (p2m ${hex(this.p2m.raw(gfn))})`);
  }

  /** Drops a shared or swapped gfn's backing through its pager (it becomes unbacked); false if no pager owns it. */
  discard(gfn: Gfn): boolean {
    this.live();
    const w = this.p2m.raw(gfn);
    return this.pagers.some((p) => p.discard?.(this, gfn, w) === true);
  }

  /** True if gpa lies in the VM's guest-physical memory. */
  contains(gpa: bigint): boolean { return gpa >= 0n && gpa < this.memoryBytes; }

  /**
   * Backs an unbacked gfn with a zeroed host frame (p2m, then EPT through sync).
   * Returns null when the VM pool is empty (or throws OutOfFramesError if `orThrow`).
   */
  backGfn(gfn: Gfn, orThrow = false): Hfn | null {
    this.live();
    const w = this.p2m.raw(gfn);
    if (!isUnbacked(w)) throw new Error(`gfn ${hex(gfn)} is not unbacked (p2m ${hex(w)})`);
    const h = orThrow ? this.host.frames.alloc(this.id) : this.host.frames.tryAlloc(this.id);
    if (h === null) return null;
    try {
      this.p2m.map(gfn, h); // sync() may need an EPT table from the hypervisor pool
    } catch (e) {
      this.bulk = true;     // undo without touching the EPT, which never got the entry
      try { this.p2m.unmap(gfn); } finally { this.bulk = false; }
      this.host.frames.free(h, this.id);
      throw e;
    }
    this.stats.pagesBacked++;
    return h;
  }

  /**
   * GuestMemory's translation: backs on write; swaps in and breaks sharing through the
   * pagers (a host read of a trapped frame is not a guest touch); a host write to a guest
   * page table zaps shadows.
   */
  frameFor(gfn: Gfn, write: boolean): Hfn | null {
    let w = this.p2m.raw(gfn);
    if (write) for (const f of this.hostWriteWatchers) f(gfn);
    if (w & P2M.SWAPPED || (write && w & (P2M.SHARED | P2M.LOGGED))) {
      if (this.resolve(gfn, write) === null) throw new Error(`gfn ${hex(gfn)}: no pager resolves p2m ${hex(w)}`);
      w = this.p2m.raw(gfn);
    }
    if (w & P2M.PRESENT) {
      if (write && w & P2M.SHARED) throw new Error(`gfn ${hex(gfn)} is shared: a host write needs a copy-on-write break`);
      if (write && w & P2M.PAGE_TABLE) this.zapShadows();
      return frameField(w) as Hfn;
    }
    if (!isUnbacked(w)) throw new Error(`gfn ${hex(gfn)} is swapped or ballooned (p2m ${hex(w)}); host access needs swap-in`);
    return write ? this.backGfn(gfn, true) : null;
  }

  /**
   * Backs [gpa, gpa+bytes) now. With pageSize 2 MiB / 1 GiB, each wholly unbacked aligned
   * chunk gets a contiguous aligned host run and one large EPT leaf when the pool has one
   * (4 KiB frames otherwise). Returns the number of large leaves made.
   */
  prefault(gpa: bigint, bytes: bigint, pageSize: PageSize = PAGE_4K): number {
    this.live();
    const size = BigInt(pageSize);
    if (gpa % size !== 0n || bytes % size !== 0n || !this.contains(gpa) || gpa + bytes > this.memoryBytes) {
      throw new RangeError(`prefault ${hex(gpa)}+${hex(bytes)} must be ${pageSize}-aligned and inside the VM`);
    }
    if (this.paging.direct) return 0;
    const n = pageSize / PAGE_4K;
    let large = 0;
    for (let g = Number(gpa >> 12n); g < Number((gpa + bytes) >> 12n); g += n) {
      if (n > 1 && this.backLarge(g as Gfn, n, pageSize)) { large++; continue; }
      for (let i = g; i < g + n; i++) if (isUnbacked(this.p2m.raw(i as Gfn))) this.backGfn(i as Gfn, true);
    }
    return large;
  }

  private backLarge(g: Gfn, n: number, pageSize: PageSize): boolean {
    for (let i = g; i < g + n; i++) if (this.p2m.raw(i as Gfn) !== 0) return false;
    const base = this.host.frames.tryAllocContiguous(this.id, n, n);
    if (base === null) return false;
    this.bulk = true;
    try {
      for (let i = 0; i < n; i++) this.p2m.map((g + i) as Gfn, (base + i) as Hfn);
    } finally { this.bulk = false; }
    this.ept!.map(g, base, RWX, pageSize);
    this.stats.pagesBacked += n;
    return true;
  }

  /**
   * Moves the 512 private gfns [g, g+512) into the host run [base, base+512) (already this
   * VM's: claimed by the caller, or where a gfn already sits), copying each page that is
   * not in place and freeing its old frame, then maps the range with one 2 MiB EPT leaf
   * (one INVEPT instead of 512 entry updates). Returns the pages copied. Nested VMs only.
   */
  relocateLarge(g: Gfn, base: Hfn): number {
    this.live();
    const n = PAGE_2M / PAGE_4K;
    if (!this.ept || !this.paging.eptWalked || g % n !== 0 || base % n !== 0 || g + n > this.frameCount) {
      throw new RangeError(`relocateLarge(${hex(g)}, ${hex(base)}): needs a nested VM and 2 MiB-aligned gfn and hfn inside the VM`);
    }
    for (let i = 0; i < n; i++) {
      const w = this.p2m.raw((g + i) as Gfn);
      if ((w & (P2M.PRESENT | P2M.SHARED | P2M.SWAPPED | P2M.BALLOONED | P2M.TRAPPED | P2M.WRITE_PROTECTED | P2M.PAGE_TABLE | P2M.LOGGED)) !== P2M.PRESENT) {
        throw new Error(`relocateLarge: gfn ${hex(g + i)} is not a private present page (p2m ${hex(w)})`);
      }
    }
    const mem = this.host.machine.memory;
    let copied = 0;
    this.bulk = true; // the one large leaf below replaces 512 per-page EPT updates
    try {
      for (let i = 0; i < n; i++) {
        const old = frameField(this.p2m.raw((g + i) as Gfn));
        const to = base + i;
        if (old === to) continue;
        mem.copy(hpaOf(to as Hfn), hpaOf(old as Hfn), PAGE_4K);
        this.p2m.map((g + i) as Gfn, to as Hfn);
        this.host.frames.free(old as Hfn, this.id);
        copied++;
      }
    } finally { this.bulk = false; }
    this.ept.map(g, base, RWX, PAGE_2M);
    return copied;
  }

  /** Promotes EPT leaves to 2 MiB / 1 GiB wherever the p2m allows (see Ept.coalesce). */
  coalesce(sizes?: PageSize[]): number { return this.ept ? this.ept.coalesce(this.p2m, sizes) : 0; }

  private live(): void { if (this.destroyed) throw new Error(`VM ${this.id} was destroyed`); }

  /** Frees every frame the VM holds (guest frames, EPT and shadow tables). */
  destroy(): void {
    this.live();
    const frames = this.host.frames;
    for (const p of this.pagers) p.detach?.(this);
    // Shared frames are not the VM's alone (the sharing pager owns their refcounts).
    this.p2m.forEach((_g, w) => frames.free(frameField(w) as Hfn, this.id), P2M.PRESENT | P2M.SHARED, P2M.PRESENT);
    this.ept?.destroy();
    for (const v of this.vcpus) v.shadow?.untagPages(); // the core must not take the freed frames for shadow pages
    for (const h of [...this.tables]) this.freeTable(h as Hfn);
    for (const h of this.overhead.splice(0)) this.host.frames.free(h, HV_OWNER);
    this.stats.overheadFrames = 0;
    this.destroyed = true;
  }

  get isDestroyed(): boolean { return this.destroyed; }
}

function checkBytes(b: number | bigint): bigint {
  const n = typeof b === 'bigint' ? b : Number.isInteger(b) ? BigInt(b) : -1n;
  if (n <= 0n || n % 4096n !== 0n || n > MAX_VM_BYTES) {
    throw new RangeError(`memoryBytes must be a positive multiple of 4096 up to 64 GiB, got ${b}`);
  }
  return n;
}
