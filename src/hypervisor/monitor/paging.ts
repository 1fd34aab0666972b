// The paging strategy of a VM, chosen once when the VM is created, as KVM's kvm_init_mmu
// fills the MMU's function pointers once: everything that differs between native, shadow
// and nested paging is a field here, so the rest of the hypervisor asks the strategy
// instead of comparing mode strings. Pagers ask one helper (requirePageable) whether
// they can run on a VM.

import type { Cpu } from '../../core/cpu.js';
import type { Machine } from '../../core/machine.js';
import type { PagingMode } from '../../core/paging-mode.js';
import { ShadowMmu, type ShadowBacking } from './shadow.js';

export interface Paging {
  readonly mode: PagingMode;
  /**
   * gpa = hpa: the VM owns host frames [0, n), its p2m is the identity and nothing can be
   * remapped, so no pager (sharing, swap, sampling, balloon) can run and it must be alone.
   */
  readonly direct: boolean;
  /** Most vCPUs a VM may have (shadow: one; see maxVcpusReason). */
  readonly maxVcpus: number;
  readonly maxVcpusReason?: string;
  /** The EPT is walked by the vCPU: A/D flags apply and changes need INVEPT. */
  readonly eptWalked: boolean;
  /** Sets up a new vCPU's translation; returns its shadow MMU (with `shadowPages` at most) in shadow mode. */
  attachVcpu(machine: Machine, cpu: Cpu, eptp: () => bigint, vpid: number, backing: () => ShadowBacking, shadowPages: number): ShadowMmu | undefined;
  /** Whether the vCPUs run on shadow tables (each vCPU's shadow pool is hypervisor memory). */
  readonly shadowPool: boolean;
}

/** Default most shadow pages per vCPU (ShadowMmu zaps all of them before it would exceed it). */
export const DEFAULT_SHADOW_POOL_PAGES = 4096;

/**
 * EPT table frames needed to map gfns [0, frames) with 4 KiB leaves: one table per 512
 * entries at each level below the root, and the root. This is the most a VM's EPT can
 * hold (large leaves need fewer; a split never needs more than the 4 KiB map).
 *
 *   level 1 (PT)   ⌈frames / 512⌉      level 3 (PDPT)  ⌈frames / 512³⌉
 *   level 2 (PD)   ⌈frames / 512²⌉     root (PML4/5)   1
 */
export function eptTableFrames(frames: number, levels: 4 | 5 = 4): number {
  if (!Number.isSafeInteger(frames) || frames < 0) throw new RangeError(`frames must be a whole number >= 0, got ${frames}`);
  let n = 1;
  for (let l = 1; l < levels; l++) n += Math.ceil(frames / 512 ** l);
  return n;
}

export interface TableReserveOptions { eptLevels?: 4 | 5; vcpus?: number; shadowPoolPages?: number }

/**
 * The most hypervisor-memory frames a VM's paging structures can take: native none; nested
 * its EPT (eptTableFrames); shadow the same EPT (the shadow MMU's guest walker walks it)
 * plus each vCPU's shadow pool. Admission control reserves it as part of the VM's overhead.
 */
export function tableReserveFrames(frames: number, mode: PagingMode, o: TableReserveOptions = {}): number {
  const p = pagingFor(mode);
  if (p.direct) return 0;
  const shadow = p.shadowPool ? (o.vcpus ?? 1) * (o.shadowPoolPages ?? DEFAULT_SHADOW_POOL_PAGES) : 0;
  return eptTableFrames(frames, o.eptLevels ?? 4) + shadow;
}

const native: Paging = {
  mode: 'native', direct: true, maxVcpus: 64, eptWalked: false, shadowPool: false,
  attachVcpu: () => undefined,
};

const shadow: Paging = {
  mode: 'shadow', direct: false, maxVcpus: 1, eptWalked: false, shadowPool: true,
  maxVcpusReason: 'shadow mode runs one vCPU per VM: the shadow MMU keeps per-vCPU shadow tables, ' +
    'so a guest page-table write on one vCPU would not zap the others\' shadows',
  attachVcpu: (machine, cpu, _eptp, _vpid, backing, pages) => new ShadowMmu(machine, cpu, backing(), pages),
};

const nested: Paging = {
  mode: 'nested', direct: false, maxVcpus: 64, eptWalked: true, shadowPool: false,
  attachVcpu: (_machine, cpu, eptp, vpid) => { cpu.setVmcs({ mode: 'nested', eptp: eptp(), vpid }); return undefined; },
};

const STRATEGIES: Record<PagingMode, Paging> = { native, shadow, nested };

/** The strategy of a mode; a clear error for anything else. */
export function pagingFor(mode: PagingMode): Paging {
  const p = STRATEGIES[mode];
  if (!p) throw new RangeError(`paging mode must be native, shadow or nested, got ${JSON.stringify(mode)}`);
  return p;
}

/** Throws unless the VM's memory can be remapped (every pager's precondition); `why` names the pager's need. */
export function requirePageable(vm: { readonly id: number; readonly paging: Paging }, why: string): void {
  if (vm.paging.direct) throw new Error(`VM ${vm.id} is ${vm.paging.mode}: ${why}`);
}
