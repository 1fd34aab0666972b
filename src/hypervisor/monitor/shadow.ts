// Shadow paging (KVM's mmu.c / paging_tmpl.h in miniature). The hypervisor keeps shadow
// page tables — real x86-64 tables in host memory mapping gva → hpa — built lazily from
// the guest's tables and the p2m, and the vCPU's hardware walks the shadow.
//
// - Guest walks run in the core: a private "walker" vCPU in nested mode over the VM's
//   p2m in EPT form, without TLBs or caches, gives the exact guest result (rights, error
//   code, A/D updates) and the path of guest entries (Cpu.walkPath).
// - Shadow pages are keyed by (level, guest table gfn) and shared by every root that
//   reaches them, so switching back to a known guest CR3 costs one lookup (root cache).
//   A guest large page is shadowed with "direct" 4 KiB tables (host frames are not
//   contiguous), keyed by (level, first gfn, guest rights).
// - Every guest frame used as a page table is write-protected in the shadow: a guest
//   store to it faults, is emulated here, and zaps the shadow entries derived from the
//   written guest entry. The core's TLB is not flushed: a guest that forgets INVLPG keeps
//   seeing the stale translation, as on hardware.
// - Guest A/D emulation: a shadow leaf exists only after a guest walk set the guest A
//   bit, and is writable only once the guest D bit is set (a write re-walks to set it).
// - Faults the guest's tables forbid are reflected to the guest with its exact error
//   code; the rest are hidden faults fixed here.
// - Guest PCIDs: the vCPU's CR3 is the shadow root of the guest CR3's table with the
//   guest's PCID in bits 11:0, so the core's TLB tags the guest's translations with the
//   guest's PCIDs; a guest MOV CR3 with bit 63 keeps that PCID's entries (the core's
//   writeCr3 decides, as for the guest), INVLPG drops the current PCID's, and INVPCID
//   is the core's INVPCID on the guest's PCID. Shadow tables themselves are per guest
//   table, not per PCID: the write protection keeps them in sync, so a root switched
//   back to without a flush is still exact.
//
// Each shadow entry carries the rights of the guest entry it shadows (W, U, XD; the key
// in the leaf), so the hardware ANDs them along the shadow path exactly as along the
// guest's, even when shadow pages are shared by paths with different rights. Entries
// inside a "direct" table carry the guest large leaf's rights. The checks equal the
// guest's — except that
// the shadow vCPU always runs with CR0.WP=1 (write protection must hold for supervisor
// writes too); a supervisor write the guest allows only because its CR0.WP=0 is emulated.

import type { Machine } from '../../core/machine.js';
import { type Cpu, type Registers, ACC } from '../../core/cpu.js';
import type { AccessBatch } from '../../core/batch.js';
import { CR0, CR4, EFER, PTE, EPT_QUAL } from '../../core/bits.js';
import { XLATE, SHADOW_FILL } from '../../core/exit.js';
import { ShadowRmap } from './shadow-rmap.js';

const ADDR = 0x000f_ffff_ffff_f000n;
const NO_FLUSH = 1n << 63n; // MOV CR3 bit 63 with CR4.PCIDE
const NONLEAF = PTE.P | PTE.W | PTE.U | PTE.A;
const FRAMES = [0, 1, 512, 512 ** 2, 512 ** 3, 512 ** 4]; // 4 KiB frames one entry at level l spans
const LEAF_BASE = PTE.P | PTE.A;
const PK = 0xfn << 59n; // protection key, bits 62:59
// The outcomes that carry nothing, shared (callers only read them).
const RETRY: ShadowOutcome = Object.freeze({ action: 'retry' });
const NEXT: ShadowOutcome = Object.freeze({ action: 'next' });
/** walkGuest's status beside the core's XLATE ones: an EPT violation no pager could resolve. */
const OUTSIDE = -1;

type Access = { write: boolean; fetch: boolean; user: boolean; implicit: boolean };

