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
  /** Sets up a new vCPU's translation; returns its shadow MMU in shadow mode. */
  attachVcpu(machine: Machine, cpu: Cpu, eptp: () => bigint, vpid: number, backing: () => ShadowBacking): ShadowMmu | undefined;
}

const native: Paging = {
  mode: 'native', direct: true, maxVcpus: 64, eptWalked: false,
  attachVcpu: () => undefined,
};

const shadow: Paging = {
  mode: 'shadow', direct: false, maxVcpus: 1, eptWalked: false,
  maxVcpusReason: 'shadow mode runs one vCPU per VM: the shadow MMU keeps per-vCPU shadow tables, ' +
    'so a guest page-table write on one vCPU would not zap the others\' shadows',
  attachVcpu: (machine, cpu, _eptp, _vpid, backing) => new ShadowMmu(machine, cpu, backing()),
};

const nested: Paging = {
  mode: 'nested', direct: false, maxVcpus: 64, eptWalked: true,
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
