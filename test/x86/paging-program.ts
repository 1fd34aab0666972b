// The guest program of the paging-mode tests (modes.test.ts, shadow-fast-fill.test.ts):
// machine code that writes its own page tables (a #PF handler that maps the faulting page,
// a PTE remap with INVLPG, a CR3 reload, a write under CR0.WP=0), run through vcpu.run.

import { CR0, CR4, EFER } from '../../src/index.js';
import { Hypervisor, type VmMode, type Vcpu } from '../../src/hypervisor/index.js';
import { guestTables, flatGdtAndPfGate } from '../helpers/guest.js';
import { asm } from './asm.js';

export const MiB = 2 ** 20;
export const CODE = 0x20_0000n, GDT = 0x30_0000n, IDT = 0x30_1000n, DATA = 0x32_0000n, STACK = 0x41_0000n;
export const NEW_VA = 0x4000_0000n, NEW_GPA = 0x60_0000n, ALT_GPA = 0x61_0000n;
export const RO_VA = 0x5000_0000n, RO_GPA = 0x62_0000n;

function program(pte: bigint, dataPte: bigint): string {
  return `
    mov rsp, ${STACK}
    /* fill 8 pages with a pattern and sum it */
    mov rdi, ${DATA}
    mov ecx, 4096
  1: lea rax, [rcx * 4 + 7]
    mov [rdi + rcx * 8 - 8], rax
    loop 1b
    xor ebx, ebx
    mov ecx, 4096
  2: add rbx, [rdi + rcx * 8 - 8]
    loop 2b
    mov al, bl
    out 0xe9, al
    /* demand paging by the guest: #PF handler maps NEW_VA */
    mov rax, [${NEW_VA + 0x10n}]
    out 0xe9, al
    mov qword ptr [${NEW_VA + 0x18n}], 0x55
    /* remap DATA's first page to ALT_GPA, INVLPG, read through it */
    mov rax, ${ALT_GPA | 0x63n}
    mov [${dataPte}], rax
    invlpg [${DATA}]
    mov rdx, [${DATA}]
    mov al, dl
    out 0xe9, al
    mov rax, cr3
    mov cr3, rax
    mov r9, [${DATA + 0x1008n}]
    rep stosb
    mov r10, [${NEW_VA + 0x18n}]
    /* CR0.WP=0: a supervisor write to a read-only page is allowed; then WP=1 again */
    mov rax, cr0
    mov r13, rax
    and rax, ~0x10000
    mov cr0, rax
    mov qword ptr [${RO_VA}], 0x99
    mov rax, r13
    mov cr0, rax
    mov r12, [${RO_VA}]
    mov rax, cr0
    mov r14, rax
    hlt
    .org 0x400
    /* #PF handler: map the faulting page at NEW_GPA */
    mov r11, cr2
    mov rax, ${NEW_GPA | 0x3n}
    mov [${pte}], rax
    add rsp, 8
    iretq
  `;
}

/** Runs the program in a fresh VM of `mode` until it stops; `prepare` may adjust the vCPU first. */
export async function runIn(mode: VmMode, prepare: (v: Vcpu) => void = () => {}) {
  const hv = await Hypervisor.create({ hostMemoryBytes: 96 * MiB });
  const vm = hv.createVm({ memoryBytes: 32 * MiB, mode });
  const vcpu = vm.vcpus[0];
  prepare(vcpu);
  const pt = guestTables(vm);
  pt.mapRange(0n, 0n, 8 * MiB, 4096, { user: false });
  const pte = pt.entryAddr(NEW_VA, 1);           // tables exist, the PTE is not present
  const dataPte = pt.entryAddr(DATA, 1);
  pt.map(RO_VA, RO_GPA, 4096, { write: false, user: false });
  const mem = vm.memory;
  flatGdtAndPfGate(vm, GDT, IDT, CODE + 0x400n);
  mem.write64(NEW_GPA + 0x10n, 0xabcdn);
  mem.write64(ALT_GPA, 0x77n);
  mem.write(CODE, asm(program(pte, dataPte), CODE));
  vcpu.setRegisters({ cr0: CR0.PG | CR0.PE | CR0.WP, cr3: pt.root, cr4: CR4.PAE, efer: EFER.LME | EFER.NXE, cpl: 0 });
  vcpu.setRegisters({ rip: CODE, cs: 8n, ss: 16n, gdtrBase: GDT, gdtrLimit: 23n, idtrBase: IDT, idtrLimit: 0xfffn,
    rdi: DATA + 0x2000n, rcx: 100n, rax: 0x5an });
  const out: number[] = [];
  let x;
  for (;;) {
    x = vcpu.run({ maxInstructions: 1_000_000 });
    if (x.reason !== 'IO') break;
    out.push(Number(x.value));
  }
  const regs = vcpu.cpu.getRegisters();
  const { tsc: _t, cr3: _c, cr0: _w, ...rest } = regs;
  const memory = [DATA, ALT_GPA, NEW_GPA, RO_GPA].map((g) => mem.read(g, 8 * 4096));
  return { x, out, regs: rest, memory, vcpu, hv, guestCr3: vcpu.guestRegisters().cr3, root: pt.root };
}
