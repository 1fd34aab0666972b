// The guest balloon driver: the Linux vmw_balloon driver's behaviour (fact sheet §1.5-1.10)
// speaking the VMware balloon protocol over its real transport, as vmw_balloon.c's
// __vmballoon_cmd does (and memvisor-os's C driver): one `inl (%dx)` on port 0x5670 with
// the arguments and results in the general registers (src/devices/backdoor-inl.ts).
//
// One hypercall = one small batch on the guest's own vCPU:
//   setGprs  RAX = magic, RCX = command, RBX = arg 1 (64-bit), RSI = arg 2, RDX = 0x5670
//   [stores: batch entries]  IN 0x5670 (size 4: the one IO exit; the board completes it with
//   the register file: EAX status → the op and RAX, RBX result, RCX capabilities)
//   [loads: batch entry statuses]   then gprs() for RBX / RCX.
// The batch page is written and read through the kernel's direct map, so every byte the
// driver touches goes through the MMU.
//
// Per tick (call tick() once per simulated second): reset if required (pop the balloon
// without UNLOCK, START, batch page, GUEST_ID), GET_TARGET, then inflate or deflate.
// Rate limits are the adaptive ones of the 2010/2014 drivers (§1.10): inflation capped at
// NOSLEEP_ALLOC_MAX per cycle, or at rateAlloc for SLOW_CYCLES cycles after an allocation
// failure (which halves rateAlloc); deflation capped at rateFree (halved on error). The
// current driver's 512-frame deflate slack and its 2 MiB → 4 KiB fallback are kept.

import type { AccessBatch } from '../../src/core/batch.js';
import type { GuestPlatform } from '../platform.js';
import { runOps } from './run.js';
import { BACKDOOR_PORT as P } from '../../src/devices/backdoor-protocol.js';
import { BALLOON_MAGIC, CMD, CAP, STATUS, BATCH_MAX_ENTRIES, FRAMES_2M } from '../../src/devices/balloon-protocol.js';

/** What the driver needs from the guest kernel's frame allocator. */
export interface PinnedAllocator {
  /** A pinned 4 KiB frame (never swapped or moved), or null when memory is short. */
  allocPinned(): number | null;
  free(gfn: number): void;
  /** Optional: a pinned, 512-frame-aligned 2 MiB run (its first gfn), or null. */
  allocPinned2M?(): number | null;
  free2M?(gfn: number): void;
}

export interface BalloonDriverOptions {
  /** The guest's machine: its vCPU runs the hypercalls, IO goes to its ports, other exits to its host. */
  platform: GuestPlatform;
  alloc: PinnedAllocator;
  /** A batch of at least 1100 ops, reused for every hypercall. */
  batch: AccessBatch;
  /** The guest-virtual address of gfn in the kernel's direct map (for the batch page). */
  directMap(gfn: number): bigint;
  /** Guest RAM in 4 KiB frames (totalram_pages, sent with GET_TARGET). */
  totalFrames: number;
  /** Capabilities to request (default basic | batched | 2 MiB). */
  capabilities?: number;
}

export const RATE = {
  NOSLEEP_ALLOC_MAX: 16384, ALLOC_MIN: 512, ALLOC_MAX: 2048, ALLOC_INC: 16,
  FREE_MIN: 512, FREE_MAX: 16384, FREE_INC: 16, SLOW_CYCLES: 4, MAX_REFUSED: 16, DEFLATE_SLACK: 512,
} as const;
const GUEST_LINUX = 1;
const U32 = 0xffff_ffffn;

export interface BalloonDriverStats {
  ticks: number; hypercalls: number; inflated: number; deflated: number; refused: number;
  resets: number; allocFailures: number; errors: number; lastStatus: number;
}

interface Call { status: number; rbx: bigint; ecx: number; entries: number[] }

export class BalloonDriver {
  readonly stats: BalloonDriverStats = { ticks: 0, hypercalls: 0, inflated: 0, deflated: 0, refused: 0, resets: 0, allocFailures: 0, errors: 0, lastStatus: 0 };
  resetRequired = true;
  capabilities = 0;
  target = 0;
  rateAlloc: number = RATE.ALLOC_MAX;
  rateFree: number = RATE.FREE_MAX;
  slowCycles = 0;
  private batchMax = 1;
  private batchPage: number | null = null;
  private readonly pages4k: number[] = [];
  private readonly pages2m: number[] = [];

  constructor(private readonly o: BalloonDriverOptions) {
    if (o.batch.capacity < 2 * BATCH_MAX_ENTRIES + 16) throw new RangeError('the balloon driver needs a batch of at least 1040 ops');
  }

  /** Frames in the balloon, as the driver counts them. */
  get size(): number { return this.pages4k.length + this.pages2m.length * FRAMES_2M; }
  /** The gfns in the balloon (every frame of each 2 MiB page). */
  ballooned(): number[] {
    return [...this.pages4k, ...this.pages2m.flatMap((g) => Array.from({ length: FRAMES_2M }, (_, i) => g + i))];
  }
  private get use2M(): boolean {
    return (this.capabilities & (CAP.BATCHED_CMDS | CAP.BATCHED_2M_CMDS)) === (CAP.BATCHED_CMDS | CAP.BATCHED_2M_CMDS) &&
      !!this.o.alloc.allocPinned2M && !!this.o.alloc.free2M;
  }

