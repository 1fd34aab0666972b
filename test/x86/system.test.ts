// System behaviour of the interpreter: exception and interrupt delivery through the IDT
// (vector, error code, CR2, stack frame, with and without IST), #PF → #DF → triple
// fault, IRETQ to CPL3, SYSCALL/SYSRET, the STI shadow, the x2APIC timer.
// Expected values follow SDM Vol. 3 §6.14 (64-bit delivery) and the fact sheet §3-§6.

import { describe, it, expect } from 'vitest';
import { asm, HAVE_AS } from './asm.js';
import { load, CODE, DATA, STACK_TOP, type Env } from './env.js';
import { sysEnv, setGate, KSTACK, ISTACK, KCODE, KDATA, UCODE, UDATA, IDT } from './sysenv.js';

const IF = 0x200n;
/** Handlers live at fixed offsets of the program (".org"). */
const H = (off: number) => CODE + BigInt(off);

function frame(env: Env, rsp: bigint, n: number): bigint[] {
  return Array.from({ length: n }, (_, i) => env.m.memory.read64(rsp + BigInt(i) * 8n));
}

describe.skipIf(!HAVE_AS)('x86 system: exceptions and interrupts', () => {
  it('a #PF from CPL3 goes through an interrupt gate to RSP0 with error code, CR2 and a 6-word frame', async () => {
    const env = await sysEnv();
    setGate(env, 14, H(0x200));
    // Kernel: IRETQ to user code at 0x100, which reads an unmapped address.
    load(env, asm(`
      push ${UDATA}
      push ${STACK_TOP - 0x100n}
      push 0x202
      push ${UCODE}
      push ${H(0x100)}
      iretq
      .org 0x100
      mov rax, 0x12345000
      mov rbx, [rax + 8]
      .org 0x200
      hlt
    `, CODE));
    const x = env.cpu.run({ maxInstructions: 100 });
    expect(x.reason).toBe('HLT');
    const r = env.cpu.getRegisters();
    expect(r.cpl).toBe(0);
    expect(r.cs).toBe(KCODE);
    expect(r.ss).toBe(0n); // null SS with RPL = new CPL
    expect(r.cr2).toBe(0x12345008n);
    expect(r.rip).toBe(H(0x201));
    expect(r.rflags & IF).toBe(0n); // interrupt gate
    expect(r.rsp).toBe(KSTACK - 48n);
    // error code (not present, read, user), RIP of the faulting MOV, CS, RFLAGS, RSP, SS
    expect(frame(env, r.rsp, 6)).toEqual([4n, H(0x107), UCODE, 0x202n, STACK_TOP - 0x100n, UDATA]);
  });

  it('an IST gate switches stacks even without a privilege change; trap gates keep IF', async () => {
    const env = await sysEnv();
    setGate(env, 0, H(0x200), { ist: 1, trap: true });
    load(env, asm(`
      mov rsp, ${KSTACK - 0x208n}
      sti
      xor ecx, ecx
      div ecx
      .org 0x200
      hlt
    `, CODE));
    expect(env.cpu.run({ maxInstructions: 100 }).reason).toBe('HLT');
    const r = env.cpu.getRegisters();
    expect(r.rsp).toBe(ISTACK - 40n);
    expect(r.rflags & IF).toBe(IF);
    const f = frame(env, r.rsp, 5);
    expect(f[0]).toBe(CODE + 7n + 1n + 2n); // #DE is a fault: RIP of the DIV
    expect(f[1]).toBe(KCODE);
    expect(f[3]).toBe(KSTACK - 0x208n); // old RSP; the new one was aligned down to 16
    expect(f[4]).toBe(KDATA);
  });

  it('without IST or privilege change the frame is pushed on the current stack aligned to 16', async () => {
    const env = await sysEnv();
    setGate(env, 13, H(0x200));
    load(env, asm(`
      mov rsp, ${KSTACK - 0x108n}
      mov ax, 0x38
      mov ds, ax
      .org 0x200
      hlt
    `, CODE));
    expect(env.cpu.run({ maxInstructions: 100 }).reason).toBe('HLT');
    const r = env.cpu.getRegisters();
    expect(r.rsp).toBe(KSTACK - 0x110n - 48n);
    expect(frame(env, r.rsp, 2)).toEqual([0x38n, CODE + 7n + 4n]); // #GP(selector), RIP of MOV DS
  });

  it('INT n with a gate DPL below CPL is #GP(vector*8+2); a DPL3 gate is taken with RIP = next', async () => {
    const env = await sysEnv();
    setGate(env, 13, H(0x200));
    setGate(env, 0x80, H(0x300), { dpl: 3 });
    load(env, asm(`
      push ${UDATA}
      push ${STACK_TOP - 0x100n}
      push 0x2
      push ${UCODE}
      push ${H(0x100)}
      iretq
      .org 0x100
      int 0x81
      .org 0x180
      int 0x80
      .org 0x200
      hlt
      .org 0x300
      hlt
    `, CODE));
    setGate(env, 0x81, H(0x300), { dpl: 0 });
    expect(env.cpu.run({ maxInstructions: 100 }).reason).toBe('HLT');
    let r = env.cpu.getRegisters();
    expect(r.rip).toBe(H(0x201));
    expect(frame(env, r.rsp, 2)).toEqual([0x81n * 8n + 2n, H(0x100)]);
    // Now the DPL3 gate.
    env.cpu.setRegisters({ rip: H(0), rsp: STACK_TOP - 0x800n });
    env.m.memory.write(H(0x100), asm('int 0x80'));
    // jump straight to user code at 0x180 instead
    env.m.memory.write64(H(0x100), 0x90909090_90909090n);
    env.m.memory.write(H(0x100), new Uint8Array([0xeb, 0x7e])); // jmp 0x180
    expect(env.cpu.run({ maxInstructions: 100 }).reason).toBe('HLT');
    r = env.cpu.getRegisters();
    expect(r.rip).toBe(H(0x301));
    expect(frame(env, r.rsp, 2)).toEqual([H(0x182), UCODE]); // no error code; RIP after INT
  });

  it('#PF while delivering #PF becomes #DF (error code 0); a fault delivering #DF is a triple fault', async () => {
    const env = await sysEnv();
    setGate(env, 14, H(0x200));
    setGate(env, 8, H(0x300), { ist: 1 });
    load(env, asm(`
      mov rsp, 0x7000000
      mov rax, [0x5000000]
      .org 0x200
      hlt
      .org 0x300
      hlt
    `, CODE));
    expect(env.cpu.run({ maxInstructions: 100 }).reason).toBe('HLT');
    const r = env.cpu.getRegisters();
    expect(r.rip).toBe(H(0x301));
    expect(r.rsp).toBe(ISTACK - 48n);
    expect(frame(env, r.rsp, 2)).toEqual([0n, CODE + 7n]); // #DF error code 0, faulting RIP
    expect(r.cr2).toBe(0x7000000n - 8n); // the last #PF: the first push of the #PF frame (SS)
    // Same again with a #DF gate whose IST stack is unmapped: SHUTDOWN.
    env.m.memory.write64(0x60_0100n + 0x24n, 0x7000000n);
    env.cpu.setRegisters({ rip: CODE, rsp: KSTACK });
    expect(env.cpu.run({ maxInstructions: 100 }).reason).toBe('SHUTDOWN');
  });

  it('a vector beyond the IDT limit is #GP(vector*8+2+EXT)', async () => {
    const env = await sysEnv();
    setGate(env, 13, H(0x200));
    env.cpu.setRegisters({ idtrLimit: 16n * 32n - 1n });
    load(env, asm(`
      mov rsp, ${KSTACK}
      sti
      nop
      nop
      .org 0x200
      hlt
    `, CODE));
    env.cpu.injectInterrupt(0x40);
    expect(env.cpu.run({ maxInstructions: 100 }).reason).toBe('HLT');
    const r = env.cpu.getRegisters();
    expect(frame(env, r.rsp, 1)).toEqual([0x40n * 8n + 2n + 1n]); // EXT: an external event
  });
});

