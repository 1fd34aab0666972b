// The same guest machine code under native, nested (EPT) and shadow paging, through
// vcpu.run: identical registers, guest memory and port output. The program writes its own
// page tables (a #PF handler that maps the faulting page, a PTE remap with INVLPG, a CR3
// reload), so shadow paging must emulate page-table writes and reflect guest faults, and
// nested paging must back frames on first touch.

import { describe, it, expect } from 'vitest';
import { CR0, CR4, EFER } from '../../src/index.js';
import { Hypervisor } from '../../src/hypervisor/index.js';
import { guestTables } from '../helpers/guest.js';
import { asm, HAVE_AS } from './asm.js';
import { runIn, MiB, CODE, NEW_VA } from './paging-program.js';

describe.skipIf(!HAVE_AS)('the same guest code under native, nested and shadow paging', () => {
  it('gives identical registers, memory and port output', async () => {
    const runs = await Promise.all((['native', 'nested', 'shadow'] as const).map((m) => runIn(m)));
    const [native] = runs;
    expect(native.x.reason).toBe('HLT');
    let sum = 0n;
    for (let i = 1n; i <= 4096n; i++) sum += i * 4n + 7n;
    expect(native.out).toEqual([Number(sum & 0xffn), 0xcd, 0x77]);
    expect(native.regs.r11).toBe(NEW_VA + 0x10n);     // CR2 seen by the guest handler
    expect(native.regs.r9).toBe(514n * 4n + 7n);      // pattern still there after the CR3 reload
    expect(native.regs.r10).toBe(0x55n);
    expect(native.regs.r12).toBe(0x99n);              // written with CR0.WP = 0
    expect(native.regs.r14 & 0x10000n).toBe(0x10000n); // WP back on, as the guest sees CR0
    for (const r of runs) {
      expect(r.x.reason).toBe('HLT');
      expect(r.out).toEqual(native.out);
      expect(r.regs).toEqual(native.regs);
      r.memory.forEach((m, i) => expect(m).toEqual(native.memory[i]));
      expect(r.guestCr3).toBe(r.root);
    }
    expect(runs[2].vcpu.shadow!.stats.ptWritesEmulated).toBeGreaterThanOrEqual(1); // the remap of a shadowed table
    expect(runs[2].vcpu.shadow!.stats.reflectedFaults).toBe(1);
    expect(runs[1].vcpu.stats.pagesBacked).toBe(10); // first touch: 8 data pages, the stack page, the read-only page
    expect(runs[2].vcpu.exits.CR_WRITE).toBe(2);      // shadow: both MOV to CR0 go to the shadow MMU
  });
});

describe.skipIf(!HAVE_AS)('MMIO under nested paging', () => {
  it('an access outside the VM is an MMIO exit; completeMmio answers it', async () => {
    const hv = await Hypervisor.create({ hostMemoryBytes: 64 * MiB });
    const vm = hv.createVm({ memoryBytes: 16 * MiB, mode: 'nested' });
    const vcpu = vm.vcpus[0];
    const pt = guestTables(vm);
    pt.mapRange(0n, 0n, 4 * MiB, 4096, { user: false });
    pt.map(0x7000_0000n, 0xfee0_0000n, 4096, { user: false });
    vm.memory.write(CODE, asm('mov rbx, 0x70000000\nmov eax, [rbx + 8]\nmov dword ptr [rbx + 12], 0x77\nhlt', CODE));
    vcpu.setRegisters({ cr0: CR0.PG | CR0.PE | CR0.WP, cr3: pt.root, cr4: CR4.PAE, efer: EFER.LME | EFER.NXE, cpl: 0 });
    vcpu.setRegisters({ rip: CODE, cs: 8n, ss: 16n });
    expect(vcpu.run({ maxInstructions: 100 })).toMatchObject({ reason: 'MMIO', pa: 0xfee0_0008n, size: 4, write: false });
    vcpu.cpu.completeMmio(0x5a5an);
    expect(vcpu.run({ maxInstructions: 100 })).toMatchObject({ reason: 'MMIO', pa: 0xfee0_000cn, size: 4, write: true, value: 0x77n });
    vcpu.cpu.completeMmio();
    expect(vcpu.run({ maxInstructions: 100 }).reason).toBe('HLT');
    expect(vcpu.cpu.getRegisters().rax).toBe(0x5a5an);
  });
});

