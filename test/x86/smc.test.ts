// The decoded-instruction cache never runs stale code: self-modifying code, code written
// by the batch engine, and code written by the host (loader, DMA, frame copies) are all
// decoded again. Values follow from plain x86 semantics: the write is visible to the
// next fetch of the modified bytes.

import { describe, it, expect } from 'vitest';
import { asm, HAVE_AS } from './asm.js';
import { flatEnv, load, CODE } from './env.js';
import { CR0, CR4, EFER } from '../../src/index.js';
import { Hypervisor } from '../../src/hypervisor/index.js';
import { guestTables } from '../helpers/guest.js';

const MiB = 2 ** 20;

describe.skipIf(!HAVE_AS)('decoded-instruction cache coherence', () => {
  it('self-modifying code: a loop patches an instruction it already ran', async () => {
    const env = await flatEnv({ cpl: 0 });
    env.cpu.setExceptionBitmap(1 << 3);
    load(env, asm(`
      xor ebx, ebx
      mov ecx, 3
    1: mov eax, 0x11111111
    patch_end:
      add rbx, rax
      mov dword ptr [patch_end - 4], 0x22222222
      dec ecx
      jnz 1b
      int3
    `, CODE));
    env.cpu.run({ maxInstructions: 100 });
    // iteration 1 adds 0x11111111 and patches; iterations 2 and 3 add 0x22222222
    expect(env.cpu.getRegisters().rbx).toBe(0x11111111n + 2n * 0x22222222n);
  });

  it('code on another page written by the guest, then jumped to', async () => {
    const env = await flatEnv({ cpl: 0 });
    env.cpu.setExceptionBitmap(1 << 3);
    const target = CODE + 0x3000n;
    // target initially: mov eax, 1; ret — run it, then overwrite with mov eax, 2; ret
    env.m.memory.write(target, asm('mov eax, 1\nret'));
    load(env, asm(`
      mov rdi, ${target}
      call rdi
      mov r8, rax
      mov byte ptr [rdi + 1], 2
      call rdi
      int3
    `, CODE));
    env.cpu.run({ maxInstructions: 100 });
    const r = env.cpu.getRegisters();
    expect(r.r8).toBe(1n);
    expect(r.rax).toBe(2n);
  });

  it('code rewritten by the host (a loader) and by the batch engine is decoded again', async () => {
    const env = await flatEnv({ cpl: 0 });
    env.cpu.setExceptionBitmap(1 << 3);
    load(env, asm('mov eax, 1\nint3', CODE));
    env.cpu.run({ maxInstructions: 10 });
    expect(env.cpu.getRegisters().rax).toBe(1n);
    load(env, asm('mov eax, 2\nint3', CODE));          // host write (PhysicalMemory)
    env.cpu.setRegisters({ rip: CODE });
    env.cpu.run({ maxInstructions: 10 });
    expect(env.cpu.getRegisters().rax).toBe(2n);
    const b = env.m.createBatch(1).store(CODE + 1n, 3n, 1);  // a guest store through the batch engine
    expect(env.cpu.execute(b).exit.reason).toBe('end');
    env.cpu.setRegisters({ rip: CODE });
    env.cpu.run({ maxInstructions: 10 });
    expect(env.cpu.getRegisters().rax).toBe(3n);
    env.m.memory.copy(CODE + 0x2000n, CODE, 16);             // frame copy (physCopy)
    env.m.memory.fill(CODE + 1n, 4, 1);                      // physFill
    env.cpu.setRegisters({ rip: CODE });
    env.cpu.run({ maxInstructions: 10 });
    expect(env.cpu.getRegisters().rax).toBe(4n);
  });
});