/** The core's access bits for a guest access (Cpu.translate's encoding; user is the guest's). */
const accessBits = (a: Access): number =>
  (a.write ? ACC.WRITE : 0) | (a.fetch ? ACC.FETCH : 0) | (a.implicit ? ACC.IMPLICIT : a.user ? ACC.USER : 0);

/** What the shadow MMU needs from the VM that owns it. */
export interface ShadowBacking {
  /** A zeroed host frame for a shadow table (hpa). */
  allocTableFrame(): bigint;
  freeTableFrame(hpa: bigint): void;
  /** EPT pointer of the VM's p2m in EPT form, used by the guest walker. */
  readonly walkerEptp: bigint;
  /**
   * Makes the frame holding gpa usable after the walker's EPT refused a (write) access:
   * backs it if unbacked, or has its pager swap it in / break sharing / end a trap.
   * False if nothing can (outside the VM, ballooned): the caller gets the exit.
   */
  backGpa(gpa: bigint, write: boolean): boolean;
  /** False if the p2m forbids guest writes to gfn (shared, write-protected, trapped). */
  writable?(gfn: number): boolean;
  /** Records that a gfn is (or no longer is) a guest page-table page. */
  markPageTable?(gfn: number, on: boolean): void;
}

export interface ShadowStats {
  hiddenFaults: number; reflectedFaults: number; ptWritesEmulated: number; emulated: number;
  cr3Switches: number; rootCacheHits: number; invlpgs: number; shadowPages: number; zapAlls: number;
  protectedFrames: number;
}

/** What to do after handling an exit: resume at the same op, the next one, or give the guest a #PF. */
export type ShadowOutcome =
  | { action: 'retry' } | { action: 'next' }
  | { action: 'guestFault'; errorCode: number; cr2: bigint }
  /** An emulated access crossing into a non-canonical page: #GP, as the hardware gives. */
  | { action: 'guestGP'; va: bigint }
  /**
   * The walker's EPT refused gpa and no pager could make it usable (outside the VM,
   * ballooned, write-protected): qualification is that EPT violation's, so the caller
   * reports what a nested vCPU would. final = EPT_QUAL.FINAL (the data, not a guest entry).
   */
  | { action: 'outside'; gpa: bigint; final: boolean; qualification: number };

interface ShadowPage { hpa: bigint; level: number; gfn: number; direct: boolean }

/**
 * A shadow page's key as one number (a Map keyed by numbers, no string per lookup):
 *
 *   bits 51..11        10..4        3        2..0
 *  ┌───────────────┬────────────┬────────┬───────┐
 *  │ gfn (≤ 40 bits)│ rights key │ direct │ level │   = gfn·2^11 + rights·2^4 + direct·2^3 + level
 *  └───────────────┴────────────┴────────┴───────┘
 * 51 bits in all, exact in a double. Rights (W, U, XD, PK bits 62:59) key direct tables only.
 */
function pageKey(level: number, gfn: number, direct: boolean, rightsKey: number): number {
  return gfn * 2048 + (direct ? rightsKey * 16 + 8 : 0) + level;
}

type GuestRegs = { cr0: bigint; cr3: bigint; cr4: bigint; efer: bigint; rflags: bigint; pkru: number; cpl: number };

export class ShadowMmu {
  readonly walker: Cpu;
  readonly stats: ShadowStats = { hiddenFaults: 0, reflectedFaults: 0, ptWritesEmulated: 0, emulated: 0,
    cr3Switches: 0, rootCacheHits: 0, invlpgs: 0, shadowPages: 0, zapAlls: 0, protectedFrames: 0 };
  private pages = new Map<number, ShadowPage>();       // pageKey(level, gfn, direct, rights)
  private byGfn = new Map<number, ShadowPage[]>();        // guest table gfn → its shadows
  private readonly rmap = new ShadowRmap(); // gfn → hpa of every shadow leaf filled for it
  private protectedGfns = new Set<number>();
  private guest: GuestRegs = { cr0: 0n, cr3: 0n, cr4: 0n, efer: 0n, rflags: 0n, pkru: 0, cpl: 0 };
  // The last fault filled (batch op index, or -2 for machine code; -1 none): the same one
  // again means the shadow cannot express the access.
  private lastIndex = -1;
  private lastVa = -1n;
  private lvl = 4;             // guest paging levels (CR4.LA57)
  private nxe = false;         // guest EFER.NXE
  private outGpa = 0n;         // walkGuest's OUTSIDE: the gpa refused and its qualification
  private outQual = 0;
  private byHpa = new Map<bigint, ShadowPage>();
  private largeZapped = false; // a direct table was unlinked: the next INVLPG flushes all
  private rootGfn = 0;         // the guest CR3's table gfn (the root's key)
  /**
   * Whether the common leaf-only fill runs in the core (assembly/shadow-fill.ts): same
   * entries, stats and exits as this file's fill, which serves every other case. Off =
   * the host fill always (the reference the differential test compares with).
   */
  fastFill: boolean;
  /** Fills done by the core and by fill() (not in stats: those are the same with fastFill on or off). */
  readonly fills = { core: 0, host: 0 };

