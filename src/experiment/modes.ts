// One guest under one translation mode, on its own machine: the harness behind
// `memvisor compare` and the three-mode differential tests. It plays the part of the
// hypervisor (EPT / shadow MMU) and forwards guest page faults to a handler (the guest
// kernel's role). Guest memory is gpa [0, guestBytes): at hpa 0 natively (so guest
// tables hold host addresses, the baseline), at GUEST_BASE under nested and shadow.

import { Machine } from '../core/machine.js';
import type { Cpu, BatchExit, CpuOptions } from '../core/cpu.js';
import type { AccessBatch } from '../core/batch.js';
import type { PhysicalMemory } from '../core/memory.js';
import { CR0, CR4, EFER, EPT, eptp } from '../core/bits.js';
import { FrameBump } from '../core/pagetable.js';
import { ShadowMmu } from '../hypervisor/shadow.js';

export type Mode = 'native' | 'nested' | 'shadow';
export const MODES: readonly Mode[] = ['native', 'shadow', 'nested'];
export const GUEST_BASE = 0x800_0000n; // 128 MiB

/** Costs of hypervisor involvement, in modeled cycles. */
export interface HvCosts { exit: number; shadowFill: number; ptWriteEmulation: number; cr3Emulation: number }
export const DEFAULT_HV_COSTS: HvCosts = { exit: 1200, shadowFill: 400, ptWriteEmulation: 600, cr3Emulation: 200 };

/** Guest-physical view of a slice of host memory, for building guest tables from the host. */
export function guestView(mem: PhysicalMemory, base: bigint): PhysicalMemory {
  const h = (gpa: bigint) => gpa + base;
  return {
    read64: (a: bigint) => mem.read64(h(a)), write64: (a: bigint, v: bigint) => mem.write64(h(a), v),
    fill: (a: bigint, b: number, n: number) => mem.fill(h(a), b, n),
    read: (a: bigint, n: number) => mem.read(h(a), n),
  } as unknown as PhysicalMemory;
}

export interface GuestMachineOptions {
  guestBytes: bigint;
  /** Host (EPT) page size backing guest memory under nested paging. */
  hostPage?: 4096 | 2097152;
  cpu?: CpuOptions;
  costs?: Partial<HvCosts>;
}

export interface GuestRegs { cr0?: bigint; cr4?: bigint; efer?: bigint; cpl?: number }

export class GuestMachine {
  readonly gmem: PhysicalMemory;
  readonly exits: Record<string, number> = {};
  shadow?: ShadowMmu;
  private hvCycles = 0;
  private readonly costs: HvCosts;

  private constructor(readonly mode: Mode, readonly m: Machine, readonly cpu: Cpu,
                      private readonly frames: FrameBump, private readonly ept: bigint, opts: GuestMachineOptions) {
    this.gmem = guestView(m.memory, mode === 'native' ? 0n : GUEST_BASE);
    this.costs = { ...DEFAULT_HV_COSTS, ...opts.costs };
  }

  static async create(mode: Mode, opts: GuestMachineOptions): Promise<GuestMachine> {
    const hvArea = GUEST_BASE + opts.guestBytes;
    const m = await Machine.create({ memoryBytes: Number(hvArea + 0x400_0000n) });
    const frames = new FrameBump(m.memory, hvArea, hvArea + 0x400_0000n);
    let root = 0n;
    if (mode !== 'native') {
      root = frames.alloc();
      mapEpt(m.memory, frames, root, opts.guestBytes, BigInt(opts.hostPage ?? 4096));
    }
    return new GuestMachine(mode, m, m.createCpu(opts.cpu), frames, root, opts);
  }

  /** Loads the guest's registers (CR3 = a guest root) and starts translating. */
  start(cr3: bigint, r: GuestRegs = {}): void {
    const regs = { cr0: r.cr0 ?? CR0.PG | CR0.WP, cr3, cr4: r.cr4 ?? CR4.PAE, efer: r.efer ?? EFER.LME | EFER.NXE, cpl: r.cpl ?? 0 };
    if (this.mode === 'native') { this.cpu.setRegisters(regs); return; }
    const pointer = eptp(this.ept, 4, false);
    if (this.mode === 'nested') {
      this.cpu.setRegisters(regs);
      this.cpu.setVmcs({ mode: 'nested', eptp: pointer, vpid: 1 });
      return;
    }
    this.shadow = new ShadowMmu(this.m, this.cpu, {
      allocTableFrame: () => this.frames.alloc(), freeTableFrame: () => {},
      walkerEptp: pointer, backGpa: () => false,
    });
    this.shadow.setGuestRegisters(regs);
  }

