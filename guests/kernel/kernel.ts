// A tiny guest kernel: boots like Linux's early x86-64 code (the bootloader loads the
// image and an early 2 MiB direct map; the kernel then maps the rest of memory and its
// text through its own stores), keeps address spaces with real page tables, and runs
// workload batches on the vCPU, handling the exits a kernel handles: #PF (demand-zero,
// copy-on-write, swap-in), port I/O (the VM's PortBus) and HLT (idle).
//
// Simulated time: vcpu.cycles() is the clock; step(budget) runs workload batches until
// the budget is spent (a batch is the unit, so a step may overshoot by one batch) and a
// HLT idles for the rest of the budget. now() = cycles / hz.

import { CR0, CR4, EFER, PTE, PFEC } from '../../src/core/bits.js';
import type { AccessBatch } from '../../src/core/batch.js';
import { SWAP_PORT } from '../../src/devices/swapdisk-protocol.js';
import type { GuestPlatform, GuestVcpu } from '../platform.js';
import { FrameAllocator } from './frames.js';
import { KernelCpu, DIRECT_MAP, KERNEL_TEXT } from './kcpu.js';
import { PageTables, ADDR, isSwapEntry, slotOf } from './pagetable.js';
import { runOps } from './run.js';
import { Swapper } from './swap.js';
import { Rng } from '../../src/util/rng.js';

export interface Vma { start: bigint; end: bigint; write: boolean; exec: boolean }
export interface AddressSpace { id: number; root: number; vmas: Vma[] }

/** A workload fills the kernel's workload batch with its next ops; false = finished. */
export interface Workload {
  readonly name: string;
  init(k: Kernel): void;
  fill(k: Kernel, b: AccessBatch): boolean;
}

export interface KernelOptions {
  /** The machine the kernel runs on (src/board builds one from a VM, its bus and devices). */
  platform: GuestPlatform;
  /** Kernel image size in pages; the content is a function of imageSeed (identical kernels share it). */
  imagePages?: number;
  imageSeed?: number;
  /** Simulated cycles per second (default 1e9). */
  hz?: number;
  /**
   * Bytes of per-frame kernel metadata (Linux's struct page: 64), allocated and zeroed at
   * boot for every frame of configured memory (default 0 = none; Linux: 64). It is what
   * makes a large VM ballooned down slightly worse off than a small VM configured with that size.
   */
  memMapBytesPerFrame?: number;
  /** Frames user allocations leave free for page tables (default 16). */
  reserve?: number;
  /**
   * Free frames the kernel's reclaim keeps, as a fraction of configured frames (default 0:
   * only `reserve`). Linux 2.4 sets a zone's pages_high, the level kswapd frees up to, at
   * 3 × frames/128, so about 2.3 % of configured memory never holds cache. Like the
   * mem_map it is sized at boot from configured memory, not from what a balloon leaves.
   */
  freeTargetFraction?: number;
}

export interface KernelCounters {
  faults: { demandZero: number; cow: number; cowReuse: number; swapIn: number; invalid: number };
  cowCopies: number; swapIns: number; swapOuts: number; ops: number; halts: number; io: number;
  /** Frames brought online by memory hot-add. */
  memoryAdded: number;
}

// Bootloader layout (gfns): 0 firmware, 1..3 early PML4/PDPT/PD, image from 16.
const EARLY_PML4 = 1, EARLY_PDPT = 2, EARLY_PD = 3, IMAGE = 16;
const NX = PTE.XD;