describe.skipIf(!HAVE_AS)('x86 system: privilege transitions', () => {
  it('IRETQ to CPL3, SYSCALL to LSTAR, SYSRETQ back', async () => {
    const env = await sysEnv();
    env.cpu.setRegisters({ lstar: H(0x300) });
    env.cpu.setExceptionBitmap(1 << 3);
    load(env, asm(`
      push ${UDATA}
      push ${STACK_TOP - 0x100n}
      push 0x202
      push ${UCODE}
      push ${H(0x100)}
      iretq
      .org 0x100
      mov rdi, 5
      syscall
      int3
      .org 0x300
      mov r8, rcx
      mov r9, r11
      mov r10, cs
      pushfq
      pop r12
      lea rax, [rdi + 37]
      sysretq
    `, CODE));
    const x = env.cpu.run({ maxInstructions: 100 });
    expect(x).toMatchObject({ reason: 'EXCEPTION', vector: 3 });
    const r = env.cpu.getRegisters();
    expect(r.cpl).toBe(3);
    expect(r.cs).toBe(UCODE);
    expect(r.ss).toBe(UDATA);
    expect(r.rax).toBe(42n);
    expect(r.r8).toBe(H(0x109));       // RCX = RIP after SYSCALL
    expect(r.r9).toBe(0x202n);         // R11 = RFLAGS
    expect(r.r10).toBe(KCODE);
    expect(r.r12 & IF).toBe(0n);       // FMASK cleared IF
    expect(r.rflags & IF).toBe(IF);    // restored from R11
    expect(r.rip).toBe(H(0x10a));      // INT3 is a trap
    expect(r.rsp).toBe(STACK_TOP - 0x100n);
  });

  it('SYSRETQ with a non-canonical RCX is #GP(0) in ring 0', async () => {
    const env = await sysEnv();
    setGate(env, 13, H(0x200));
    load(env, asm(`
      mov rsp, ${KSTACK}
      mov rcx, 0x800000000000
      sysretq
      .org 0x200
      hlt
    `, CODE));
    expect(env.cpu.run({ maxInstructions: 100 }).reason).toBe('HLT');
    const r = env.cpu.getRegisters();
    expect(r.cpl).toBe(0);
    expect(r.rsp).toBe(KSTACK - 48n); // same privilege: current stack, 6 words
  });

  it('SWAPGS exchanges GS.base and KERNEL_GS_BASE; RDMSR/WRMSR reach the MSRs; unknown MSRs #GP', async () => {
    const env = await sysEnv();
    env.cpu.setExceptionBitmap(0xffff_ffff);
    env.cpu.setRegisters({ gsBase: 0x1000n, kernelGsBase: 0x2000n });
    load(env, asm(`
      swapgs
      mov ecx, 0xc0000101
      rdmsr
      mov r8d, eax
      mov ecx, 0xc0000082
      mov eax, 0x11223344
      mov edx, 0xffff8000
      wrmsr
      mov ecx, 0x12345
      rdmsr
    `, CODE));
    const x = env.cpu.run({ maxInstructions: 100 });
    expect(x).toMatchObject({ reason: 'EXCEPTION', vector: 13, errorCode: 0 });
    const r = env.cpu.getRegisters();
    expect(r.gsBase).toBe(0x2000n);
    expect(r.kernelGsBase).toBe(0x1000n);
    expect(r.r8).toBe(0x2000n);
    expect(r.lstar).toBe(0xffff_8000_1122_3344n);
  });

  it('MOV to CR3 switches address spaces and flushes; MOV CR with reserved bits is #GP', async () => {
    const env = await sysEnv();
    env.cpu.setExceptionBitmap(0xffff_ffff);
    load(env, asm(`
      mov rax, cr3
      mov cr3, rax
      mov rbx, cr0
      mov rcx, 1 << 32
      or rcx, rbx
      mov cr0, rcx
    `, CODE));
    const x = env.cpu.run({ maxInstructions: 100 });
    expect(x).toMatchObject({ reason: 'EXCEPTION', vector: 13, errorCode: 0 });
    expect(env.cpu.counters().flushes).toBeGreaterThan(0);
  });

  it('LTR marks the TSS busy; LGDT/SGDT/LIDT/SIDT round-trip through memory', async () => {
    const env = await sysEnv();
    env.cpu.setExceptionBitmap(1 << 3);
    env.cpu.setRegisters({ tr: 0n, trBase: 0n, trLimit: 0n });
    load(env, asm(`
      mov ax, 0x30
      ltr ax
      sgdt [${DATA + 0x3000n}]
      sidt [${DATA + 0x3010n}]
      mov word ptr [${DATA + 0x3020n}], 0x7f
      mov qword ptr [${DATA + 0x3022n}], 0x1234000
      lidt [${DATA + 0x3020n}]
      str rbx
      int3
    `, CODE));
    expect(env.cpu.run({ maxInstructions: 100 })).toMatchObject({ reason: 'EXCEPTION', vector: 3 });
    const r = env.cpu.getRegisters();
    expect(r.tr).toBe(0x30n);
    expect(r.trBase).toBe(0x60_0100n);
    expect(r.trLimit).toBe(0x67n);
    expect((env.m.memory.read64(DATA + 0x30n) >> 40n) & 0xfn).toBe(0xbn);
    expect(env.m.memory.read(DATA + 0x3000n, 2)).toEqual(new Uint8Array([0x3f, 0]));
    expect(env.m.memory.read64(DATA + 0x3002n)).toBe(DATA);
    expect(env.m.memory.read64(DATA + 0x3012n)).toBe(IDT);
    expect(r.idtrBase).toBe(0x1234000n);
    expect(r.idtrLimit).toBe(0x7fn);
    expect(r.rbx).toBe(0x30n);
  });
});

