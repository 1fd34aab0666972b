// One guest under one translation mode on its own hypervisor: the harness behind
// `memvisor compare` and the three-mode differential tests. It plays the guest kernel's
// part for guest page faults (a callback) and lets the hypervisor (src/hypervisor)
// handle everything else. Under native paging the guest's frames are host frames
// [0, n) (gpa = hpa, the baseline); nested and shadow VMs get frames on first touch.

import { Hypervisor } from '../hypervisor/monitor/hypervisor.js';
import type { Vm } from '../hypervisor/monitor/vm.js';
import type { Vcpu } from '../hypervisor/monitor/vcpu.js';
import type { HvCosts, VcpuExit } from '../hypervisor/monitor/types.js';
import type { Cpu, CpuOptions } from '../core/cpu.js';
import type { AccessBatch } from '../core/batch.js';
import type { PhysicalMemory } from '../core/memory.js';
import type { Machine } from '../core/machine.js';
import type { ShadowMmu } from '../hypervisor/monitor/shadow.js';
import { CR0, CR4, EFER, PAGE_4K, PAGE_2M } from '../core/bits.js';
import { PAGING_MODES, type PagingMode } from '../core/paging-mode.js';

/** The paging mode (the one PagingMode type). */
export type Mode = PagingMode;
export const MODES = PAGING_MODES;

export interface GuestMachineOptions {
  guestBytes: bigint;
  /** Host (EPT) page size backing guest memory under nested paging; memory is prefaulted. */
  hostPage?: 4096 | 2097152;
  cpu?: CpuOptions;
  costs?: Partial<HvCosts>;
}

export interface GuestRegs { cr0?: bigint; cr4?: bigint; efer?: bigint; cpl?: number }

type GuestFault = Extract<VcpuExit, { reason: 'PF' }>;

export class GuestMachine {
  private constructor(readonly mode: Mode, readonly hv: Hypervisor, readonly vm: Vm, readonly vcpu: Vcpu) {}

  static async create(mode: Mode, opts: GuestMachineOptions): Promise<GuestMachine> {
    const hvBytes = 0x400_0000; // 64 MiB for EPT and shadow tables
    const hv = await Hypervisor.create({ hostMemoryBytes: opts.guestBytes + BigInt(hvBytes), hypervisorBytes: hvBytes, costs: opts.costs });
    const vm = hv.createVm({ memoryBytes: opts.guestBytes, mode, cpu: opts.cpu });
    if (mode === 'nested') vm.prefault(0n, opts.guestBytes, opts.hostPage === 2097152 ? PAGE_2M : PAGE_4K);
    return new GuestMachine(mode, hv, vm, vm.vcpus[0]);
  }

  get m(): Machine { return this.hv.machine; }
  get cpu(): Cpu { return this.vcpu.cpu; }
  get shadow(): ShadowMmu | undefined { return this.vcpu.shadow; }
  /** Guest-physical memory as the host sees it (writes back frames on demand). */
  get gmem(): PhysicalMemory { return this.vm.memory.asPhysicalMemory(); }
  get exits(): Record<string, number> { return this.vcpu.exits; }

  /** Loads the guest's registers (CR3 = a guest root). */
  start(cr3: bigint, r: GuestRegs = {}): void {
    this.vcpu.setRegisters({
      cr0: r.cr0 ?? CR0.PG | CR0.WP, cr3, cr4: r.cr4 ?? CR4.PAE, efer: r.efer ?? EFER.LME | EFER.NXE, cpl: r.cpl ?? 0,
    });
  }

  /** Runs batch ops from `start` to the end; guest page faults go to onFault (returns the resume index). */
  run(b: AccessBatch, onFault: (x: GuestFault) => number, start = 0): void {
    for (let at = start; ;) {
      const x = this.vcpu.run(b, at);
      if (x.reason === 'end') return;
      if (x.reason !== 'PF') throw new Error(`${this.mode}: unexpected exit ${x.reason} at op ${x.index}`);
      at = onFault(x);
    }
  }

  /** Exits to the hypervisor (shadow faults and intercepts, EPT exits; not native guest #PFs). */
  hypervisorExits(): number { return this.vcpu.stats.vmExits; }

  /** Zeroes counters, exit counts and hypervisor cycles (after a warm-up). */
  resetStats(): void { this.vcpu.resetCounters(); }

  /** Modeled cycles: the core's cost model plus exits and hypervisor work. */
  cycles(): number { return this.vcpu.cycles(); }
}