describe.skipIf(!HAVE_AS)('batch stores into cached code, on each of the batch engine\'s paths', () => {
  // The code page is in the L2 TLB after the fetch (an L2 hit the miss loop takes), or not
  // cached at all after MOV CR3 (a walk in the miss loop), or every cache is off (the
  // walk-only loop). The PTEs have A and D set, so none of these leaves the fast loops.
  it.each([
    ['an L2 hit in the miss loop', {}, false],
    ['a walk in the miss loop, TLBs flushed first', {}, true],
    ['the loop with every TLB and PSC off', { tlb: false, psc: false }, false],
  ] as const)('%s: the next fetch decodes the new bytes', async (_, cpu, flush) => {
    const env = await flatEnv({ cpl: 0, cpu });
    env.pt.mapRange(CODE, CODE, 4096, 4096, { accessed: true, dirty: true });
    env.cpu.setExceptionBitmap(1 << 3);
    load(env, asm('mov eax, 1\nint3', CODE));
    env.cpu.run({ maxInstructions: 10 });
    expect(env.cpu.getRegisters().rax).toBe(1n);
    const b = env.m.createBatch(2);
    if (flush) b.movCr3(env.pt.root);
    b.store(CODE + 1n, 5n, 1);
    expect(env.cpu.execute(b).exit.reason).toBe('end');
    env.cpu.setRegisters({ rip: CODE });
    env.cpu.run({ maxInstructions: 10 });
    expect(env.cpu.getRegisters().rax).toBe(5n);
  });
});

describe.skipIf(!HAVE_AS)('decoded-instruction cache and MMU writes', () => {
  it('an A-bit update by the page walker into bytes of cached code is seen by the next fetch', async () => {
    const env = await flatEnv({ cpl: 0 });
    env.cpu.setExceptionBitmap(1 << 3);
    // The code page doubles as the page table of VA's 2 MiB region; VA's PTE (index 0x21,
    // at CODE + 0x108) is the imm32 of a `mov eax, imm32` that starts at CODE + 0x107.
    const VA = 0x4000_0000n + 0x21n * 4096n;
    env.m.memory.write64(env.pt.entryAddr(VA, 2), CODE | 0x7n);
    const pte = 0x60_0007n; // DATA frame, P|W|U, A clear
    load(env, asm(`
      mov ecx, 2
    again:
      mov r9, 0x100 + ${CODE}
      jmp r9
    back:
      mov r8, rax
      mov rbx, ${VA}
      mov rdx, [rbx]
      dec ecx
      jnz again
      int3
      .org 0x100
      nop
      nop
      nop
      nop
      nop
      nop
      nop
      .byte 0xb8
      .long ${pte}
      .long 0
      jmp back
    `, CODE));
    env.cpu.run({ maxInstructions: 100 });
    const r = env.cpu.getRegisters();
    expect(r.r8).toBe(pte | 0x20n); // the second time the MOV's immediate carries the A bit
  });
});

describe.skipIf(!HAVE_AS)('a batch store into cached guest code under nested paging (miss-nested.ts)', () => {
  // With no TLB configured, a nested vCPU's batch ops run in the 2D miss loop; its store
  // must drop the decoded code as the general path's does.
  it.each([['A/D preset', true], ['A/D set by the walk', false]] as const)('%s: the next fetch decodes the new bytes', async (_, ad) => {
    const hv = await Hypervisor.create({ hostMemoryBytes: 64 * MiB });
    const vm = hv.createVm({ memoryBytes: 16 * MiB, mode: 'nested', cpu: { tlb: false } });
    const vcpu = vm.vcpus[0];
    const pt = guestTables(vm);
    pt.mapRange(0n, 0n, 8 * MiB, 4096, { user: false, accessed: ad, dirty: ad }); // CODE is at 4 MiB
    vm.memory.write(CODE, asm('mov eax, 1\nhlt', CODE));
    vcpu.setRegisters({ cr0: CR0.PG | CR0.PE | CR0.WP, cr3: pt.root, cr4: CR4.PAE, efer: EFER.LME | EFER.NXE, cpl: 0 });
    vcpu.setRegisters({ rip: CODE, cs: 8n, ss: 16n });
    expect(vcpu.run({ maxInstructions: 10 }).reason).toBe('HLT');
    expect(vcpu.cpu.getRegisters().rax).toBe(1n);
    const b = hv.machine.createBatch(1).store(CODE + 1n, 5n, 1);
    expect(vcpu.run(b).reason).toBe('end');
    vcpu.setRegisters({ rip: CODE });
    expect(vcpu.run({ maxInstructions: 10 }).reason).toBe('HLT');
    expect(vcpu.cpu.getRegisters().rax).toBe(5n);
  });
});
