// Fixed vectors for the interpreter's edge cases (values from the SDM instruction pages
// and the fact sheet's §2 flag table). Each program runs at CPL3 with every exception
// vector in the exception bitmap and ends with INT3.

import { describe, it, expect } from 'vitest';
import { asm, HAVE_AS } from './asm.js';
import { flatEnv, load, CODE, DATA, STACK_TOP, type Env } from './env.js';

const CF = 1n, PF = 4n, AF = 16n, ZF = 64n, SF = 128n, OF = 2048n, DF = 1024n;
const M64 = (1n << 64n) - 1n;

async function run(src: string, regs: Record<string, bigint> = {}, cpl: 0 | 3 = 3): Promise<{ env: Env; r: ReturnType<Env['cpu']['getRegisters']>; exit: ReturnType<Env['cpu']['run']> }> {
  const env = await flatEnv({ cpl });
  load(env, asm(src, CODE));
  env.cpu.setRegisters(regs);
  const exit = env.cpu.run({ maxInstructions: 100_000 });
  return { env, r: env.cpu.getRegisters(), exit };
}

/** Runs to the final INT3 and returns the registers. */
async function regsAfter(src: string, regs: Record<string, bigint> = {}) {
  const { r, exit } = await run(`${src}\nint3`, regs);
  expect(exit).toMatchObject({ reason: 'EXCEPTION', vector: 3 });
  return r;
}