describe.skipIf(!HAVE_AS)('x86 system: interrupts and the APIC timer', () => {
  it('STI shadow: an interrupt pending at STI is taken after the next instruction', async () => {
    const env = await sysEnv();
    setGate(env, 0x40, H(0x200));
    load(env, asm(`
      mov rsp, ${KSTACK}
      sti
      nop
      nop
      .org 0x200
      hlt
    `, CODE));
    env.cpu.injectInterrupt(0x40);
    expect(env.cpu.run({ maxInstructions: 100 }).reason).toBe('HLT');
    const r = env.cpu.getRegisters();
    expect(frame(env, r.rsp, 1)).toEqual([CODE + 7n + 1n + 1n]); // after the NOP, not before
  });

  it('STI; HLT wakes on the interrupt; the frame points after the HLT', async () => {
    const env = await sysEnv();
    setGate(env, 0x40, H(0x200));
    load(env, asm(`
      mov rsp, ${KSTACK}
      sti
      hlt
      nop
      .org 0x200
      mov r8, 1
      hlt
    `, CODE));
    expect(env.cpu.run({ maxInstructions: 100 }).reason).toBe('HLT');
    expect(env.cpu.halted).toBe(true);
    expect(env.cpu.getRegisters().rip).toBe(CODE + 7n + 1n + 1n);
    env.cpu.injectInterrupt(0x40);
    expect(env.cpu.run({ maxInstructions: 100 }).reason).toBe('HLT');
    const r = env.cpu.getRegisters();
    expect(r.r8).toBe(1n);
    expect(frame(env, r.rsp, 1)).toEqual([CODE + 7n + 1n + 1n]);
  });

  it('the periodic x2APIC timer interrupts every initial-count × divisor TSC cycles, with EOI', async () => {
    const env = await sysEnv();
    setGate(env, 0x41, H(0x200));
    load(env, asm(`
      mov rsp, ${KSTACK}
      mov ecx, 0x80f
      mov eax, 0x1ff
      xor edx, edx
      wrmsr
      mov ecx, 0x83e
      mov eax, 0xb
      xor edx, edx
      wrmsr
      mov ecx, 0x832
      mov eax, 0x20041
      wrmsr
      mov ecx, 0x838
      mov eax, 1000
      wrmsr
      rdtsc
      mov r13d, eax
      sti
    1: inc rbx
      jmp 1b
      .org 0x200
      inc r12
      push rcx
      push rax
      push rdx
      mov ecx, 0x80b
      xor eax, eax
      xor edx, edx
      wrmsr
      pop rdx
      pop rax
      pop rcx
      iretq
    `, CODE));
    const x = env.cpu.run({ maxInstructions: 20_000 });
    expect(x.reason).toBe('BUDGET');
    const r = env.cpu.getRegisters();
    const elapsed = r.tsc - r.r13;
    expect(r.r12).toBeGreaterThanOrEqual(elapsed / 1000n - 1n);
    expect(r.r12).toBeLessThanOrEqual(elapsed / 1000n);
    expect(r.r12).toBeGreaterThan(15n);
  });

  it('one-shot and TSC-deadline timers fire once; masked timers do not fire', async () => {
    for (const mode of ['oneshot', 'deadline', 'masked'] as const) {
      const env = await sysEnv();
      setGate(env, 0x42, H(0x200));
      const lvt = mode === 'deadline' ? 0x40042 : mode === 'masked' ? 0x10042 : 0x42;
      const arm = mode === 'deadline'
        ? 'rdtsc\nadd eax, 500\nmov ecx, 0x6e0\nwrmsr'
        : 'mov ecx, 0x83e\nmov eax, 0xb\nxor edx, edx\nwrmsr\nmov ecx, 0x838\nmov eax, 500\nwrmsr';
      load(env, asm(`
        mov rsp, ${KSTACK}
        mov ecx, 0x80f
        mov eax, 0x1ff
        xor edx, edx
        wrmsr
        mov ecx, 0x832
        mov eax, ${lvt}
        xor edx, edx
        wrmsr
        ${arm}
        sti
      1: inc rbx
        jmp 1b
        .org 0x200
        inc r12
        push rcx
        mov ecx, 0x80b
        xor eax, eax
        xor edx, edx
        wrmsr
        pop rcx
        iretq
      `, CODE));
      env.cpu.run({ maxInstructions: 5000 });
      expect(env.cpu.getRegisters().r12).toBe(mode === 'masked' ? 0n : 1n);
    }
  });

  it('HLT with IF=1 exits; the host advances the TSC to the next timer and the run delivers it', async () => {
    const env = await sysEnv();
    setGate(env, 0x41, H(0x200));
    load(env, asm(`
      mov rsp, ${KSTACK}
      mov ecx, 0x80f
      mov eax, 0x1ff
      xor edx, edx
      wrmsr
      mov ecx, 0x83e
      mov eax, 0xb
      xor edx, edx
      wrmsr
      mov ecx, 0x832
      mov eax, 0x41
      wrmsr
      mov ecx, 0x838
      mov eax, 1000000
      wrmsr
      sti
      hlt
      .org 0x200
      mov r8, 7
      hlt
    `, CODE));
    expect(env.cpu.run({ maxInstructions: 100 }).reason).toBe('HLT');
    const next = env.cpu.nextTimer()!;
    const now = env.cpu.getRegisters().tsc;
    expect(next - now).toBeGreaterThan(999_000n);
    env.cpu.advanceTsc(next - now);
    expect(env.cpu.run({ maxInstructions: 100 }).reason).toBe('HLT');
    expect(env.cpu.getRegisters().r8).toBe(7n);
  });
});