  constructor(private readonly m: Machine, readonly cpu: Cpu, private readonly backing: ShadowBacking,
              readonly maxPages = 4096) {
    // The guest walker acts for `cpu`: same MAXPHYADDR (reserved address bits); the
    // registers follow in setGuestRegisters. No TLBs or caches: it must see memory.
    this.walker = m.createCpu({ tlb: false, psc: false, maxPhysAddr: cpu.maxPhysAddr });
    this.walker.setVmcs({ mode: 'nested', eptp: backing.walkerEptp });
    cpu.setVmcs({ mode: 'shadow' });
    this.fastFill = m.core.shadowTagsInit();
  }

  /**
   * The guest's view of its registers (CR3 is the guest's, not the shadow root; CR0.WP the
   * guest's). RFLAGS, PKRU and CPL are the vCPU's own: guest code changes them without an
   * exit (SYSCALL, IRETQ, STAC, WRPKRU), so only the vCPU has them right.
   */
  guestRegisters(): GuestRegs { return { ...this.guest, ...this.cpu.flagsState() }; }

  /** Gives the guest walker the vCPU's RFLAGS.AC, PKRU and CPL (SMAP and protection keys decide with them). */
  private syncWalker(): void {
    const f = this.cpu.flagsState();
    if (f.rflags !== this.guest.rflags || f.pkru !== this.guest.pkru || f.cpl !== this.guest.cpl) {
      this.guest.rflags = f.rflags; this.guest.pkru = f.pkru; this.guest.cpl = f.cpl;
      this.walker.setRegisters(f);
    }
  }

  /** Loads guest registers: the walker gets them as they are, the vCPU gets the shadow. */
  setGuestRegisters(r: Partial<Registers>): void {
    for (const [k, v] of Object.entries(r)) {
      if (v === undefined) continue;
      (this.guest as Record<string, bigint | number>)[k] = k === 'pkru' || k === 'cpl' ? Number(v) : BigInt(v);
    }
    this.rootGfn = Number((this.guest.cr3 & ADDR) >> 12n);
    this.lvl = this.guest.cr4 & CR4.LA57 ? 5 : 4;
    this.nxe = (this.guest.efer & EFER.NXE) !== 0n;
    // Shadow entries encode rights under the old NXE/paging mode: rebuild them.
    if ((r.cr0 !== undefined || r.cr4 !== undefined || r.efer !== undefined) && this.pages.size > 0) this.zapAll();
    this.walker.setRegisters(r);
    const { cr3: _cr3, ...rest } = r;
    this.cpu.setRegisters({ ...rest, cr0: this.guest.cr0 | CR0.WP });
    if (r.cr3 !== undefined || r.cr4 !== undefined) this.cpu.setRegisters({ cr3: this.vcpuCr3() });
  }

  private levels(): number { return this.lvl; }