  /**
   * Runs batch ops from `start` to the end. Guest page faults go to onFault, which
   * returns the op index to resume at; other exits the hypervisor handles.
   */
  run(b: AccessBatch, onFault: (x: Extract<BatchExit, { reason: 'PF' }>) => number, start = 0): void {
    let at = start;
    for (let guard = 0; at < b.length; guard++) {
      if (guard > 100 * b.length + 1000) throw new Error(`${this.mode}: no progress at op ${at}`);
      const x = this.cpu.execute(b, at).exit;
      if (x.reason === 'end') return;
      this.exits[x.reason] = (this.exits[x.reason] ?? 0) + 1;
      if (x.reason === 'PF' && !this.shadow) { at = onFault(x); continue; }
      if (this.shadow && (x.reason === 'PF' || x.reason === 'CR3' || x.reason === 'INVLPG')) {
        this.hvCycles += this.costs.exit;
        const before = { ...this.shadow.stats };
        const o = this.shadow.handle(x, b);
        const st = this.shadow.stats;
        this.hvCycles += (st.hiddenFaults - before.hiddenFaults) * this.costs.shadowFill +
          (st.ptWritesEmulated - before.ptWritesEmulated + st.emulated - before.emulated) * this.costs.ptWriteEmulation +
          (st.cr3Switches - before.cr3Switches + st.invlpgs - before.invlpgs) * this.costs.cr3Emulation;
        if (o.action === 'retry') at = x.index;
        else if (o.action === 'next') at = x.index + 1;
        else if (o.action === 'guestFault') {
          this.exits.guestPF = (this.exits.guestPF ?? 0) + 1;
          at = onFault({ reason: 'PF', index: x.index, errorCode: o.errorCode, cr2: o.cr2 });
        } else throw new Error(`${this.mode}: gpa ${o.gpa.toString(16)} is outside guest memory`);
        continue;
      }
      throw new Error(`${this.mode}: unexpected exit ${x.reason} at op ${x.index}`);
    }
  }

  /** Exits to the hypervisor: shadow faults and intercepts, EPT exits (not guest #PFs). */
  hypervisorExits(): number {
    const guestPf = this.mode === 'shadow' ? 0 : this.exits.PF ?? 0;
    return Object.entries(this.exits).reduce((s, [k, v]) => (k === 'guestPF' ? s : s + v), 0) - guestPf;
  }

  /** Zeroes the core's counters, the exit counts and the hypervisor cycles (after a warm-up). */
  resetStats(): void {
    this.cpu.resetCounters();
    for (const k of Object.keys(this.exits)) delete this.exits[k];
    this.hvCycles = 0;
  }

  /** Modeled cycles: the core's cost model plus hypervisor exits and work. */
  cycles(): number { return this.cpu.cycles() + this.hvCycles; }
}

/** Identity-offset EPT: gpa [0, bytes) → hpa GUEST_BASE + gpa, pages of `page` bytes. */
function mapEpt(mem: PhysicalMemory, frames: FrameBump, root: bigint, bytes: bigint, page: bigint): void {
  const level = page === 4096n ? 1 : 2;
  for (let gpa = 0n; gpa < bytes; gpa += page) {
    let t = root;
    for (let l = 4; l > level; l--) {
      const ea = t + ((gpa >> BigInt(3 + 9 * l)) & 511n) * 8n;
      let e = mem.read64(ea);
      if ((e & 7n) === 0n) { e = frames.alloc() | 7n; mem.write64(ea, e); }
      t = e & 0xf_ffff_ffff_f000n;
    }
    mem.write64(t + ((gpa >> BigInt(3 + 9 * level)) & 511n) * 8n,
      (GUEST_BASE + gpa) | EPT.R | EPT.W | EPT.X | EPT.MT_WB | (level > 1 ? EPT.PS : 0n));
  }
}