describe.skipIf(!HAVE_AS)('a guest #PF with #PF in the exception bitmap', () => {
  it('exits alike under native, nested and shadow paging', async () => {
    const seen = [];
    for (const mode of ['native', 'nested', 'shadow'] as const) {
      const hv = await Hypervisor.create({ hostMemoryBytes: 64 * MiB });
      const vm = hv.createVm({ memoryBytes: 16 * MiB, mode });
      const vcpu = vm.vcpus[0];
      const pt = guestTables(vm);
      pt.mapRange(0n, 0n, 4 * MiB, 4096, { user: false });
      pt.map(0x7000_0000n, 0x30_0000n, 4096, { write: false, user: false });
      vm.memory.write(CODE, asm('mov rbx, 0x70000000\nmov rax, [rbx]\nmov [rbx + 8], rax\nhlt', CODE));
      vcpu.setRegisters({ cr0: CR0.PG | CR0.PE | CR0.WP, cr3: pt.root, cr4: CR4.PAE, efer: EFER.LME | EFER.NXE, cpl: 0 });
      vcpu.setRegisters({ rip: CODE, cs: 8n, ss: 16n });
      vcpu.setExceptionBitmap(1 << 14);
      const x = vcpu.run({ maxInstructions: 100 });
      seen.push({ reason: x.reason, vector: 'vector' in x ? x.vector : -1, errorCode: 'errorCode' in x ? x.errorCode : -1,
        cr2: 'cr2' in x ? x.cr2 : -1n, rip: vcpu.cpu.getRegisters().rip });
    }
    expect(seen[0]).toEqual({ reason: 'EXCEPTION', vector: 14, errorCode: 3, cr2: 0x7000_0008n, rip: CODE + 10n });
    expect(seen[1]).toEqual(seen[0]);
    expect(seen[2]).toEqual(seen[0]);
  });
});

describe.skipIf(!HAVE_AS)('one instruction that backs many pages', () => {
  // A single REP STOSQ over 1 MiB of never-touched memory retires no instruction until it
  // ends, yet every exit backs (nested) or fills (shadow) a new page: that is progress.
  it.each(['nested', 'shadow'] as const)('REP STOSQ over 256 unbacked pages completes in one run (%s)', async (mode) => {
    const hv = await Hypervisor.create({ hostMemoryBytes: 64 * MiB });
    const vm = hv.createVm({ memoryBytes: 16 * MiB, mode });
    const vcpu = vm.vcpus[0];
    const pt = guestTables(vm);
    pt.mapRange(0n, 0n, 8 * MiB, 4096, { user: false });
    const BUF = 0x60_0000n, PAGES = 256n;
    vm.memory.write(CODE, asm(`mov rdi, ${BUF}\nmov ecx, ${PAGES * 512n}\nmov rax, 0x1122334455667788\nrep stosq\nhlt`, CODE));
    vcpu.setRegisters({ cr0: CR0.PG | CR0.PE | CR0.WP, cr3: pt.root, cr4: CR4.PAE, efer: EFER.LME | EFER.NXE, cpl: 0 });
    vcpu.setRegisters({ rip: CODE, cs: 8n, ss: 16n });
    const x = vcpu.run({ maxInstructions: 1_000_000 });
    expect(x.reason).toBe('HLT');
    expect(vcpu.cpu.getRegisters().rcx).toBe(0n);
    const bytes = vm.memory.read(BUF, Number(PAGES) * 4096);
    const words = new BigUint64Array(bytes.buffer, bytes.byteOffset, bytes.length / 8);
    expect(words.every((w) => w === 0x1122334455667788n)).toBe(true);
    if (mode === 'nested') expect(vcpu.stats.pagesBacked).toBeGreaterThanOrEqual(Number(PAGES));
  });
});