  private page(level: number, gfn: number, direct: boolean, rightsKey = 0): ShadowPage {
    const key = pageKey(level, gfn, direct, rightsKey);
    let p = this.pages.get(key);
    if (p) return p;
    p = { hpa: this.backing.allocTableFrame(), level, gfn, direct };
    this.pages.set(key, p);
    this.byHpa.set(p.hpa, p);
    this.stats.shadowPages = this.pages.size;
    if (!direct) {
      this.m.core.shadowTag(Number(p.hpa >> 12n), gfn, level); // the core's fill finds it by this
      const list = this.byGfn.get(gfn) ?? [];
      list.push(p);
      this.byGfn.set(gfn, list);
      this.protect(gfn);
    }
    return p;
  }

  /** The vCPU's CR3: the shadow root for the guest's CR3, tagged with the guest's PCID. */
  private vcpuCr3(): bigint {
    const pcid = this.guest.cr4 & CR4.PCIDE ? this.guest.cr3 & 0xfffn : 0n;
    return this.rootFor(this.guest.cr3).hpa | pcid;
  }

  private rootFor(guestCr3: bigint, switching = false): ShadowPage {
    const gfn = Number((guestCr3 & ADDR) >> 12n);
    if (switching && this.pages.has(pageKey(this.levels(), gfn, false, 0))) this.stats.rootCacheHits++;
    return this.page(this.levels(), gfn, false);
  }

  /** Write-protects a guest frame in every shadow leaf that maps it. */
  private protect(gfn: number): void {
    if (this.protectedGfns.has(gfn)) return;
    this.protectedGfns.add(gfn);
    this.stats.protectedFrames = this.protectedGfns.size;
    this.backing.markPageTable?.(gfn, true);
    let changed = false;
    for (const spte of this.rmap.sptes(gfn)) {
      const v = this.m.memory.read64(spte);
      if (v & PTE.W) { this.m.memory.write64(spte, v & ~(PTE.W | PTE.D)); changed = true; }
    }
    // W 1→0 must be invalidated for every linear alias of the frame, not only the one
    // that filled the entry: flush the vCPU's TLB (KVM flushes remote TLBs here).
    if (changed) this.cpu.flushTlb();
  }

  /**
   * Drops the shadow leaves that map guest frame gfn at host frame `hpa` (the p2m moved or
   * re-protected it: sharing, swapping, sampling). Leaves since reused for another frame
   * are left alone; the next access re-walks and refills from the p2m.
   */
  zapGfn(gfn: number, hpa: bigint): boolean {
    if (!this.rmap.has(gfn)) return false;
    let changed = false;
    for (const spte of this.rmap.sptes(gfn)) {
      const v = this.m.memory.read64(spte);
      if (v & PTE.P && (v & ADDR) === hpa) { this.m.memory.write64(spte, 0n); changed = true; }
    }
    this.rmap.delete(gfn);
    if (changed) this.cpu.flushTlb(); // every linear alias of the frame, as in protect()
    return changed;
  }

  /** Clears the core's tags of the shadow pages (before their frames are freed: zapAll, VM destroy). */
  untagPages(): void {
    for (const p of this.pages.values()) if (!p.direct) this.m.core.shadowTag(Number(p.hpa >> 12n), 0, 0);
  }

  /** Makes sure a fill cannot run out of shadow pages midway (it never purges itself). */
  private reserve(): void {
    if (this.pages.size + 2 * this.levels() + 2 > this.maxPages) this.zapAll();
  }

  /** Drops every shadow page (memory pressure); the next accesses rebuild what they use. */
  zapAll(): void {
    this.untagPages();
    for (const p of this.pages.values()) this.backing.freeTableFrame(p.hpa);
    for (const gfn of this.protectedGfns) this.backing.markPageTable?.(gfn, false);
    this.pages.clear(); this.byGfn.clear(); this.rmap.clear(); this.protectedGfns.clear(); this.byHpa.clear();
    this.stats.zapAlls++;
    this.stats.shadowPages = 0;
    this.stats.protectedFrames = 0;
    this.cpu.flushTlb();
    this.cpu.setRegisters({ cr3: this.vcpuCr3() });
  }

