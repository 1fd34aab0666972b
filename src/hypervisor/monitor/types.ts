// Types shared by the hypervisor layer: VM modes, the exits vcpu.run returns, the cost model.

import type { Gpa, Gva, Gfn } from '../../core/addr.js';

export type VmMode = 'native' | 'shadow' | 'nested';

/**
 * What vcpu.run returns (KVM's kvm_run.exit_reason, in miniature): the first event the
 * hypervisor did not handle itself. The op at `index` did not complete; resume with
 * run(batch, index) to retry it or run(batch, index + 1) to skip it (after emulating
 * IO / HLT, or after the guest kernel handled a PF).
 */
export type VcpuExit =
  | { reason: 'end' }
  /** A guest page fault, for the guest kernel (shadow mode: only faults the guest's tables cause). */
  | { reason: 'PF'; index: number; errorCode: number; cr2: Gva }
  | { reason: 'GP'; index: number; va: Gva }
  /** Port I/O; for direction 'in' put the answer in with batch.setValue(index, v). */
  | { reason: 'IO'; index: number; port: number; size: number; direction: 'in' | 'out'; value: bigint }
  | { reason: 'HLT'; index: number }
  /**
   * A gpa outside the VM's memory (native: an hpa outside host memory), as KVM's MMIO exit.
   * final = false when the gpa is a guest paging-structure reference, not the data access.
   */
  | { reason: 'MMIO'; index: number; gpa: Gpa; gva?: Gva; write: boolean; final: boolean }
  /** A write to a write-protected or shared frame (page-table tracking, copy-on-write). */
  | { reason: 'WRITE_PROTECT'; index: number; gpa: Gpa; gfn: Gfn; gva?: Gva }
  /** An EPT violation the hypervisor does not handle yet (a swapped or ballooned gfn). */
  | { reason: 'EPT_VIOLATION'; index: number; gpa: Gpa; gva: Gva; qualification: number; p2m: number }
  /** Our EPT is malformed: a hypervisor bug, reported rather than hidden. */
  | { reason: 'EPT_MISCONFIG'; index: number; gpa: Gpa; gva: Gva }
  /**
   * A host frame was needed (to back gpa, or for an EPT / shadow table) and its pool is
   * empty: reclaim (swap, balloon), then retry `index`. gpa is absent when unknown.
   */
  | { reason: 'OUT_OF_FRAMES'; index: number; pool: 'vm' | 'hypervisor'; gpa?: Gpa }
  | { reason: 'unsupported'; index: number };

export type VcpuExitReason = VcpuExit['reason'];

/** Costs of the hypervisor's involvement, in modeled cycles (added to the core's). */
export interface HvCosts {
  /** A VM exit and re-entry (a VMEXIT/VMRESUME round trip on a recent core is ~1000-2000). */
  exit: number;
  /** Allocating a host frame and installing it in the p2m and EPT. */
  pageAlloc: number;
  /** Zeroing a 4 KiB frame (~16 bytes per cycle). */
  pageZero: number;
  /** Shadow paging: building shadow entries after a hidden fault. */
  shadowFill: number;
  /** Shadow paging: emulating a guest store to a write-protected page-table page. */
  ptWriteEmulation: number;
  /** Shadow paging: emulating MOV CR3 or INVLPG. */
  cr3Emulation: number;
}

export const DEFAULT_HV_COSTS: HvCosts = {
  exit: 1500, pageAlloc: 300, pageZero: 256, shadowFill: 400, ptWriteEmulation: 600, cr3Emulation: 200,
};
