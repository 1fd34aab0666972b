// Guest code changes RFLAGS.AC (STAC/CLAC) and PKRU (WRPKRU) without an exit. Under shadow
// paging the shadow MMU walks the guest's tables with its own walker when it fills a
// shadow entry, so SMAP and protection-key checks must use the flags the guest has now,
// not the ones it had at the last register load: the same program must end the same under
// native, nested and shadow paging, with the values the SDM gives.

import { describe, it, expect } from 'vitest';
import { CR0, CR4, EFER } from '../../src/index.js';
import { Hypervisor, type VmMode } from '../../src/hypervisor/index.js';
import { guestTables, flatGdtAndPfGate } from '../helpers/guest.js';
import { asm, HAVE_AS } from './asm.js';

const MiB = 2 ** 20;
const CODE = 0x20_0000n, GDT = 0x30_0000n, IDT = 0x30_1000n, STACK = 0x41_0000n;
const U1 = 0x5000_0000n, U2 = 0x5000_1000n, U3 = 0x5000_2000n;   // user pages, never touched before
const G1 = 0x60_0000n, G2 = 0x60_1000n, G3 = 0x60_2000n;

// Each load of a user page from CPL 0: with AC = 1 SMAP allows it, with AC = 0 it faults;
// U3 has protection key 1, and PKRU.AD1 = 1 makes it fault even with AC = 1. The #PF
// handler records CR2 in r11..r13 (shifting) and resumes at the label after the load.
const PROGRAM = `
    mov rsp, ${STACK}
    xor r11, r11
    xor r12, r12
    xor r13, r13
    stac
    mov r8, [${U1}]           /* AC = 1: allowed */
  r1:
    clac
    mov rbx, [${U2}]          /* AC = 0: SMAP #PF */
  r2:
    mov eax, 0x4              /* PKRU.AD for key 1 */
    xor ecx, ecx
    xor edx, edx
    wrpkru
    stac
    mov rsi, [${U3}]          /* key 1 access-disabled: PK #PF */
  r3:
    hlt
    .org 0x400
    /* #PF: r13 <- r12 <- r11 <- CR2; resume after the faulting load (table of resume points) */
    mov r13, r12
    mov r12, r11
    mov r11, cr2
    add rsp, 8
    lea rax, [rip + r2]
    cmp r11, ${U2}
    je 1f
    lea rax, [rip + r3]
    cmp r11, ${U3}
    je 1f
    lea rax, [rip + r1]
  1: mov [rsp], rax
    iretq
`;

async function runIn(mode: VmMode) {
  const hv = await Hypervisor.create({ hostMemoryBytes: 96 * MiB });
  const vm = hv.createVm({ memoryBytes: 32 * MiB, mode });
  const vcpu = vm.vcpus[0];
  const pt = guestTables(vm);
  pt.mapRange(0n, 0n, 8 * MiB, 4096, { user: false });
  pt.map(U1, G1, 4096, { user: true });
  pt.map(U2, G2, 4096, { user: true });
  pt.map(U3, G3, 4096, { user: true, pkey: 1 });
  const mem = vm.memory;
  flatGdtAndPfGate(vm, GDT, IDT, CODE + 0x400n);
  mem.write64(G1, 0x1111n);
  mem.write64(G2, 0x2222n);
  mem.write64(G3, 0x3333n);
  mem.write(CODE, asm(PROGRAM, CODE));
  vcpu.setRegisters({ cr0: CR0.PG | CR0.PE | CR0.WP, cr3: pt.root, cr4: CR4.PAE | CR4.SMAP | CR4.PKE,
    efer: EFER.LME | EFER.NXE, cpl: 0, rflags: 2n, pkru: 0 });
  vcpu.setRegisters({ rip: CODE, cs: 8n, ss: 16n, gdtrBase: GDT, gdtrLimit: 23n, idtrBase: IDT, idtrLimit: 0xfffn });
  const x = vcpu.run({ maxInstructions: 100_000 });
  const r = vcpu.cpu.getRegisters();
  return { x: x.reason, r8: r.r8, rbx: r.rbx, rsi: r.rsi, r11: r.r11, r12: r.r12, r13: r.r13, flags: vcpu.guestRegisters() };
}

describe.skipIf(!HAVE_AS)('SMAP and protection keys with flags guest code changed (no exit in between)', () => {
  it('native, nested and shadow paging end alike, with the SDM\'s outcomes', async () => {
    const [native, nested, shadow] = await Promise.all((['native', 'nested', 'shadow'] as const).map(runIn));
    expect(native).toMatchObject({ x: 'HLT', r8: 0x1111n, r11: U3, r12: U2, r13: 0n });
    expect(native.rbx).toBe(0n); // the load faulted: RBX untouched
    expect(native.rsi).toBe(0n);
    const pick = (o: typeof native) => ({ ...o, flags: undefined });
    expect(pick(nested)).toEqual(pick(native));
    expect(pick(shadow)).toEqual(pick(native));
    // The vCPU's own flags are what guestRegisters reports under shadow paging too.
    expect(shadow.flags.pkru).toBe(4);
    expect(shadow.flags.rflags & (1n << 18n)).toBe(1n << 18n);
  });
});
