// Helpers for tests that run a guest on a VM: its page tables built in its own
// guest-physical memory (through the host's GuestMemory view), registers, the one
// "booted direct-map VM" (bootDirectMap), and a run loop that plays the guest kernel
// (skips faulting ops) while recording the exits it sees.
import { PageTableBuilder, FrameBump, CR0, CR4, EFER, PAGE_2M, type AccessBatch, type MapFlags } from '../../src/index.js';
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

/** Where the test guests map all of guest-physical memory. */
export const DIRECT = 0x4000_0000_00n;

/**
 * A booted direct-map VM: guest tables in gfns [ptFirst, ptEnd) map all of guest-physical
 * memory at DIRECT with 2 MiB pages (with `flags`), and vCPU 0 boots on them in long mode.
 */
export function bootDirectMap(vm: Vm, o: { ptFirst?: number; ptEnd?: number; flags?: MapFlags } = {}): PageTableBuilder {
  const pt = guestTables(vm, BigInt(o.ptFirst ?? 0x100) << 12n, BigInt(o.ptEnd ?? 0x200) << 12n);
  pt.mapRange(DIRECT, 0n, Number(vm.memoryBytes), PAGE_2M, o.flags);
  boot(vm.vcpus[0], pt.root);
  return pt;
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

/**
 * A flat long-mode GDT (selector 8: 64-bit code, 16: data) and an IDT whose #PF gate (vector
 * 14, interrupt gate, DPL 0) enters `handler`, written into guest memory at gdt and idt.
 */
export function flatGdtAndPfGate(vm: Vm, gdt: bigint, idt: bigint, handler: bigint): void {
  const mem = vm.memory;
  mem.write64(gdt + 8n, 0x0020_9a00_0000_0000n);
  mem.write64(gdt + 16n, 0x0000_9200_0000_0000n);
  mem.write64(idt + 14n * 16n, (handler & 0xffffn) | (8n << 16n) | (0x8en << 40n) | (((handler >> 16n) & 0xffffn) << 48n));
  mem.write64(idt + 14n * 16n + 8n, 0n);
}