export class Kernel {
  readonly vcpu: GuestVcpu;
  readonly frames: FrameAllocator;
  readonly kc: KernelCpu;
  readonly pt: PageTables;
  readonly swap: Swapper;
  /** The workload batch (workloads fill it; ops run at CPL 0). */
  readonly batch: AccessBatch;
  private readonly probe: AccessBatch; // readUser's
  readonly hz: number;
  readonly imagePages: number;
  readonly counters: KernelCounters = {
    faults: { demandZero: 0, cow: 0, cowReuse: 0, swapIn: 0, invalid: 0 },
    cowCopies: 0, swapIns: 0, swapOuts: 0, ops: 0, halts: 0, io: 0, memoryAdded: 0,
  };
  readonly spaces = new Map<number, AddressSpace>();
  current!: AddressSpace;
  /** Simulated cycles elapsed (busy + idle). */
  clock = 0;
  idleCycles = 0;
  /** Frames of the mem_map (see memMapBytesPerFrame). */
  memMap: number[] = [];
  private memMapBytesPerFrame = 0;
  private workload: Workload | null = null;
  private resumeAt: number | null = null; // position in the workload batch after a HLT
  private nextAsid = 1;
  /** Free frames user allocations leave (page tables, and the free target sized by configured memory). */
  readonly reserve: number;

  private constructor(readonly platform: GuestPlatform, o: KernelOptions) {
    const p = platform;
    this.vcpu = p.vcpu;
    this.hz = o.hz ?? 1e9;
    const f = o.freeTargetFraction ?? 0;
    if (!(f >= 0 && f < 0.5)) throw new RangeError(`freeTargetFraction must be in [0, 0.5), got ${f}`);
    this.reserve = Math.max(o.reserve ?? 16, Math.ceil(p.frameCount * f));
    this.imagePages = o.imagePages ?? 16;
    this.frames = new FrameAllocator(p.frameCount, IMAGE + this.imagePages);
    this.kc = new KernelCpu(p, p.createBatch(2048));
    this.batch = p.createBatch(4096);
    this.probe = p.createBatch(512);
    this.pt = new PageTables(this.kc, this.frames);
    this.swap = new Swapper(this.kc, this.frames, this.pt, (asid) => asid === this.current?.id, p.swapPort ?? SWAP_PORT);
    this.swap.dma = p.swapDma ?? true;
  }

  /** Bootloader + early boot. Returns a kernel running its first address space. */
  static boot(o: KernelOptions): Kernel {
    const p = o.platform;
    if (p.memoryBytes < 4n << 20n) throw new RangeError('the guest kernel needs at least 4 MiB');
    const k = new Kernel(p, o);
    // The bootloader (host writes, as firmware loading an image would): the image, and
    // early tables mapping guest-physical [0, 2 MiB) at DIRECT_MAP with one 2 MiB page.
    const rng = new Rng(o.imageSeed ?? 0x6b65726e);
    const img = new Uint8Array(k.imagePages * 4096);
    for (let i = 0; i < img.length; i += 4) new DataView(img.buffer).setUint32(i, rng.u32(), true);
    p.memory.write(BigInt(IMAGE) << 12n, img);
    const pml4i = Number((DIRECT_MAP >> 39n) & 511n);
    p.memory.write64(BigInt(EARLY_PML4 * 4096 + pml4i * 8), (BigInt(EARLY_PDPT) << 12n) | PTE.P | PTE.W);
    p.memory.write64(BigInt(EARLY_PDPT * 4096), (BigInt(EARLY_PD) << 12n) | PTE.P | PTE.W);
    p.memory.write64(BigInt(EARLY_PD * 4096), PTE.P | PTE.W | PTE.PS | NX);
    for (const g of [EARLY_PML4, EARLY_PDPT, EARLY_PD]) k.frames.claim(g, 'table');
    for (let g = IMAGE; g < IMAGE + k.imagePages; g++) k.frames.claim(g, 'kernel');
    // Firmware hands over in long mode: CR0.PG|WP, CR4.PAE, EFER.LME|LMA|NXE, CPL 0.
    k.vcpu.setRegisters({ cr0: CR0.PE | CR0.PG | CR0.WP, cr3: BigInt(EARLY_PML4) << 12n, cr4: CR4.PAE,
      efer: EFER.LME | EFER.LMA | EFER.NXE, cpl: 0 });
    // Early boot, through the vCPU: the rest of the direct map (2 MiB pages, 4 KiB for a
    // ragged tail) and the text mapping (4 KiB, read-only, executable).
    const frames = p.frameCount;
    for (let g = 512; g + 512 <= frames; g += 512) k.pt.map2m(EARLY_PML4, DIRECT_MAP + (BigInt(g) << 12n), g, PTE.W | NX);
    for (let g = frames - (frames % 512); g < frames; g++) k.pt.map4k(EARLY_PML4, DIRECT_MAP + (BigInt(g) << 12n), g, PTE.W | NX);
    for (let i = 0; i < k.imagePages; i++) k.pt.map4k(EARLY_PML4, KERNEL_TEXT + BigInt(i * 4096), IMAGE + i, 0n);
    k.memMapBytesPerFrame = o.memMapBytesPerFrame ?? 0;
    k.memMap = k.allocMemMap(p.frameCount);
    p.onMemoryAdded?.((first, n) => k.memoryAdded(first, n));
    k.switchTo(k.createAddressSpace());
    return k;
  }

