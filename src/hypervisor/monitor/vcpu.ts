// A vCPU and its run loop (KVM's KVM_RUN in miniature): execute the batch in the core
// until an exit, handle what the hypervisor owns (first-touch backing, shadow faults,
// CR3/INVLPG intercepts), and return everything else to the caller.
//
// Cost model: cycles() = the core's cycles (accesses, TLB hits, walk references, faults)
// + for every VM exit `costs.exit` + the hypervisor's work (pages allocated and zeroed,
// shadow fills, emulated page-table writes, emulated CR3/INVLPG).

import type { Cpu, BatchExit, Registers, GeneralRegisters } from '../../core/cpu.js';
import type { AccessBatch } from '../../core/batch.js';
import { EPT_QUAL } from '../../core/bits.js';
import { type Gpa, type Gva, gfnOf, gpa as toGpa, gva as toGva, hex } from '../../core/addr.js';
import { OutOfFramesError } from './frames.js';
import { P2M, isUnbacked, needsResolve } from './p2m.js';
import type { ShadowMmu } from './shadow.js';
import type { Vm } from './vm.js';
import type { VcpuExit } from './types.js';
import { runCode, isCodeRunOptions, type CodeRunOptions, type CodeExit } from './vcpu-code.js';

/** A retry of the same op more often than this means the hypervisor is not making progress. */
const MAX_RETRIES = 16;

type CoreExit = Exclude<BatchExit, { reason: 'end' }>;
type Outcome = number | VcpuExit; // a resume index, or an exit for the caller

export interface VcpuStats {
  /** Exits to the hypervisor (a guest #PF under native or nested paging is not one). */
  vmExits: number;
  /** Exits the hypervisor handled without returning to the caller. */
  handled: number;
  /** Guest frames this vCPU's exits backed. */
  pagesBacked: number;
  /** Modeled cycles of exits and hypervisor work. */
  hvCycles: number;
  /** Exits a pager resolved (swap-in, copy-on-write break, sampling trap). */
  resolved: number;
  /** Modeled cycles the vCPU waited for synchronous devices (a DMA disk transfer). */
  stallCycles: number;
}

export class Vcpu {
  /** Exits by the core's reason (EPT_VIOLATION, PF, IO, HLT, CR3, INVLPG, ...). */
  readonly exits: Record<string, number> = {};
  readonly stats: VcpuStats = { vmExits: 0, handled: 0, pagesBacked: 0, hvCycles: 0, resolved: 0, stallCycles: 0 };

  constructor(readonly vm: Vm, readonly id: number, readonly cpu: Cpu, readonly vpid: number,
              /** Shadow mode: the shadow MMU that owns this vCPU's CR3. */
              readonly shadow?: ShadowMmu) {}

  /** Loads guest registers (in shadow mode CR3 is the guest's; the vCPU gets the shadow root). */
  setRegisters(r: Partial<Registers>): void {
    if (this.shadow) this.shadow.setGuestRegisters(r);
    else this.cpu.setRegisters(r);
  }

  /** The general registers; they live in the CPU in every paging mode (shadow paging owns only CR0/CR3). */
  gprs(): GeneralRegisters {
    const r = this.cpu.getRegisters();
    return { rax: r.rax, rbx: r.rbx, rcx: r.rcx, rdx: r.rdx, rsi: r.rsi, rdi: r.rdi };
  }

  /** Loads general registers (a guest's MOVs before a port hypercall; the host's results after it). */
  setGprs(r: Partial<GeneralRegisters>): void { this.cpu.setRegisters(r); }

  /** The guest's registers as the guest sees them. */
  guestRegisters(): ReturnType<ShadowMmu['guestRegisters']> {
    return this.shadow ? this.shadow.guestRegisters() : this.cpu.getRegisters();
  }

  /**
   * Runs batch ops from `start` until an exit the hypervisor does not handle itself; or,
   * given options, runs guest machine code from RIP (see vcpu-code.ts).
   */
  run(batch: AccessBatch, start?: number): VcpuExit;
  run(opts: CodeRunOptions): CodeExit;
  run(arg: AccessBatch | CodeRunOptions, start = 0): VcpuExit | CodeExit {
    if (isCodeRunOptions(arg)) return runCode(this, arg);
    const batch = arg;
    if (this.vm.isDestroyed) throw new Error(`VM ${this.vm.id} was destroyed: its vCPUs cannot run`);
    let at = start, last = -1, retries = 0;
    for (;;) {
      const x = this.cpu.execute(batch, at).exit;
      if (x.reason === 'end') return x;
      this.exits[x.reason] = (this.exits[x.reason] ?? 0) + 1;
      if (this.isVmExit(x.reason)) { this.stats.vmExits++; this.stats.hvCycles += this.vm.costs.exit; }
      const o = this.handleOrReclaim(x, batch);
      if (typeof o !== 'number') return o;
      this.stats.handled++;
      retries = o === last ? retries + 1 : 0;
      if (retries > MAX_RETRIES) throw new Error(`vCPU ${this.vm.id}.${this.id}: no progress at op ${o} (${x.reason})`);
      last = o;
      at = o;
    }
  }