  /**
   * Walks the guest for (va, access bits), backing unbacked frames on the way: the
   * walker's status (its result stays in the core: walker.lastTranslation), or OUTSIDE.
   */
  private walkGuest(va: bigint, acc: number): number {
    for (;;) {
      const st = this.walker.translateStatus(va, acc);
      if (st !== XLATE.EPT_VIOLATION) return st;
      this.outGpa = this.walker.exitGpa();
      this.outQual = this.walker.exitQualification();
      if (!this.backing.backGpa(this.outGpa, (this.outQual & EPT_QUAL.WRITE) !== 0)) return OUTSIDE;
    }
  }

  /** walkGuest with its result built. */
  private guestWalk(va: bigint, acc: Access) {
    const st = this.walkGuest(va, accessBits(acc));
    if (st !== OUTSIDE) return this.walker.lastTranslation(st);
    return { ok: false as const, fault: 'OUTSIDE' as const, gpa: this.outGpa, final: (this.outQual & EPT_QUAL.FINAL) !== 0,
      qualification: this.outQual };
  }

  /** A guest walk for a #PF at cr2 that did not succeed: the guest's fault, or the refused gpa. */
  private walkFailed(st: number, cr2: bigint): ShadowOutcome {
    if (st === OUTSIDE) {
      return { action: 'outside', gpa: this.outGpa, final: (this.outQual & EPT_QUAL.FINAL) !== 0, qualification: this.outQual };
    }
    const t = this.walker.lastTranslation(st);
    if (t.ok) throw new Error('walkFailed: the walk succeeded');
    if (t.fault === 'PF') {
      this.stats.reflectedFaults++;
      return { action: 'guestFault', errorCode: t.errorCode, cr2: t.cr2 };
    }
    throw new Error(`guest walk gave ${t.fault} at ${cr2.toString(16)}`);
  }

  /** Fills the shadow for cr2 after a successful guest walk; the gfn mapped. */
  private fillAfterWalk(cr2: bigint, write: boolean): number {
    this.reserve();
    return this.fillLeaf(cr2, write) ?? this.fill(cr2, this.walker.resultPa(), write);
  }

  /**
   * Builds the shadow path for va after a successful guest walk. Returns the target gfn.
   */
  private fill(va: bigint, hpa: bigint, write: boolean): number {
    this.fills.host++;
    const path = this.walker;
    const top = this.levels();
    const nxe = this.nxe;
    let leaf = 1;
    for (let l = top; l >= 1; l--) {
      if (l === 1 || (l <= 3 && path.walkValue(l) & PTE.PS)) { leaf = l; break; }
    }
    // The leaf's own rights; the upper levels' are in the links (the hardware ANDs them).
    const leafVal = path.walkValue(leaf);
    const w = (leafVal & PTE.W) !== 0n, u = (leafVal & PTE.U) !== 0n, nx = nxe && (leafVal & PTE.XD) !== 0n;
    // Index arithmetic on numbers: va >> 12 has at most 52 bits, exact in a double.
    const vpn = Number(va >> 12n);
    let sp = this.rootFor(this.guest.cr3);
    // Non-leaf levels shadow the guest's tables.
    for (let l = top; l > leaf; l--) {
      const ge = path.walkValue(l);
      const child = this.page(l - 1, Number((ge & ADDR) >> 12n), false);
      this.link(sp, vpn, l, child, PTE.P | PTE.A | (ge & (PTE.W | PTE.U)) | (nxe ? ge & PTE.XD : 0n));
      sp = child;
    }
    // A guest large page: direct tables down to 4 KiB.
    const pageFrames = FRAMES[leaf];
    const frameGfn = Number((leafVal & ADDR) >> 12n) - Number((leafVal & ADDR) >> 12n) % pageFrames;
    const inPage = vpn % pageFrames;
    const rightsKey = (w ? 1 : 0) | (u ? 2 : 0) | (nx ? 4 : 0) | (Number((leafVal >> 59n) & 15n) << 3);
    for (let l = leaf; l > 1; l--) {
      const spanFrames = FRAMES[l];
      const child = this.page(l - 1, frameGfn + inPage - inPage % spanFrames, true, rightsKey);
      this.link(sp, vpn, l, child, l === leaf ? PTE.P | PTE.A | PTE.W | PTE.U : NONLEAF);
      sp = child;
    }
    const gfn = frameGfn + inPage;
    const dirty = write || (leafVal & PTE.D) !== 0n;
    // A shared or write-protected frame stays read-only here: its first write must exit.
    const writable = w && dirty && !this.protectedGfns.has(gfn) && (this.backing.writable?.(gfn) ?? true);
    let spte = (hpa & ADDR) | LEAF_BASE | (leafVal & PK);
    if (writable) spte |= PTE.W | PTE.D;
    if (u) spte |= PTE.U;
    if (nx) spte |= PTE.XD;
    const at = Number(sp.hpa) + (vpn % 512) * 8;
    this.m.memory.write64(at, spte);
    this.rmap.add(gfn, at);
    return gfn;
  }