  /**
   * Memory hot-add (the platform's notification, an ACPI memory-device event): maps the new
   * frames into the direct map (2 MiB pages where aligned; tables from memory already
   * online, as Linux's arch_add_memory), adds their mem_map, then frees them to the
   * allocator (onlining). Runs on the vCPU and is charged to the guest.
   */
  private memoryAdded(first: number, n: number): void {
    if (first !== this.frames.frameCount) throw new Error(`memory added at gfn ${first}, but the kernel's memory ends at ${this.frames.frameCount}`);
    const end = first + n;
    for (let g = first; g < end;) {
      const va = DIRECT_MAP + (BigInt(g) << 12n);
      if (g % 512 === 0 && g + 512 <= end) { this.pt.map2m(EARLY_PML4, va, g, PTE.W | NX); g += 512; }
      else { this.pt.map4k(EARLY_PML4, va, g, PTE.W | NX); g++; }
    }
    this.frames.grow(end);
    this.memMap.push(...this.allocMemMap(n));
    this.counters.memoryAdded += n;
  }

  /** The mem_map: kernel frames holding per-frame metadata for `frames` frames of memory. */
  private allocMemMap(frames: number): number[] {
    const bytesPerFrame = this.memMapBytesPerFrame;
    if (!(bytesPerFrame >= 0 && bytesPerFrame <= 4096)) throw new RangeError(`memMapBytesPerFrame must be 0..4096, got ${bytesPerFrame}`);
    const n = Math.ceil((frames * bytesPerFrame) / 4096);
    const out: number[] = [];
    for (let i = 0; i < n; i++) {
      const g = this.frames.alloc('kernel');
      if (g === null) throw new RangeError('the guest is too small for its own mem_map');
      this.kc.zeroFrame(g); // the kernel initialises every struct page at boot
      out.push(g);
    }
    return out;
  }

  get kernelRoot(): number { return EARLY_PML4; }
  textVa(offset: number): bigint { return KERNEL_TEXT + BigInt(offset % (this.imagePages * 4096)); }

  createAddressSpace(): AddressSpace {
    const as: AddressSpace = { id: this.nextAsid++, root: this.pt.newRoot(EARLY_PML4), vmas: [] };
    this.spaces.set(as.id, as);
    return as;
  }

  /** An anonymous demand-zero region (nothing is allocated until touched). */
  mmap(as: AddressSpace, start: bigint, bytes: bigint, o: { write?: boolean; exec?: boolean } = {}): Vma {
    const v: Vma = { start, end: start + bytes, write: o.write ?? true, exec: o.exec ?? false };
    if (start & 0xfffn || bytes & 0xfffn || v.end > 0x7fff_ffff_f000n) throw new RangeError('mmap: page-aligned user range required');
    if (as.vmas.some((w) => start < w.end && w.start < v.end)) throw new Error('mmap: overlapping region');
    as.vmas.push(v);
    return v;
  }

