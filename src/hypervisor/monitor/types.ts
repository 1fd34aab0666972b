// Types shared by the hypervisor layer: VM modes, the exits vcpu.run returns (defined in
// src/core/exit.ts), the cost model.

import type { PagingMode } from '../../core/paging-mode.js';

/** A VM's paging mode: the one PagingMode type (src/core/paging-mode.ts). */
export type VmMode = PagingMode;

// The exits are defined with the core, so guests and devices can name them without
// importing the hypervisor (as KVM's kvm_run lives in its uapi header).
export type { VcpuExit, VcpuExitReason } from '../../core/exit.js';

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