  /**
   * The core's fill of the common case (assembly/shadow-fill.ts: a 4 KiB guest leaf whose
   * shadow path exists): the leaf the host fill would write, after the same checks.
   * Returns the gfn mapped, or undefined when the host fill must run (nothing was done).
   */
  private fillLeaf(va: bigint, write: boolean): number | undefined {
    if (!this.fastFill) return undefined;
    const core = this.m.core;
    const r = core.shadowFill(this.cpu.ptr, this.walker.ptr, va, this.rootGfn, this.lvl, this.nxe, write);
    if (r === 0) return undefined;
    const gfn = core.shadowFillGfn();
    // Guest W and D (or a write): writable unless the frame is a page table or the p2m says no.
    if (r & SHADOW_FILL.pending) core.shadowFillCommit(!this.protectedGfns.has(gfn) && (this.backing.writable?.(gfn) ?? true));
    this.rmap.add(gfn, r - (r & 7));
    this.fills.core++;
    return gfn;
  }

  /** Points the entry for page vpn at `level` of shadow table sp to child (written only if it differs). */
  private link(sp: ShadowPage, vpn: number, level: number, child: ShadowPage, bits: bigint): void {
    const at = Number(sp.hpa) + (Math.floor(vpn / FRAMES[level]) % 512) * 8;
    const want = child.hpa | bits;
    if (this.m.memory.read64(at) !== want) this.m.memory.write64(at, want);
  }

  /**
   * A guest INVPCID (the core reports it as an INVLPG exit with its type): the core's
   * INVPCID on the guest's PCID, which tags the TLB entries (see vcpuCr3). An individual
   * address inside a guest large page (shadowed as 4 KiB pieces) drops everything.
   */
  invpcid(type: number, pcid: number, va: bigint): void {
    this.stats.invlpgs++;
    if (type === 0 && (this.largeZapped || this.viaDirect(va))) { this.cpu.flushTlb(); this.largeZapped = false; return; }
    this.cpu.invpcid(type, pcid, va);
  }

  /** Handles an exit of the shadow vCPU at batch op `index`. */
  handle(exit: { reason: string; index: number; cr2?: bigint; value?: bigint; va?: bigint },
         batch: AccessBatch): ShadowOutcome {
    if (exit.reason === 'CR3') {
      this.stats.cr3Switches++;
      this.reserve();
      const v = exit.value!, pcide = (this.guest.cr4 & CR4.PCIDE) !== 0n;
      this.guest.cr3 = pcide ? v & ~NO_FLUSH : v;  // with PCIDs bit 63 asks for no flush and is not stored
      this.rootGfn = Number((this.guest.cr3 & ADDR) >> 12n);
      this.walker.setRegisters({ cr3: this.guest.cr3 });
      // Flushes (the new PCID's non-global entries) unless bit 63 says not to, as the guest's MOV CR3 would.
      this.cpu.writeCr3(this.rootFor(v, true).hpa | (pcide ? v & (NO_FLUSH | 0xfffn) : 0n));
      return NEXT;
    }
    if (exit.reason === 'INVLPG') {
      this.stats.invlpgs++;
      // The TLB holds a guest large page as 4 KiB pieces: drop them all.
      if (this.largeZapped || this.viaDirect(exit.va!)) { this.cpu.flushTlb(); this.largeZapped = false; }
      else this.cpu.invlpg(exit.va!);
      return NEXT;
    }
    if (exit.reason !== 'PF') throw new Error(`shadow MMU cannot handle exit ${exit.reason}`);
    return this.pageFault(exit.index, exit.cr2!, batch);
  }