  /**
   * A region backed now by 2 MiB pages (zeroed through the direct map, mapped with PS in
   * the PD). Its frames are 'kernel' frames: never swapped, never shared by fork.
   */
  mapHuge(as: AddressSpace, start: bigint, bytes: bigint): Vma {
    if (start & 0x1f_ffffn || bytes & 0x1f_ffffn) throw new RangeError('mapHuge: 2 MiB-aligned range required');
    for (let va = start; va < start + bytes; va += 0x20_0000n) {
      const base = this.frames.alloc2M('kernel');
      if (base === null) throw new Error('mapHuge: no free 2 MiB run');
      for (let g = base; g < base + 512; g++) this.kc.zeroFrame(g);
      this.pt.map2m(as.root, va, base, PTE.U | PTE.W | PTE.XD);
    }
    return this.mmap(as, start, bytes);
  }

  /** MOV CR3 through the vCPU. */
  switchTo(as: AddressSpace): void {
    this.kc.movCr3(BigInt(as.root) << 12n);
    this.current = as;
  }

  /** fork(): a copy of `parent` sharing every page copy-on-write (both sides read-only). */
  fork(parent: AddressSpace): AddressSpace {
    const child = this.createAddressSpace();
    child.vmas = parent.vmas.map((v) => ({ ...v }));
    const protect: [bigint, bigint][] = [];
    this.pt.forEachUserLeaf(parent.root, (va, pte, v) => {
      let cv = v;
      if (v & PTE.P) {
        cv = v & ~(PTE.W | PTE.A | PTE.D);
        if (v & PTE.W) protect.push([pte, v & ~PTE.W]);
        const gfn = Number((v & ADDR) >> 12n);
        this.frames.addMapping(gfn, { asid: child.id, va, pte: this.pt.map4k(child.root, va, gfn, cv & ~PTE.P) });
      } else if (isSwapEntry(v)) {
        this.swap.getSlot(slotOf(v));
        this.kc.store(this.pt.entry(child.root, va, true)!, v);
      }
    });
    this.kc.write64(protect);
    if (this.current === parent) this.switchTo(parent); // flush the parent's now-stale writable translations
    return child;
  }

  /** Starts a workload: init() sets up its address spaces and regions. */
  start(w: Workload): void { this.workload = w; this.resumeAt = null; w.init(this); }

  /**
   * Runs the workload for about `budget` simulated cycles. Returns the busy cycles used;
   * a HLT or the workload's end idles for the rest of the budget.
   */
  step(budget: number): { busy: number; idle: number; done: boolean } {
    if (!this.workload) throw new Error('no workload: call start()');
    const t0 = this.vcpu.cycles();
    let halted = false, done = false;
    while (this.vcpu.cycles() - t0 < budget) {
      let at = this.resumeAt;
      this.resumeAt = null;
      if (at === null) {
        this.batch.clear();
        if (!this.workload.fill(this, this.batch)) { done = true; break; }
        at = 0;
      }
      const r = this.runBatch(this.batch, at);
      if (r !== null) { this.resumeAt = r; halted = true; break; }
    }
    const busy = this.vcpu.cycles() - t0;
    const idle = halted || done ? Math.max(0, budget - busy) : 0;
    this.idleCycles += idle;
    this.clock += busy + idle;
    return { busy, idle, done };
  }

  /** Runs until the workload finishes or `seconds` of simulated time pass. */
  runFor(seconds: number, slice = this.hz / 100): void {
    const end = this.clock + seconds * this.hz;
    while (this.clock < end) if (this.step(Math.min(slice, end - this.clock)).done) return;
  }

  now(): number { return this.clock / this.hz; }