  private isVmExit(reason: string): boolean {
    if (this.vm.mode === 'native' || reason === 'GP') return false;
    return this.vm.mode === 'shadow' || reason !== 'PF';
  }

  /** An empty frame pool becomes an exit the caller can act on (reclaim, then retry). */
  private handleOrReclaim(x: CoreExit, batch: AccessBatch): Outcome {
    try {
      return this.handle(x, batch);
    } catch (e) {
      if (!(e instanceof OutOfFramesError)) throw e;
      const gpa = x.reason === 'EPT_VIOLATION' ? toGpa(x.gpa) : undefined;
      return { reason: 'OUT_OF_FRAMES', index: x.index, pool: e.pool, gpa };
    }
  }

  private handle(x: CoreExit, batch: AccessBatch): Outcome {
    switch (x.reason) {
      case 'PF': return this.shadow ? this.shadowExit(x, batch) : { ...x, cr2: toGva(x.cr2) };
      case 'CR3': case 'INVLPG': return this.shadowExit(x, batch);
      case 'EPT_VIOLATION': return this.eptViolation(x, batch);
      case 'EPT_MISCONFIG': return { ...x, gpa: toGpa(x.gpa), gva: toGva(x.gva) };
      case 'GP': return { ...x, va: toGva(x.va) };
      case 'IO': case 'HLT': return x;
      case 'MMIO':
        if (this.vm.mode !== 'native') throw new Error(`hypervisor bug: a ${this.vm.mode} vCPU reached hpa ${hex(x.pa)} outside host memory`);
        return { reason: 'MMIO', index: x.index, gpa: toGpa(x.pa), gva: mmioGva(batch, x.index, x.pa), write: isWrite(batch, x.index), final: true };
      default: return { reason: 'unsupported', index: x.index };
    }
  }

  /** Nested mode: first touch of an unbacked gfn backs it; the rest goes to the caller. */
  private eptViolation(x: Extract<CoreExit, { reason: 'EPT_VIOLATION' }>, batch: AccessBatch): Outcome {
    const gpa = toGpa(x.gpa), gva = toGva(x.gva), q = x.qualification;
    if (!this.vm.contains(gpa)) {
      return { reason: 'MMIO', index: x.index, gpa, gva, write: isWrite(batch, x.index), final: (q & EPT_QUAL.FINAL) !== 0 };
    }
    const gfn = gfnOf(gpa);
    const w = this.vm.p2m.raw(gfn);
    if (isUnbacked(w)) return this.back(gpa, x.index);
    if (needsResolve(w, (q & EPT_QUAL.WRITE) !== 0)) { // swapped, shared and written, or trapped
      const c = this.vm.resolve(gfn, (q & EPT_QUAL.WRITE) !== 0);
      if (c !== null) { this.stats.hvCycles += c; this.stats.resolved++; return x.index; }
    }
    return this.refused(x.index, gpa, gva, q);
  }

  /** An in-VM gpa the EPT refused that no pager made usable: the caller's exit (nested and shadow alike). */
  private refused(index: number, gpa: Gpa, gva: Gva, q: number): VcpuExit {
    const gfn = gfnOf(gpa), w = this.vm.p2m.raw(gfn);
    if (w & P2M.PRESENT && q & EPT_QUAL.WRITE && w & (P2M.WRITE_PROTECTED | P2M.SHARED)) {
      return { reason: 'WRITE_PROTECT', index, gpa, gfn, gva };
    }
    return { reason: 'EPT_VIOLATION', index, gpa, gva, qualification: q, p2m: w };
  }

  private back(gpa: Gpa, index: number): Outcome {
    this.vm.backGfn(gfnOf(gpa), true); // an empty pool throws: see handleOrReclaim
    this.stats.pagesBacked++;
    this.stats.hvCycles += this.vm.costs.pageAlloc + this.vm.costs.pageZero;
    return index; // retry the op: the EPT now maps the frame
  }