  private pageFault(index: number, cr2: bigint, batch: AccessBatch): ShadowOutcome {
    const op = batch.access(index);
    const acc = {
      write: op.kind === 'store', fetch: op.kind === 'fetch', implicit: op.implicit,
      user: !op.implicit && (op.user || this.guest.cpl === 3),
    };
    const st = this.walkGuest(cr2, accessBits(acc));
    if (st !== XLATE.ok) return this.walkFailed(st, cr2);
    const gfn = this.fillAfterWalk(cr2, acc.write);
    const repeated = this.lastIndex === index && this.lastVa === cr2;
    this.lastIndex = index; this.lastVa = cr2;
    if (acc.write && this.protectedGfns.has(gfn)) {
      this.stats.ptWritesEmulated++;
      return this.emulate(index, batch, acc);
    }
    if (repeated) { // the shadow cannot express this access (guest CR0.WP=0): emulate it
      this.stats.emulated++;
      return this.emulate(index, batch, acc);
    }
    this.stats.hiddenFaults++;
    return RETRY;
  }

  /**
   * Performs op `index` against guest memory through guest walks, all pages checked
   * before a byte moves (a fault on the second page leaves the first untouched, as on
   * hardware); zaps the shadow entries derived from written page-table entries.
   */
  private emulate(index: number, batch: AccessBatch, acc: Access): ShadowOutcome {
    this.lastIndex = -1; this.lastVa = -1n;
    const op = batch.op(index);
    const chunks: { hpa: bigint; gfn: number; at: number; n: number }[] = [];
    for (let b = 0; b < op.size; ) {
      const va = op.va + BigInt(b);
      const n = Math.min(op.size - b, 4096 - Number(va & 0xfffn));
      const t = this.guestWalk(va, acc);
      if (!t.ok) {
        if (t.fault === 'PF') { this.stats.reflectedFaults++; return { action: 'guestFault', errorCode: t.errorCode, cr2: t.cr2 }; }
        if (t.fault === 'OUTSIDE') return { action: 'outside', gpa: t.gpa, final: t.final, qualification: t.qualification };
        if (t.fault === 'GP') return { action: 'guestGP', va };
        throw new Error(`guest walk gave ${t.fault} at ${va.toString(16)}`);
      }
      chunks.push({ hpa: t.pa, gfn: this.gfnOfLastWalk(va), at: b, n });
      b += n;
    }
    let out = 0n;
    for (const { hpa, gfn, at, n } of chunks) {
      for (let k = 0; k < n; k++) {
        const pa = hpa + BigInt(k);
        if (acc.write) this.m.memory.write8(pa, Number((op.value >> BigInt(8 * (at + k))) & 0xffn));
        else out |= BigInt(this.m.memory.read8(pa)) << BigInt(8 * (at + k));
      }
      if (acc.write) this.zapWritten(gfn, hpa & 0xfffn, n);
    }
    if (!acc.write) batch.setValue(index, out);
    return NEXT;
  }

  /** A guest store hit a page-table page: drop the shadow entries of the written entries. */
  private zapWritten(gfn: number, offset: bigint, len: number): void {
    const shadows = this.byGfn.get(gfn);
    if (!shadows) return;
    const first = offset & ~7n, last = (offset + BigInt(len) - 1n) & ~7n;
    for (const sp of shadows) {
      for (let off = first; off <= last; off += 8n) {
        const old = this.m.memory.read64(sp.hpa + off);
        this.m.memory.write64(sp.hpa + off, 0n);
        // An unlinked direct table shadows a guest large page whose entry changed (its
        // frame, rights, A or D): empty it so no old 4 KiB piece is reused.
        const child = old & PTE.P ? this.byHpa.get(old & ADDR) : undefined;
        if (child?.direct) { this.m.memory.fill(child.hpa, 0, 4096); this.largeZapped = true; }
      }
    }
  }

