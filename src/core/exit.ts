// What a vCPU's run returns: the exit reasons and their data, the ABI between the vCPU and
// whoever drives it (the hypervisor's run loop, the board, a TypeScript guest kernel).
// It sits at the bottom so every layer can name an exit without importing the hypervisor.

import type { Gpa, Gva, Gfn } from './addr.js';

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

/** The core's exit reason codes (cpuExitReason) and translate results (cpuTranslate), checked at load (abi.ts). */
export const EXIT = {
  PF: 1, GP: 2, unsupported: 3, MMIO: 4, EPT_VIOLATION: 5, EPT_MISCONFIG: 6, IO: 7, HLT: 8, CR3: 9, INVLPG: 10,
} as const;
export const XLATE = { ok: 0, PF: 1, GP: 2, unsupported: 3, EPT_VIOLATION: 4, EPT_MISCONFIG: 5 } as const;
/** The core's shadow fill (assembly/shadow-fill.ts): low bits of the spte address it returns; 0 = not done. */
export const SHADOW_FILL = { done: 1, pending: 2 } as const;