  /** Shadow mode: the shadow MMU handles its faults and intercepts; we charge its work. */
  private shadowExit(x: Extract<CoreExit, { reason: 'PF' | 'CR3' | 'INVLPG' }>, batch: AccessBatch): Outcome {
    const sh = this.shadow!;
    const s = sh.stats; // the counts chargeShadow bills, taken before (in locals: no object per exit)
    const hidden = s.hiddenFaults, emulated = s.ptWritesEmulated + s.emulated, intercepts = s.cr3Switches + s.invlpgs;
    const backed = this.vm.stats.pagesBacked, paged = this.vm.stats.pagerCycles;
    let o;
    try {
      o = sh.handle(x, batch);
    } finally {
      this.chargeShadow(s.hiddenFaults - hidden, s.ptWritesEmulated + s.emulated - emulated,
        s.cr3Switches + s.invlpgs - intercepts, this.vm.stats.pagesBacked - backed);
      this.stats.hvCycles += this.vm.stats.pagerCycles - paged; // swap-ins, COW breaks, traps in guest walks
    }
    if (o.action === 'retry') return x.index;
    if (o.action === 'next') return x.index + 1;
    if (o.action === 'guestFault') return { reason: 'PF', index: x.index, errorCode: o.errorCode, cr2: toGva(o.cr2) };
    if (o.action === 'guestGP') return { reason: 'GP', index: x.index, va: toGva(o.va) };
    const gpa = toGpa(o.gpa);
    const gva = toGva(x.reason === 'PF' ? x.cr2 : 0n); // refusals come from page faults only
    if (!this.vm.contains(gpa)) return { reason: 'MMIO', index: x.index, gpa, gva, write: isWrite(batch, x.index), final: o.final };
    return this.refused(x.index, gpa, gva, o.qualification);
  }

  /** Bills shadow-MMU work: fills, emulated writes, emulated CR3/INVLPG, pages backed. */
  private chargeShadow(fills: number, emulated: number, intercepts: number, pages: number): void {
    const c = this.vm.costs;
    this.stats.pagesBacked += pages;
    this.stats.hvCycles += pages * (c.pageAlloc + c.pageZero) + fills * c.shadowFill +
      emulated * c.ptWriteEmulation + intercepts * c.cr3Emulation;
  }

  /** Raises an external interrupt (vector 16..255) at the vCPU's local APIC. */
  injectInterrupt(vector: number): void { this.cpu.injectInterrupt(vector); }

  /** Exception vectors (bit n = vector n) that exit to the caller instead of reaching the guest's IDT. */
  setExceptionBitmap(bits: number): void { this.cpu.setExceptionBitmap(bits); }

  /** The vCPU waits `cycles` for a device (synchronous I/O): time passes, no work is done. */
  stall(cycles: number): void {
    if (!(cycles >= 0)) throw new RangeError(`stall cycles must be >= 0, got ${cycles}`);
    this.stats.stallCycles += cycles;
  }

  /** Modeled cycles: the core's plus exits, hypervisor work and device waits. */
  cycles(): number { return this.cpu.cycles() + this.stats.hvCycles + this.stats.stallCycles; }

  /** The core's counters plus exit counts (exit_<reason>) and the hypervisor's; cycles is the total. */
  counters(): Record<string, number> {
    const c = this.cpu.counters();
    const out: Record<string, number> = { ...c, coreCycles: c.cycles, ...this.stats };
    for (const [k, v] of Object.entries(this.exits)) out[`exit_${k}`] = v;
    out.cycles = c.cycles + this.stats.hvCycles + this.stats.stallCycles;
    return out;
  }

  resetCounters(): void {
    this.cpu.resetCounters();
    for (const k of Object.keys(this.exits)) delete this.exits[k];
    Object.assign(this.stats, { vmExits: 0, handled: 0, pagesBacked: 0, hvCycles: 0, resolved: 0, stallCycles: 0 });
  }
}

const isWrite = (b: AccessBatch, i: number): boolean => b.op(i).kind === 'store';

/**
 * The linear address of a native MMIO access, as the other modes report it: the op's va,
 * or the second page's first byte when the op crosses a page and that page's pa is the
 * one outside memory (its page offset is 0, the first page's is the op's).
 */
function mmioGva(b: AccessBatch, i: number, pa: bigint): Gva {
  const va = b.op(i).va;
  return toGva((pa & 0xfffn) === (va & 0xfffn) ? va : (va | 0xfffn) + 1n);
}