describe.skipIf(!HAVE_AS)('x86 fixed vectors', () => {
  describe('DIV / IDIV and #DE', () => {
    it('a 128/64 quotient that overflows is #DE, a fault at the DIV', async () => {
      const { r, exit } = await run('mov rdx, 1\nmov eax, 0\nmov ecx, 1\ndiv rcx\nint3');
      expect(exit).toMatchObject({ reason: 'EXCEPTION', vector: 0 });
      expect('errorCode' in exit).toBe(false); // #DE has no error code
      expect(r.rip).toBe(CODE + 7n + 5n + 5n); // on the DIV
      expect(r.rdx).toBe(1n); // nothing committed
    });
    it('division by zero is #DE', async () => {
      const { exit } = await run('xor ecx, ecx\ndiv ecx\nint3');
      expect(exit).toMatchObject({ reason: 'EXCEPTION', vector: 0 });
    });
    it('IDIV INT64_MIN / -1 is #DE (not a Wasm trap)', async () => {
      const { exit } = await run('mov rax, 0x8000000000000000\ncqo\nmov rcx, -1\nidiv rcx\nint3');
      expect(exit).toMatchObject({ reason: 'EXCEPTION', vector: 0 });
    });
    it('IDIV of EDX:EAX = INT64_MIN by -1 (32-bit) is #DE', async () => {
      const { exit } = await run('mov edx, 0x80000000\nxor eax, eax\nmov ecx, -1\nidiv ecx\nint3');
      expect(exit).toMatchObject({ reason: 'EXCEPTION', vector: 0 });
    });
    it('8-bit DIV with a quotient of 256 is #DE', async () => {
      const { exit } = await run('mov ax, 0x100\nmov cl, 1\ndiv cl\nint3');
      expect(exit).toMatchObject({ reason: 'EXCEPTION', vector: 0 });
    });
    it('128/64 DIV and IDIV give exact quotient and remainder', async () => {
      const r = await regsAfter('mov rdx, 5\nmov rax, 7\nmov rcx, 10\ndiv rcx\nmov r8, rax\nmov r9, rdx\n' +
        'mov rdx, -1\nmov rax, -100\nmov rcx, 7\nidiv rcx');
      const n = (5n << 64n) + 7n;
      expect(r.r8).toBe(n / 10n);
      expect(r.r9).toBe(n % 10n);
      expect(r.rax).toBe(BigInt.asUintN(64, -14n));
      expect(r.rdx).toBe(BigInt.asUintN(64, -2n));
    });
    it('8-bit IDIV puts the quotient in AL and the remainder in AH', async () => {
      const r = await regsAfter('mov rax, -1\nmov ax, -7\nmov cl, 2\nidiv cl');
      expect(r.rax & 0xffffn).toBe(0xfffdn); // AH = -1, AL = -3
      expect(r.rax >> 16n).toBe(0xffff_ffff_ffffn); // the rest kept
    });
  });

  describe('shifts and rotates', () => {
    it('a masked count of 0 changes neither the value nor the flags', async () => {
      const r = await regsAfter('mov rax, 5\ncmp rax, 5\nstc\nmov ecx, 64\nshl rax, cl', {});
      expect(r.rax).toBe(5n);
      expect(r.rflags & (CF | ZF)).toBe(CF | ZF);
    });
    it('counts are masked to 5 bits (6 with REX.W)', async () => {
      const r = await regsAfter('mov eax, 1\nmov cl, 33\nshl eax, cl\nmov ebx, 1\nmov cl, 65\nshl rbx, cl');
      expect(r.rax).toBe(2n);
      expect(r.rbx).toBe(2n);
    });
    it('8/16-bit counts at or above the width clear the value; SAR fills with the sign', async () => {
      const r = await regsAfter('mov eax, 0xff\nmov cl, 9\nshl al, cl\nmov ebx, 0xffff\nmov cl, 16\nshr bx, cl\n' +
        'mov edx, 0x80\nmov cl, 20\nsar dl, cl');
      expect(r.rax).toBe(0n);
      expect(r.rbx).toBe(0n);
      expect(r.rdx).toBe(0xffn);
      expect(r.rflags & CF).toBe(CF); // SAR: the last bit out is the sign
    });
    it('SHL by 1 sets OF = MSB(result) XOR CF', async () => {
      const r = await regsAfter('mov al, 0x40\nshl al, 1');
      expect(r.rax & 0xffn).toBe(0x80n);
      expect(r.rflags & (CF | OF | SF)).toBe(OF | SF);
    });
    it('ROL of 8 bits by 8: value kept, CF = LSB', async () => {
      const r = await regsAfter('clc\nmov al, 0x81\nrol al, 8');
      expect(r.rax & 0xffn).toBe(0x81n);
      expect(r.rflags & CF).toBe(CF);
    });
    it('RCL through CF (8-bit, count mod 9)', async () => {
      const r = await regsAfter('mov al, 0x81\nstc\nrcl al, 1\nmov bl, 0x81\nstc\nmov cl, 10\nrcl bl, cl');
      expect(r.rax & 0xffn).toBe(0x03n);
      expect(r.rbx & 0xffn).toBe(0x03n); // 10 mod 9 = 1: same as rcl by 1 (CF was set again)
    });
    it('SHLD/SHRD', async () => {
      const r = await regsAfter('mov rax, 0x1\nmov rbx, 0x8000000000000000\nshld rax, rbx, 1\n' +
        'mov rcx, 0x10\nmov rdx, 0x3\nshrd rcx, rdx, 4');
      expect(r.rax).toBe(3n);
      expect(r.rcx).toBe(0x3000_0000_0000_0001n);
    });
  });

  describe('multiply', () => {
    it('IMUL r/m64: CF = OF = 1 when RDX is not the sign extension of RAX', async () => {
      const r = await regsAfter('mov rax, 0x4000000000000000\nmov rcx, 2\nimul rcx');
      expect(r.rax).toBe(0x8000_0000_0000_0000n);
      expect(r.rdx).toBe(0n);
      expect(r.rflags & (CF | OF)).toBe(CF | OF);
    });
    it('IMUL r64, r/m64 of -1 * -1: no overflow', async () => {
      const r = await regsAfter('mov rax, -1\nmov rcx, -1\nimul rax, rcx');
      expect(r.rax).toBe(1n);
      expect(r.rflags & (CF | OF)).toBe(0n);
    });
    it('three-operand IMUL truncates to 32 bits, zero-extends and flags the overflow', async () => {
      const r = await regsAfter('mov rax, -1\nmov ebx, 0x10000\nimul eax, ebx, 0x10000');
      expect(r.rax).toBe(0n);
      expect(r.rflags & (CF | OF)).toBe(CF | OF);
    });
    it('MUL r/m8: AX = AL * src, CF = OF = (AH != 0)', async () => {
      const r = await regsAfter('mov eax, 0x10\nmov cl, 0x10\nmul cl');
      expect(r.rax).toBe(0x100n);
      expect(r.rflags & (CF | OF)).toBe(CF | OF);
    });
    it('MUL r/m64 gives the full 128-bit product', async () => {
      const r = await regsAfter('mov rax, -1\nmov rcx, -1\nmul rcx');
      const p = M64 * M64;
      expect(r.rax).toBe(p & M64);
      expect(r.rdx).toBe(p >> 64n);
    });
  });

  describe('bit scans', () => {
    it('BSF of 0: ZF = 1, destination unchanged', async () => {
      const r = await regsAfter('mov rax, 0x1234\nxor ecx, ecx\nbsf rax, rcx');
      expect(r.rax).toBe(0x1234n);
      expect(r.rflags & ZF).toBe(ZF);
    });
    it('BSF/BSR of non-zero', async () => {
      const r = await regsAfter('mov rcx, 0x0100000000000100\nbsf rax, rcx\nbsr rbx, rcx');
      expect(r.rax).toBe(8n);
      expect(r.rbx).toBe(56n);
      expect(r.rflags & ZF).toBe(0n);
    });
    it('TZCNT/LZCNT of 0 give the width and CF = 1; POPCNT', async () => {
      const r = await regsAfter('xor ecx, ecx\ntzcnt rax, rcx\nlzcnt ebx, ecx\nmov rdx, 0xf0f0\npopcnt rdx, rdx');
      expect(r.rax).toBe(64n);
      expect(r.rbx).toBe(32n);
      expect(r.rdx).toBe(8n);
      expect(r.rflags & (CF | ZF | SF | OF | PF | AF)).toBe(0n); // POPCNT clears them (src != 0)
    });
  });

  describe('ADC/SBB chains', () => {
    it('a 128-bit add carries into the high half', async () => {
      const r = await regsAfter('mov rax, -1\nxor ebx, ebx\nmov ecx, 1\nxor edx, edx\nadd rax, rcx\nadc rbx, rdx');
      expect(r.rax).toBe(0n);
      expect(r.rbx).toBe(1n);
      expect(r.rflags & CF).toBe(0n);
    });
    it('a 128-bit subtract borrows', async () => {
      const r = await regsAfter('xor eax, eax\nxor ebx, ebx\nsub rax, 1\nsbb rbx, 0');
      expect(r.rax).toBe(M64);
      expect(r.rbx).toBe(M64);
      expect(r.rflags & (CF | SF | ZF)).toBe(CF | SF);
    });
    it('ADC 0xFF + 0 with CF = 1 wraps with CF, ZF and AF set', async () => {
      const r = await regsAfter('xor eax, eax\nstc\nadc al, 0xff');
      expect(r.rax).toBe(0n);
      expect(r.rflags & (CF | ZF | AF | OF | PF)).toBe(CF | ZF | AF | PF);
    });
    it('SBB 0 - 0xFF - 1 (8-bit)', async () => {
      const r = await regsAfter('xor eax, eax\nstc\nsbb al, 0xff');
      expect(r.rax).toBe(0n); // 0 - 255 - 1 = -256 ≡ 0
      expect(r.rflags & (CF | ZF)).toBe(CF | ZF);
    });
  });

  describe('string instructions', () => {
    it('REP STOSB with RCX = 0 writes nothing and leaves RDI', async () => {
      const { env } = await run(`mov rdi, ${DATA}\nxor ecx, ecx\nmov al, 0xaa\nrep stosb\nint3`);
      const r = env.cpu.getRegisters();
      expect(r.rdi).toBe(DATA);
      expect(env.m.memory.read8(DATA)).toBe(0);
    });
    it('REP MOVSQ with DF = 1 copies backwards', async () => {
      const env = await flatEnv();
      for (let i = 0n; i < 4n; i++) env.m.memory.write64(DATA + i * 8n, 0x1111n * (i + 1n));
      load(env, asm(`std\nmov rsi, ${DATA + 24n}\nmov rdi, ${DATA + 0x1018n}\nmov ecx, 4\nrep movsq\ncld\nint3`, CODE));
      env.cpu.run({ maxInstructions: 100 });
      const r = env.cpu.getRegisters();
      for (let i = 0n; i < 4n; i++) expect(env.m.memory.read64(DATA + 0x1000n + i * 8n)).toBe(0x1111n * (i + 1n));
      expect(r.rsi).toBe(DATA - 8n);
      expect(r.rdi).toBe(DATA + 0xff8n);
      expect(r.rcx).toBe(0n);
      expect(r.rflags & DF).toBe(0n);
    });
    it('REPNE SCASB stops at the match; REPE CMPSB stops at the difference', async () => {
      const env = await flatEnv();
      env.m.memory.write(DATA, new TextEncoder().encode('hello\0'));
      env.m.memory.write(DATA + 0x100n, new TextEncoder().encode('help!'));
      load(env, asm(`mov rdi, ${DATA}\nxor eax, eax\nmov rcx, -1\nrepne scasb\nnot rcx\ndec rcx\nmov r8, rcx\n` +
        `mov rsi, ${DATA}\nmov rdi, ${DATA + 0x100n}\nmov ecx, 5\nrepe cmpsb\nint3`, CODE));
      env.cpu.run({ maxInstructions: 1000 });
      const r = env.cpu.getRegisters();
      expect(r.r8).toBe(5n); // strlen("hello")
      expect(r.rcx).toBe(1n); // stopped after comparing 'l' with 'p' (4 elements)
      expect(r.rsi).toBe(DATA + 4n);
      expect(r.rflags & ZF).toBe(0n);
      expect(r.rflags & CF).toBe(CF); // 'l' < 'p'
    });
    it('a #PF in the middle of REP STOSQ leaves RDI/RCX at the element and RIP on the instruction', async () => {
      const env = await flatEnv();
      const end = DATA + BigInt(64 * 4096);
      load(env, asm(`mov rdi, ${end - 16n}\nmov ecx, 4\nmov rax, 7\nrep stosq\nint3`, CODE));
      const x = env.cpu.run({ maxInstructions: 100 });
      expect(x).toMatchObject({ reason: 'EXCEPTION', vector: 14, errorCode: 4 | 2, cr2: end });
      const r = env.cpu.getRegisters();
      expect(r.rdi).toBe(end);
      expect(r.rcx).toBe(2n);
      expect(r.rip).toBe(CODE + 7n + 5n + 7n); // after three 7/5/7-byte MOVs
      expect(env.m.memory.read64(end - 8n)).toBe(7n);
    });
  });

  describe('register widths', () => {
    it('32-bit writes zero the upper half, 8/16-bit writes keep it', async () => {
      const r = await regsAfter('mov rax, -1\nadd eax, 0\nmov rbx, -1\nmov bx, 0\nmov rcx, -1\nmov cl, 0\n' +
        'mov rdx, -1\nxor esi, esi\ninc esi\ncmovz edx, esi\nmov rdi, -1\nbswap edi\nmov r8, -1\nmov r9, -1\nxchg r8d, r9d');
      expect(r.rax).toBe(0xffff_ffffn);
      expect(r.rbx).toBe(0xffff_ffff_ffff_0000n);
      expect(r.rcx).toBe(0xffff_ffff_ffff_ff00n);
      expect(r.rdx).toBe(0xffff_ffffn); // CMOVcc with a false condition still zero-extends
      expect(r.rdi).toBe(0xffff_ffffn);
      expect(r.r8).toBe(0xffff_ffffn);
      expect(r.r9).toBe(0xffff_ffffn);
    });
    it('byte register 4 is AH without REX and SPL with any REX', async () => {
      const r = await regsAfter('xor eax, eax\n.byte 0xb4, 0x12\n.byte 0x40, 0xb4, 0x34\nmov ebx, 0\n.byte 0x88, 0xe3\n.byte 0x40, 0x88, 0xe1',
        {});
      expect(r.rax).toBe(0x1200n);            // mov ah, 0x12
      expect(r.rsp & 0xffn).toBe(0x34n);       // mov spl, 0x34
      expect(r.rsp >> 8n).toBe(STACK_TOP >> 8n);
      expect(r.rbx).toBe(0x12n);               // mov bl, ah
      expect(r.rcx & 0xffn).toBe(0x34n);       // mov cl, spl
    });
    it('41 90 is XCHG r8d, eax (not a NOP); 90 is a NOP', async () => {
      const r = await regsAfter('mov rax, -1\nmov r8, 5\n.byte 0x41, 0x90\nnop');
      expect(r.rax).toBe(5n);
      expect(r.r8).toBe(0xffff_ffffn);
    });
  });

  describe('decoder', () => {
    it('RIP-relative addressing is relative to the end of the instruction, immediates included', async () => {
      const { env } = await run('mov dword ptr [rip + 0x100], 0x12345678\nint3');
      expect(env.m.memory.read32(CODE + 10n + 0x100n)).toBe(0x12345678);
    });
    it('unimplemented opcodes raise #UD at the instruction (x87, PUSH ES, UD2)', async () => {
      for (const src of ['fld1', '.byte 0x06', 'ud2', '.byte 0xc4, 0xe2, 0x78, 0xf2, 0xc1']) {
        const { r, exit } = await run(`nop\n${src}\nint3`);
        expect(exit).toMatchObject({ reason: 'EXCEPTION', vector: 6 });
        expect(r.rip).toBe(CODE + 1n);
      }
    });
    it('more than 15 bytes is #GP(0)', async () => {
      const { exit } = await run('.byte 0x66,0x66,0x66,0x66,0x66,0x66,0x66,0x66,0x66,0x66,0x66,0x66,0x66,0x66,0x66,0x90\nint3');
      expect(exit).toMatchObject({ reason: 'EXCEPTION', vector: 13, errorCode: 0 });
    });
    it('privileged instructions at CPL3 are #GP(0)', async () => {
      for (const src of ['hlt', 'cli', 'mov cr3, rax', 'wrmsr', 'lgdt [rax]', 'invlpg [rax]']) {
        const { exit } = await run(`${src}\nint3`);
        expect(exit).toMatchObject({ reason: 'EXCEPTION', vector: 13, errorCode: 0 });
      }
    });
    it('a fetch from a non-executable page is #PF with I/D set', async () => {
      const { exit } = await run(`mov rax, ${DATA}\njmp rax`);
      expect(exit).toMatchObject({ reason: 'EXCEPTION', vector: 14, errorCode: 0x10 | 0x4 | 0x1, cr2: DATA });
    });
  });

  describe('port I/O exits (CPL0)', () => {
    it('an IN is one exit carrying the register file; setIoData completes it', async () => {
      const env = await flatEnv({ cpl: 0 });
      load(env, asm('mov eax, 0x456c6d6f\nmov ecx, 2\nmov ebx, 77\nmov dx, 0x5670\nin eax, dx\nmov r8, rax\nmov r9, rbx\nint3', CODE));
      const x = env.cpu.run({ maxInstructions: 100 });
      expect(x).toMatchObject({ reason: 'IO', port: 0x5670, size: 4, direction: 'in' });
      const r = env.cpu.getRegisters();
      expect([r.rax, r.rbx, r.rcx]).toEqual([0x456c6d6fn, 77n, 2n]);
      env.cpu.setRegisters({ rbx: 1234n });
      env.cpu.setIoData(0xffff_ffff_0000_0001n);
      expect(env.cpu.run({ maxInstructions: 100 })).toMatchObject({ reason: 'EXCEPTION', vector: 3 });
      const s = env.cpu.getRegisters();
      expect(s.r8).toBe(1n); // EAX = data, zero-extended
      expect(s.r9).toBe(1234n);
    });
    it('OUT completes before the exit; REP OUTSB is one exit per element', async () => {
      const env = await flatEnv({ cpl: 0 });
      env.m.memory.write(DATA, new Uint8Array([1, 2, 3]));
      load(env, asm(`mov al, 0x41\nout 0x80, al\nmov rsi, ${DATA}\nmov ecx, 3\nmov dx, 0x3f8\nrep outsb\nint3`, CODE));
      const got: [number, bigint][] = [];
      for (;;) {
        const x = env.cpu.run({ maxInstructions: 100 });
        if (x.reason !== 'IO') { expect(x).toMatchObject({ reason: 'EXCEPTION', vector: 3 }); break; }
        expect(x.direction).toBe('out');
        got.push([x.port, x.value]);
      }
      expect(got).toEqual([[0x80, 0x41n], [0x3f8, 1n], [0x3f8, 2n], [0x3f8, 3n]]);
    });
    it('IN at CPL3 with IOPL 0 and no TSS is #GP(0)', async () => {
      const { exit } = await run('in al, 0x60\nint3');
      expect(exit).toMatchObject({ reason: 'EXCEPTION', vector: 13, errorCode: 0 });
    });
  });

  it('the instruction budget exits with RIP on the next instruction', async () => {
    const { r, exit } = await run('1: inc rax\njmp 1b');
    expect(exit).toMatchObject({ reason: 'BUDGET', instructions: 100_000 });
    expect(r.rax).toBe(50_000n);
    expect(r.rip).toBe(CODE);
  });
});