  /** Runs batch ops from `at` to the end; returns the resume index after a HLT, else null. */
  runBatch(b: AccessBatch, at = 0): number | null {
    const r = runOps(this.platform, b, at, {
      who: 'kernel', halt: true,
      pageFault: (x) => (this.pageFault(x.cr2, x.errorCode) ? x.index : x.index + 1),
      io: () => { this.counters.io++; },
    });
    if (r === null) this.counters.ops += b.length - at;
    else { this.counters.halts++; this.counters.ops += r - at; }
    return r;
  }


  /** The #PF handler. Returns true to retry the access, false to kill it (no VMA / no rights). */
  pageFault(cr2: bigint, err: number): boolean {
    const as = this.current, va = cr2 & ~0xfffn;
    const vma = as.vmas.find((v) => cr2 >= v.start && cr2 < v.end);
    const write = (err & PFEC.W) !== 0;
    if (!vma || (write && !vma.write) || (err & PFEC.ID && !vma.exec)) { this.counters.faults.invalid++; return false; }
    const flags = PTE.U | (vma.write ? PTE.W : 0n) | (vma.exec ? 0n : PTE.XD);
    // Allocate first: reclaim may rewrite PTEs (even this one, if it maps a shared frame).
    const gfn = this.allocUser();
    const pte = this.pt.entry(as.root, va, true)!;
    const v = this.kc.load(pte);
    if (v & PTE.P) {
      if (write && !(v & PTE.W) && this.cowFault(as, va, pte, v, flags, gfn)) return true;
      this.frames.release(gfn); // spurious (a stale TLB entry) or the sharer reused its frame
      return true;
    }
    if (isSwapEntry(v)) {
      this.swap.pageIn(slotOf(v), gfn);
      this.counters.faults.swapIn++;
      this.counters.swapIns++;
    } else {
      this.kc.zeroFrame(gfn);
      this.counters.faults.demandZero++;
    }
    this.kc.store(pte, (BigInt(gfn) << 12n) | flags | PTE.P); // not present before: no INVLPG needed
    this.frames.addMapping(gfn, { asid: as.id, va, pte });
    return true;
  }

  /** Returns true if it used the spare frame `gfn`. */
  private cowFault(as: AddressSpace, va: bigint, pte: bigint, v: bigint, flags: bigint, gfn: number): boolean {
    const old = Number((v & ADDR) >> 12n);
    this.counters.faults.cow++;
    if (this.frames.mappings(old).length === 1) { // the last sharer keeps the frame
      this.counters.faults.cowReuse++;
      this.pt.set(pte, v | PTE.W, va, true);
      return false;
    }
    this.kc.copyFrame(old, gfn);
    this.frames.removeMapping(old, as.id, va);
    this.pt.set(pte, (BigInt(gfn) << 12n) | flags | PTE.P, va, true);
    this.frames.addMapping(gfn, { asid: as.id, va, pte });
    this.counters.cowCopies++;
    return true;
  }

  /** A user frame, evicting with the clock when memory runs short. */
  allocUser(): number {
    for (;;) {
      const g = this.frames.alloc('user', this.reserve);
      if (g !== null) return g;
      if (!this.swap.evictOne()) throw new Error('out of memory: nothing left to swap out');
      this.counters.swapOuts = this.swap.stats.swapOuts;
    }
  }

  /** Reads user memory through the current address space (loads on the vCPU, faulting in as needed). */
  readUser(va: bigint, words: number): bigint[] {
    // Its own batch: the workload batch may hold a halted batch the next step resumes.
    const out: bigint[] = [];
    for (let at = 0; at < words; at += this.probe.capacity) {
      const b = this.probe.clear(), n = Math.min(this.probe.capacity, words - at);
      for (let i = 0; i < n; i++) b.load(va + BigInt((at + i) * 8));
      this.runBatch(b);
      for (let i = 0; i < n; i++) out.push(b.value(i));
    }
    return out;
  }
}
