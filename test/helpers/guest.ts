// Helpers for hypervisor tests: a guest's page tables built in its own guest-physical
// memory (through the host's GuestMemory view), registers, and a run loop that plays the
// guest kernel (skips faulting ops) while recording the exits it sees.
import { PageTableBuilder, FrameBump, CR0, CR4, EFER, type AccessBatch } from '../../src/index.js';
import type { Vm, Vcpu, VcpuExit } from '../../src/hypervisor/index.js';

/** Guest page tables in gpa [ptBase, ptEnd) of the VM. */
export function guestTables(vm: Vm, ptBase = 0x10_0000n, ptEnd = 0x20_0000n): PageTableBuilder {
  const gmem = vm.memory.asPhysicalMemory();
  return new PageTableBuilder(gmem, new FrameBump(gmem, ptBase, ptEnd), 4);
}

/** 4-level long mode, CPL 0, CR3 = root. */
export function boot(vcpu: Vcpu, root: bigint): void {
  vcpu.setRegisters({ cr0: CR0.PG | CR0.WP, cr3: root, cr4: CR4.PAE, efer: EFER.LME | EFER.NXE, cpl: 0 });
}

/**
 * Runs the whole batch; `on` decides where to resume after each exit (default: skip the
 * op, as a guest kernel that kills the access would). Returns the exits seen.
 */
export function runAll(vcpu: Vcpu, b: AccessBatch, on: (x: Exclude<VcpuExit, { reason: 'end' }>) => number = (x) => x.index + 1): VcpuExit[] {
  const seen: VcpuExit[] = [];
  let at = 0;
  for (let guard = 0; guard < 10 * b.length + 100; guard++) {
    const x = vcpu.run(b, at);
    if (x.reason === 'end') return seen;
    seen.push(x);
    at = on(x);
  }
  throw new Error('runAll: no progress');
}