  /** Whether va's shadow path runs through a direct table (a guest large page). */
  private viaDirect(va: bigint): boolean {
    let table = this.cpu.getRegisters().cr3 & ADDR;
    for (let l = this.levels(); l > 1; l--) {
      const e = this.m.memory.read64(table + ((va >> BigInt(3 + 9 * l)) & 511n) * 8n);
      if (!(e & PTE.P)) return false;
      table = e & ADDR;
      if (this.byHpa.get(table)?.direct) return true;
    }
    return false;
  }

  /** gfn of the page the last guest walk ended in. */
  private gfnOfLastWalk(va: bigint): number {
    for (let l = this.levels(); l >= 1; l--) {
      const e = this.walker.walkValue(l);
      if (l === 1 || (l <= 3 && e & PTE.PS)) {
        const bytes = 1n << BigInt(12 + 9 * (l - 1));
        return Number(((e & ADDR & ~(bytes - 1n)) + (va & (bytes - 1n))) >> 12n);
      }
    }
    return -1;
  }
  // ---- machine-code vCPUs (Cpu.run; see vcpu-code.ts) ----

  /**
   * A #PF exit of a vCPU running machine code at cr2 with access `acc`. Hidden faults are
   * fixed ('retry'); faults the guest's tables cause are reflected ('guestFault'). A write
   * the shadow cannot allow directly — to a guest page-table page, or one the guest allows
   * only through its CR0.WP=0 — returns 'step': the caller runs the instruction once with
   * the page opened by openForStep, which then zaps the shadows of what it wrote.
   */
  cpuFault(cr2: bigint, acc: Access):
      ShadowOutcome | { action: 'step'; va: bigint; hpa: bigint; gfn: number } {
    this.syncWalker(); // guest code ran since the last exit: its flags may have changed
    const st = this.walkGuest(cr2, accessBits(acc));
    if (st !== XLATE.ok) return this.walkFailed(st, cr2);
    const pa = this.walker.resultPa();
    const gfn = this.fillAfterWalk(cr2, acc.write);
    const repeated = this.lastIndex === -2 && this.lastVa === cr2;
    this.lastIndex = -2; this.lastVa = cr2;
    if (acc.write && (this.protectedGfns.has(gfn) || repeated)) {
      this.lastIndex = -1; this.lastVa = -1n;
      return { action: 'step', va: cr2, hpa: pa, gfn };
    }
    this.stats.hiddenFaults++;
    return RETRY;
  }

  /**
   * Makes the shadow leaf of va writable for one instruction. The returned function closes
   * it again and zaps the shadow entries derived from every guest entry the instruction
   * changed in that frame (found by comparing the frame with a snapshot).
   */
  openForStep(va: bigint, hpa: bigint, gfn: number): () => void {
    let table = this.cpu.getRegisters().cr3 & ADDR;
    let at = -1n;
    for (let l = this.levels(); l >= 1; l--) {
      const ea = table + ((va >> BigInt(3 + 9 * l)) & 511n) * 8n;
      const e = this.m.memory.read64(ea);
      if (!(e & PTE.P)) break;
      if (l === 1) { at = ea; break; }
      table = e & ADDR;
    }
    if (at < 0n) throw new Error(`shadow MMU: no shadow leaf for ${va.toString(16)} after a fill`);
    const old = this.m.memory.read64(at);
    const frame = hpa & ~0xfffn;
    const before = this.m.memory.read(frame, 4096);
    this.m.memory.write64(at, old | PTE.W | PTE.D);
    this.cpu.invlpg(va);
    return () => {
      this.m.memory.write64(at, old);
      this.cpu.invlpg(va);
      const after = this.m.memory.read(frame, 4096);
      this.stats.ptWritesEmulated++;
      for (let off = 0; off < 4096; off += 8) {
        let same = true;
        for (let k = 0; k < 8; k++) if (before[off + k] !== after[off + k]) { same = false; break; }
        if (!same) this.zapWritten(gfn, BigInt(off), 8);
      }
    };
  }
}
