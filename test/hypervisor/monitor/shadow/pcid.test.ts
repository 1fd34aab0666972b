// Guest PCIDs under shadow paging behave as on the CPU (native) and under nested paging:
// a MOV CR3 with bit 63 keeps the new PCID's translations, even a stale one the guest left
// behind on purpose; INVPCID single-context drops them; MOV from CR3 does not return bit
// 63. The coherence checker sees the one stale use in every mode.
import { describe, it, expect } from 'vitest';
import { CR0, CR4, EFER } from '../../../../src/index.js';
import { Hypervisor, type VmMode } from '../../../../src/hypervisor/index.js';
import { guestTables } from '../../../helpers/guest.js';
import { asm, HAVE_AS } from '../../../x86/asm.js';

const MiB = 2 ** 20;
const CODE = 0x20_0000n, GDT = 0x30_0000n, DESC = 0x30_2000n, STACK = 0x41_0000n;
const X = 0x5000_0000n, OLD_GPA = 0x62_0000n, NEW_GPA = 0x63_0000n;
const NO_FLUSH = 1n << 63n;

function program(root: bigint, pteX: bigint): string {
  return `
    mov rsp, ${STACK}
    mov rax, cr4
    or rax, ${1 << 17}
    mov cr4, rax                       /* CR4.PCIDE (CR3[11:0] = 0) */
    mov rax, ${root | 1n}
    mov cr3, rax                       /* PCID 1, flushed */
    mov rbx, [${X}]                    /* PCID 1 caches X -> OLD */
    mov rax, ${root | 2n | NO_FLUSH}
    mov cr3, rax                       /* PCID 2, no flush */
    mov rax, ${NEW_GPA | 0x63n}
    mov [${pteX}], rax                 /* remap X, no invalidation */
    mov rcx, [${X}]                    /* PCID 2 has no entry: NEW */
    mov rax, ${root | 1n | NO_FLUSH}
    mov cr3, rax                       /* back to PCID 1 without a flush */
    mov rdx, [${X}]                    /* PCID 1's entry survived: OLD (a stale use) */
    mov r8, cr3                        /* root | 1: bit 63 is not stored */
    mov qword ptr [${DESC}], 1
    mov qword ptr [${DESC + 8n}], 0
    mov eax, 1
    invpcid rax, [${DESC}]             /* single context, PCID 1 */
    mov rsi, [${X}]                    /* NEW */
    mov rax, ${root | 2n}
    mov cr3, rax                       /* PCID 2, flushed */
    mov rdi, [${X}]                    /* NEW */
    hlt
  `;
}

async function runIn(mode: VmMode) {
  const hv = await Hypervisor.create({ hostMemoryBytes: 96 * MiB });
  const vm = hv.createVm({ memoryBytes: 32 * MiB, mode, cpu: { coherenceChecker: true } });
  const vcpu = vm.vcpus[0];
  const pt = guestTables(vm);
  pt.mapRange(0n, 0n, 8 * MiB, 4096, { user: false });
  pt.map(X, OLD_GPA, 4096, { user: false });
  const mem = vm.memory;
  mem.write64(GDT + 8n, 0x0020_9a00_0000_0000n);
  mem.write64(GDT + 16n, 0x0000_9200_0000_0000n);
  mem.write64(OLD_GPA, 0x01dn);
  mem.write64(NEW_GPA, 0x2e3n);
  mem.write(CODE, asm(program(pt.root, pt.entryAddr(X, 1)), CODE));
  vcpu.setRegisters({ cr0: CR0.PG | CR0.PE | CR0.WP, cr3: pt.root, cr4: CR4.PAE, efer: EFER.LME | EFER.NXE, cpl: 0 });
  vcpu.setRegisters({ rip: CODE, cs: 8n, ss: 16n, gdtrBase: GDT, gdtrLimit: 23n });
  const x = vcpu.run({ maxInstructions: 1000 });
  const r = vcpu.cpu.getRegisters();
  return { x, r, stale: vcpu.cpu.staleUses().length, guestCr3: vcpu.guestRegisters().cr3, root: pt.root };
}

describe.skipIf(!HAVE_AS)('guest PCIDs under shadow paging', () => {
  it('keep, drop and report translations exactly as native and nested paging do', async () => {
    for (const mode of ['native', 'nested', 'shadow'] as const) {
      const { x, r, stale, guestCr3, root } = await runIn(mode);
      expect(x.reason, mode).toBe('HLT');
      expect([r.rbx, r.rcx, r.rdx, r.rsi, r.rdi], mode).toEqual([0x01dn, 0x2e3n, 0x01dn, 0x2e3n, 0x2e3n]);
      expect(r.r8, mode).toBe(root | 1n);
      expect(guestCr3, mode).toBe(root | 2n);
      expect(stale, mode).toBe(1);                     // the read of X through PCID 1's kept entry
    }
  });

  it.each([
    ['type 1 with a PCID while CR4.PCIDE = 0', 1n, 5n, 0n],
    ['type 0 with a non-canonical address', 0n, 0n, 0x8000_0000_0000_0000n],
  ])('INVPCID %s is #GP(0) in every mode', async (_what, type, pcid, la) => {
    for (const mode of ['native', 'nested', 'shadow'] as const) {
      const hv = await Hypervisor.create({ hostMemoryBytes: 96 * MiB });
      const vm = hv.createVm({ memoryBytes: 32 * MiB, mode });
      const vcpu = vm.vcpus[0];
      const pt = guestTables(vm);
      pt.mapRange(0n, 0n, 8 * MiB, 4096, { user: false });
      vm.memory.write64(GDT + 8n, 0x0020_9a00_0000_0000n);
      vm.memory.write64(GDT + 16n, 0x0000_9200_0000_0000n);
      vm.memory.write(CODE, asm(`
        mov qword ptr [${DESC}], ${pcid}
        mov rax, ${la}
        mov [${DESC + 8n}], rax
        mov eax, ${type}
        invpcid rax, [${DESC}]
        hlt`, CODE));
      vcpu.setRegisters({ cr0: CR0.PG | CR0.PE | CR0.WP, cr3: pt.root, cr4: CR4.PAE, efer: EFER.LME | EFER.NXE, cpl: 0 });
      vcpu.setRegisters({ rip: CODE, cs: 8n, ss: 16n, gdtrBase: GDT, gdtrLimit: 23n });
      vcpu.cpu.setExceptionBitmap(1 << 13);
      expect(vcpu.run({ maxInstructions: 100 }), mode).toMatchObject({ reason: 'EXCEPTION', vector: 13, errorCode: 0 });
    }
  });
});
