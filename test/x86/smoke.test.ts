import { describe, it, expect } from 'vitest';
import { asm, HAVE_AS } from './asm.js';
import { flatEnv, load, CODE, DATA } from './env.js';

describe.skipIf(!HAVE_AS)('interpreter smoke', () => {
  it('runs a loop and stops at int3', async () => {
    const env = await flatEnv();
    load(env, asm(`
      mov ecx, 10
      xor eax, eax
    1: add eax, ecx
      dec ecx
      jnz 1b
      mov [${DATA}], rax
      int3
    `, CODE));
    const x = env.cpu.run({ maxInstructions: 1000 });
    expect(x).toMatchObject({ reason: 'EXCEPTION', vector: 3 });
    const r = env.cpu.getRegisters();
    expect(r.rax).toBe(55n);
    expect(env.m.memory.read64(DATA)).toBe(55n);
    expect(x.instructions).toBe(2 + 30 + 1 + 1);
  });
});

describe('interpreter register file', () => {
  it('round-trips every register through setRegisters/getRegisters', async () => {
    const { Machine } = await import('../../src/index.js');
    const m = await Machine.create({ memoryBytes: 65536 });
    const cpu = m.createCpu();
    const names = ['rax', 'rcx', 'rdx', 'rbx', 'rsp', 'rbp', 'rsi', 'rdi', 'r8', 'r9', 'r10', 'r11', 'r12', 'r13',
      'r14', 'r15', 'rip', 'cs', 'ss', 'ds', 'es', 'fs', 'gs', 'fsBase', 'gsBase', 'kernelGsBase', 'gdtrBase',
      'gdtrLimit', 'idtrBase', 'idtrLimit', 'tr', 'trBase', 'trLimit', 'cr2', 'star', 'lstar', 'cstar', 'fmask',
      'tscAux', 'pat', 'tsc'] as const;
    const regs: Record<string, bigint> = {};
    names.forEach((n, i) => { regs[n] = BigInt(i + 1) * 0x1_0001_0001n; });
    cpu.setRegisters({ ...regs, cr8: 5n, rflags: 0x8d7n });
    const r = cpu.getRegisters();
    for (const n of names) expect(r[n]).toBe(regs[n]);
    expect(r.cr8).toBe(5n);
    expect(r.rflags).toBe(0x8d7n);
  });
});