  /** One worker run (vmballoon_work): call once per simulated second. */
  tick(): void {
    this.stats.ticks++;
    if (this.resetRequired) { this.reset(); if (this.resetRequired) return; }
    const t = this.cmd(CMD.GET_TARGET, BigInt(this.o.totalFrames));
    if (t.status !== STATUS.SUCCESS) return;
    const change = this.change();
    if (change > 0) this.inflate(change);
    else if (change < 0) this.deflate(-change);
  }

  /** vmballoon_change: target − size, with the 2 MiB deflate slack. */
  private change(): number {
    const size = this.size;
    if (this.resetRequired) return 0;
    if (this.target < size && this.target !== 0 && size - this.target < RATE.DEFLATE_SLACK) return 0;
    return this.target - size;
  }

  /** vmballoon_reset: pop without UNLOCK, START, batch page, GUEST_ID. */
  reset(): void {
    this.pop();
    const s = this.cmd(CMD.START, BigInt(this.o.capabilities ?? (CAP.BASIC_CMDS | CAP.BATCHED_CMDS | CAP.BATCHED_2M_CMDS)));
    if (s.status === STATUS.SUCCESS_WITH_CAPABILITIES) this.capabilities = s.ecx;
    else if (s.status === STATUS.SUCCESS) this.capabilities = CAP.BASIC_CMDS;
    else { this.stats.errors++; return; } // retry on the next tick
    this.stats.resets++;
    if (this.capabilities & CAP.BATCHED_CMDS) {
      this.batchPage ??= this.o.alloc.allocPinned();
      if (this.batchPage === null) { this.cmd(CMD.START, 0n); this.stats.allocFailures++; return; }
      this.batchMax = BATCH_MAX_ENTRIES;
    } else {
      if (this.batchPage !== null) { this.o.alloc.free(this.batchPage); this.batchPage = null; }
      this.batchMax = 1;
    }
    this.resetRequired = false;
    if (this.cmd(CMD.GUEST_ID, BigInt(GUEST_LINUX)).status !== STATUS.SUCCESS) this.stats.errors++; // only logged
  }

  /** Frees every ballooned page to the guest without telling the host (the host forgets on START). */
  pop(): void {
    for (const g of this.pages4k.splice(0)) this.o.alloc.free(g);
    for (const g of this.pages2m.splice(0)) this.o.alloc.free2M!(g);
  }

  /** Module unload: START(0) first, so touching the freed pages causes no spurious reset. */
  unload(): void {
    this.cmd(CMD.START, 0n);
    this.pop();
    if (this.batchPage !== null) { this.o.alloc.free(this.batchPage); this.batchPage = null; }
    this.resetRequired = true;
  }

  private inflate(change: number): void {
    if (this.slowCycles > 0) this.slowCycles--;
    const cap = this.slowCycles > 0 ? this.rateAlloc : RATE.NOSLEEP_ALLOC_MAX;
    let big = this.use2M, allocated = 0, failed = false;
    const refused: { gfn: number; big: boolean }[] = [];
    let refusedHere = 0;
    while (change > 0 && allocated < cap && !this.resetRequired) {
      const frames = big ? FRAMES_2M : 1;
      const want = Math.min(this.batchMax, Math.ceil(change / frames), Math.ceil((cap - allocated) / frames));
      const got: number[] = [];
      while (got.length < want) {
        const g = big ? this.o.alloc.allocPinned2M!() : this.o.alloc.allocPinned();
        if (g === null) break;
        got.push(g);
      }
      const short = got.length < want;
      if (got.length > 0) {
        const r = this.lockOp(got, big, true);
        if (r === null) { for (const g of got) this.freePage(g, big); return this.endInflate(refused, allocated, false); }
        let stop = false;
        got.forEach((g, i) => {
          const st = r[i];
          if (st === STATUS.SUCCESS) { (big ? this.pages2m : this.pages4k).push(g); change -= frames; allocated += frames; this.stats.inflated += frames; return; }
          this.stats.refused++;
          refusedHere++;
          if (st === STATUS.ERROR_RESET || st === STATUS.ERROR_PPN_NOTNEEDED) {
            this.freePage(g, big);
            stop = true;
            if (st === STATUS.ERROR_RESET) this.resetRequired = true;
          } else if (refused.length < RATE.MAX_REFUSED) refused.push({ gfn: g, big });
          else this.freePage(g, big);
        });
        if (stop) break;
      }
      if (short || refusedHere >= RATE.MAX_REFUSED) {
        if (short && !big) { failed = true; break; }
        if (!big) break;
        big = false; refusedHere = 0; // 2 MiB → 4 KiB
      }
    }
    this.endInflate(refused, allocated, failed);
  }