describe.skipIf(!HAVE_AS)('x86 system: port permissions, CPUID, TSC', () => {
  it('CPL3 port I/O: IOPL 3 allows it; otherwise the TSS I/O bitmap decides, bit by bit', async () => {
    const env = await sysEnv();
    env.cpu.setExceptionBitmap(1 << 13);
    // I/O bitmap right after the TSS header: base 0x68, ports 0x60..0x67 allowed except 0x62.
    env.m.memory.write32(0x60_0100n + 0x66n, 0x68);
    env.m.memory.write(0x60_0100n + 0x68n, new Uint8Array(32).fill(0xff));
    env.m.memory.write8(0x60_0100n + 0x68n + 0x0cn, 0x04); // ports 0x60..0x67: only 0x62 denied
    env.cpu.setRegisters({ trLimit: 0x68n + 32n - 1n });
    load(env, asm(`
      push ${UDATA}
      push ${STACK_TOP - 0x100n}
      push 0x2
      push ${UCODE}
      push ${H(0x100)}
      iretq
      .org 0x100
      in al, 0x61
      in al, 0x62
    `, CODE));
    let x = env.cpu.run({ maxInstructions: 100 });
    expect(x).toMatchObject({ reason: 'IO', port: 0x61, direction: 'in' });
    env.cpu.setIoData(1);
    x = env.cpu.run({ maxInstructions: 100 });
    expect(x).toMatchObject({ reason: 'EXCEPTION', vector: 13, errorCode: 0 });
    expect(env.cpu.getRegisters().rip).toBe(H(0x102));
    // With IOPL 3 the bitmap is not consulted.
    env.cpu.setRegisters({ rflags: 0x3002n });
    expect(env.cpu.run({ maxInstructions: 100 })).toMatchObject({ reason: 'IO', port: 0x62 });
  });

  it('CPUID reports the vendor and only implemented features; RDTSC follows the virtual clock', async () => {
    const env = await sysEnv();
    env.cpu.setExceptionBitmap(1 << 3);
    load(env, asm(`
      xor eax, eax
      cpuid
      mov r8d, ebx
      mov r9d, edx
      mov r10d, ecx
      mov eax, 1
      cpuid
      mov r11d, ecx
      mov r12d, edx
      rdtsc
      shl rdx, 32
      or rax, rdx
      mov r13, rax
      nop
      nop
      rdtsc
      shl rdx, 32
      or rax, rdx
      sub rax, r13
      int3
    `, CODE));
    env.cpu.setRegisters({ tsc: 1000n });
    expect(env.cpu.run({ maxInstructions: 100 })).toMatchObject({ reason: 'EXCEPTION', vector: 3 });
    const r = env.cpu.getRegisters();
    const vendor = [r.r8, r.r9, r.r10].map((v) => Buffer.from(new Uint32Array([Number(v)]).buffer).toString('latin1')).join('');
    expect(vendor).toBe('GenuineIntel');
    expect(Number(r.r11) & (1 << 23)).not.toBe(0);   // POPCNT
    expect(Number(r.r11) & (1 << 21)).not.toBe(0);   // x2APIC
    expect(Number(r.r12) & 1).toBe(0);               // no x87 FPU
    expect(Number(r.r12) & (1 << 25)).toBe(0);       // no SSE
    expect(r.rax).toBe(6n);                          // 6 instructions retired between the RDTSCs (1 cycle each)
    expect(r.r13).toBe(1000n + 9n);                  // TSC loaded at 1000, read after 9 retired instructions
  });

  it('CPUID 0x15/0x16 report the TSC rate the host set (SDM: TSC = ECX * EBX / EAX; 0x16 in MHz), zeros before', async () => {
    const leaves = async (hz?: number) => {
      const env = await sysEnv();
      env.cpu.setExceptionBitmap(1 << 3);
      if (hz !== undefined) env.cpu.setTscFrequency(hz);
      load(env, asm(`
        xor eax, eax
        cpuid
        mov r8d, eax
        mov eax, 0x15
        xor ecx, ecx
        cpuid
        mov r9d, eax
        mov r10d, ebx
        mov r11d, ecx
        mov eax, 0x16
        xor ecx, ecx
        cpuid
        mov r12d, eax
        mov r13d, ebx
        mov r14d, ecx
        int3
      `, CODE));
      expect(env.cpu.run({ maxInstructions: 100 })).toMatchObject({ reason: 'EXCEPTION', vector: 3 });
      const r = env.cpu.getRegisters();
      return [r.r8, r.r9, r.r10, r.r11, r.r12, r.r13, r.r14].map(Number);
    };
    // max leaf 0x16; 0x15: denominator 1, numerator 1, crystal 2.4 GHz (the APIC timer counts TSC cycles); 0x16: 2400 MHz base, max, bus
    expect(await leaves(2_400_000_000)).toEqual([0x16, 1, 1, 2_400_000_000, 2400, 2400, 2400]);
    expect(await leaves()).toEqual([0x16, 0, 0, 0, 0, 0, 0]);   // no rate set: not enumerated
    const env = await sysEnv();
    expect(() => env.cpu.setTscFrequency(2 ** 32)).toThrow(/TSC frequency/);
  });
});