describe.skipIf(!HAVE_AS)('MMIO exits and their completion', () => {
  it('native: a read exits with the address; completeMmio supplies the value; a write is skipped once answered', async () => {
    const env = await flatEnv({ cpl: 0 });
    const MMIO_VA = 0x7000_0000n, MMIO_PA = 0xfee0_0000n; // beyond host memory
    env.pt.map(MMIO_VA, MMIO_PA, 4096, { nx: true });
    load(env, asm(`mov rbx, ${MMIO_VA}\nmov eax, [rbx + 0x20]\nmov r8, rax\nmov dword ptr [rbx + 0x30], 0x1234\nint3`, CODE));
    let x = env.cpu.run({ maxInstructions: 100 });
    expect(x).toMatchObject({ reason: 'MMIO', pa: MMIO_PA + 0x20n, size: 4, write: false });
    expect(env.cpu.getRegisters().rip).toBe(CODE + 7n); // on the instruction, after the 7-byte MOV
    env.cpu.completeMmio(0xabcdn);
    x = env.cpu.run({ maxInstructions: 100 });
    expect(x).toMatchObject({ reason: 'MMIO', pa: MMIO_PA + 0x30n, size: 4, write: true, value: 0x1234n });
    expect(env.cpu.getRegisters().r8).toBe(0xabcdn);
    env.cpu.completeMmio();
    expect(env.cpu.run({ maxInstructions: 100 })).toMatchObject({ reason: 'EXCEPTION', vector: 3 });
  });
});