  private endInflate(refused: { gfn: number; big: boolean }[], allocated: number, failed: boolean): void {
    for (const r of refused) this.freePage(r.gfn, r.big); // vmballoon_release_refused_pages
    if (failed) {
      this.stats.allocFailures++;
      this.slowCycles = RATE.SLOW_CYCLES;
      this.rateAlloc = Math.max(RATE.ALLOC_MIN, Math.floor(this.rateAlloc / 2));
    } else if (allocated >= this.rateAlloc) {
      this.rateAlloc = Math.min(RATE.ALLOC_MAX, this.rateAlloc + RATE.ALLOC_INC * Math.floor(allocated / this.rateAlloc));
    }
  }

  private deflate(excess: number): void {
    let left = Math.min(excess, this.rateFree), error = false;
    for (const big of [false, true]) {
      const list = big ? this.pages2m : this.pages4k;
      const frames = big ? FRAMES_2M : 1;
      while (left >= frames && list.length > 0 && !this.resetRequired) {
        const take = list.splice(list.length - Math.min(this.batchMax, Math.floor(left / frames), list.length));
        const r = this.lockOp(take, big, false);
        if (r === null) { list.push(...take); error = true; break; }
        take.forEach((g, i) => {
          if (r[i] === STATUS.SUCCESS) { this.freePage(g, big); left -= frames; this.stats.deflated += frames; }
          else { list.push(g); error = true; if (r[i] === STATUS.ERROR_RESET) this.resetRequired = true; }
        });
        if (r.some((s) => s !== STATUS.SUCCESS)) break;
      }
      if (error) break;
    }
    this.rateFree = error ? Math.max(RATE.FREE_MIN, Math.floor(this.rateFree / 2)) : Math.min(RATE.FREE_MAX, this.rateFree + RATE.FREE_INC);
  }

  private freePage(g: number, big: boolean): void { if (big) this.o.alloc.free2M!(g); else this.o.alloc.free(g); }

  /** Locks/unlocks pages (batched when negotiated); per-page statuses, or null if the command failed. */
  private lockOp(gfns: number[], big: boolean, lock: boolean): number[] | null {
    if (this.batchMax === 1 && !big) {
      const out: number[] = [];
      for (const g of gfns) {
        const s = this.cmd(lock ? CMD.LOCK : CMD.UNLOCK, BigInt(g)).status;
        if (s === STATUS.ERROR_RESET || s === STATUS.ERROR_BUSY || s === STATUS.ERROR_CMD_INVALID) {
          if (out.length === 0) return null;
          while (out.length < gfns.length) out.push(s);
          return out;
        }
        out.push(s);
      }
      return out;
    }
    const cmd = big ? (lock ? CMD.BATCHED_2M_LOCK : CMD.BATCHED_2M_UNLOCK) : (lock ? CMD.BATCHED_LOCK : CMD.BATCHED_UNLOCK);
    const c = this.cmd(cmd, BigInt(this.batchPage!), gfns.length, gfns);
    return c.status === STATUS.SUCCESS ? c.entries.map((e) => e & 0x1f) : null;
  }

  /** One backdoor call as one batch; `entries` are written to the batch page first and read back after. */
  private cmd(cmd: number, arg1: bigint, arg2 = 0, entries: number[] = []): Call {
    const b = this.o.batch.clear();
    const va = entries.length ? this.o.directMap(this.batchPage!) : 0n;
    entries.forEach((g, i) => b.store(va + BigInt(i * 8), BigInt(g) << 12n, 8));
    const exec = b.length;
    b.in(P, 4);                                        // inl (%dx)
    const first = b.length;
    entries.forEach((_, i) => b.load(va + BigInt(i * 8), 8));
    const vcpu = this.o.platform.vcpu;
    vcpu.setGprs({ rax: BigInt(BALLOON_MAGIC), rcx: BigInt(cmd), rbx: BigInt.asUintN(64, arg1), rsi: BigInt(arg2), rdx: BigInt(P) });
    this.run(b);
    this.stats.hypercalls++;
    const status = Number(b.value(exec));              // EAX (RAX holds it zero-extended too)
    this.stats.lastStatus = status;
    const { rbx, rcx } = vcpu.gprs();
    if (status === STATUS.ERROR_RESET) this.resetRequired = true;
    if (status === STATUS.SUCCESS && cmd !== CMD.START && cmd !== CMD.GUEST_ID && cmd !== CMD.VMCI_DOORBELL_SET) this.target = Number(rbx);
    return { status, rbx, ecx: Number(rcx & U32), entries: entries.map((_, i) => Number(b.value(first + i) & 0xfffn)) };
  }

  private run(b: AccessBatch): void {
    runOps(this.o.platform, b, 0, {
      who: 'balloon driver', maxRuns: 4 * b.length + 64,
      unhandled: (x) => new Error(`balloon driver: unexpected ${x.reason} exit at op ${x.index}`),
    });
  }

}
