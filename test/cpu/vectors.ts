// Fixed vectors for the edge cases of issue 11 (div overflow, shift counts 0 and ≥ width,
// IMUL flags, BSF of 0, ADC/SBB chains, REP with RCX = 0, DF = 1, and a few classic
// interpreter bugs). Each gives the values the SDM states; the test checks them on the
// host CPU, and the interpreter must then match the host on the whole state.
// Assembled at test time with the system assembler (`as`, Intel syntax).

import type { Outcome } from './compare.js';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CF, PF, AF, ZF, SF, OF, DF, ARITH, GPR_NAMES, RSP0, DATA_BASE, DATA_SIZE, CODE_BASE, FIXED_FLAGS, GS_BASE } from './layout.js';

type Gpr = (typeof GPR_NAMES)[number];
export interface Vector {
  name: string;
  asm: string;
  gpr?: Partial<Record<Gpr, bigint>>;
  /** Input arithmetic flags and DF (default none). */
  flags?: number;
  /** Flags the SDM leaves undefined at the end: not compared, with the host or the interpreter. */
  undef?: number;
  /** Host feature the vector needs (BMI1 for TZCNT, ABM for LZCNT). */
  needs?: 'bmi1' | 'lzcnt';
  expect: {
    /** Fault vector (RIP then points at the faulting instruction, the registers are the inputs). */
    vector?: number;
    gpr?: Partial<Record<Gpr, bigint>>;
    /** Registers that must equal their input. */
    same?: Gpr[];
    set?: number;
    clear?: number;
    /** Data bytes at offsets from the data base. */
    mem?: [number, number[]][];
  };
}

const S = DATA_BASE; // scratch
const X = (v: number | bigint) => BigInt.asUintN(64, BigInt(v));
const ALL = ARITH;

export const VECTORS: Vector[] = [
  // ---- division ----
  { name: 'div r64: 100 / 7', asm: 'div rcx', gpr: { rdx: 0n, rax: 100n, rcx: 7n }, undef: ALL, expect: { gpr: { rax: 14n, rdx: 2n } } },
  { name: 'div r64 by zero: #DE', asm: 'div rcx', gpr: { rdx: 0n, rax: 5n, rcx: 0n }, undef: ALL, expect: { vector: 0, same: ['rax', 'rdx', 'rcx'] } },
  { name: 'div r64 quotient overflow: #DE', asm: 'div rcx', gpr: { rdx: 1n, rax: 0n, rcx: 1n }, undef: ALL, expect: { vector: 0, same: ['rax', 'rdx'] } },
  { name: 'idiv r64 MIN / -1: #DE', asm: 'idiv rcx', gpr: { rax: X(1n << 63n), rdx: X(-1), rcx: X(-1) }, undef: ALL, expect: { vector: 0, same: ['rax', 'rdx'] } },
  { name: 'idiv r64 truncates toward zero: -7 / 2', asm: 'idiv rcx', gpr: { rax: X(-7), rdx: X(-1), rcx: 2n }, undef: ALL, expect: { gpr: { rax: X(-3), rdx: X(-1) } } },
  { name: 'idiv r32 MIN / -1: #DE', asm: 'idiv ecx', gpr: { rax: 0x80000000n, rdx: 0xffffffffn, rcx: 0xffffffffn }, undef: ALL, expect: { vector: 0 } },
  { name: 'div r8 quotient 256: #DE', asm: 'div bl', gpr: { rax: 0x100n, rbx: 1n }, undef: ALL, expect: { vector: 0 } },
  { name: 'idiv r8 -128 / -1: #DE', asm: 'idiv bl', gpr: { rax: 0xff80n, rbx: 0xffn }, undef: ALL, expect: { vector: 0 } },
  { name: 'div r16 keeps bits 63:16', asm: 'div cx', gpr: { rax: 0xaaaa0000000003e8n, rdx: 0xbbbb000000000000n, rcx: 7n }, undef: ALL, expect: { gpr: { rax: 0xaaaa00000000008en, rdx: 0xbbbb000000000006n } } },
  { name: 'div r32 zero-extends RAX and RDX', asm: 'div ecx', gpr: { rax: 0xffffffff00000064n, rdx: 0xffffffff00000000n, rcx: 7n }, undef: ALL, expect: { gpr: { rax: 14n, rdx: 2n } } },
  { name: 'div r8: AL quotient, AH remainder', asm: 'div bl', gpr: { rax: 0x1234_0000_0000_00ffn, rbx: 0x10n }, undef: ALL, expect: { gpr: { rax: 0x1234_0000_0000_0f0fn } } },

  // ---- shift counts 0 and ≥ width ----
  { name: 'shl r64 by CL=0: value and flags unchanged', asm: 'shl rax, cl', gpr: { rax: 0x8000000000000001n, rcx: 0n }, flags: ALL, expect: { same: ['rax'], set: ALL } },
  { name: 'shl r64 by CL=64 (masked to 0): no change', asm: 'shl rax, cl', gpr: { rax: 0x8000000000000001n, rcx: 64n }, flags: CF | ZF, expect: { same: ['rax'], set: CF | ZF, clear: SF | OF | PF | AF } },
  { name: 'shr r32 by CL=32 (masked to 0): flags unchanged', asm: 'shr eax, cl', gpr: { rax: 0x12345678n, rcx: 32n }, flags: SF | OF, expect: { gpr: { rax: 0x12345678n }, set: SF | OF, clear: CF | ZF } },
  { name: 'shl r8 by 8: result 0 (CF undefined)', asm: 'shl al, cl', gpr: { rax: 0xffn, rcx: 8n }, undef: CF | OF | AF, expect: { gpr: { rax: 0n }, set: ZF | PF, clear: SF } },
  { name: 'shr r16 by 17: result 0', asm: 'shr ax, cl', gpr: { rax: 0xffffn, rcx: 17n }, undef: CF | OF | AF, expect: { gpr: { rax: 0n }, set: ZF | PF, clear: SF } },
  { name: 'sar r8 by 200 (masked 8): sign fill', asm: 'sar al, cl', gpr: { rax: 0x80n, rcx: 200n }, undef: OF | AF, expect: { gpr: { rax: 0xffn }, set: CF | SF | PF, clear: ZF } },
  { name: 'shl r64 by 1: OF = MSB xor CF', asm: 'shl rax, 1', gpr: { rax: 0x4000000000000000n }, undef: AF, expect: { gpr: { rax: 0x8000000000000000n }, set: OF | SF, clear: CF | ZF } },
  { name: 'sar r32 by 1: OF = 0', asm: 'sar eax, 1', gpr: { rax: 0x80000001n }, flags: OF, undef: AF, expect: { gpr: { rax: 0xc0000000n }, set: CF | SF, clear: OF | ZF } },
  { name: 'rol r8 by 8: value same, CF = LSB', asm: 'rol al, cl', gpr: { rax: 0x81n, rcx: 8n }, undef: OF, expect: { gpr: { rax: 0x81n }, set: CF } },
  { name: 'rcl r8 by 9 (mod 9 = 0): identity', asm: 'rcl al, cl', gpr: { rax: 0x5an, rcx: 9n }, flags: CF, undef: OF, expect: { gpr: { rax: 0x5an }, set: CF } },
  { name: 'rcr r16 by 17 (mod 17 = 0): identity', asm: 'rcr ax, cl', gpr: { rax: 0x1234n, rcx: 17n }, undef: OF, expect: { gpr: { rax: 0x1234n }, clear: CF } },
  { name: 'rcl r32 by 1 with CF=1', asm: 'rcl eax, 1', gpr: { rax: 0x80000000n }, flags: CF, expect: { gpr: { rax: 1n }, set: CF | OF } },
  { name: 'shld r16 by 16: result = source', asm: 'shld ax, bx, 16', gpr: { rax: 0x1234n, rbx: 0xabcdn }, undef: OF | AF, expect: { gpr: { rax: 0xabcdn }, clear: CF | ZF, set: SF } },
  { name: 'shrd r64 by CL=64 (masked 0): no change', asm: 'shrd rax, rbx, cl', gpr: { rax: 0x1111n, rbx: 0x2222n, rcx: 64n }, flags: PF, expect: { gpr: { rax: 0x1111n }, set: PF, clear: CF | ZF | SF | OF } },

  // ---- IMUL / MUL flags ----
  { name: 'imul r64: overflow sets CF and OF', asm: 'imul rax, rbx', gpr: { rax: 0x4000000000000000n, rbx: 4n }, undef: SF | ZF | AF | PF, expect: { gpr: { rax: 0n }, set: CF | OF } },
  { name: 'imul r64: -3 × 5 fits, CF=OF=0', asm: 'imul rax, rbx', gpr: { rax: X(-3), rbx: 5n }, flags: CF | OF, undef: SF | ZF | AF | PF, expect: { gpr: { rax: X(-15) }, clear: CF | OF } },
  { name: 'imul r8 one-operand: 64 × 2 = 128 overflows', asm: 'imul bl', gpr: { rax: 64n, rbx: 2n }, undef: SF | ZF | AF | PF, expect: { gpr: { rax: 128n }, set: CF | OF } },
  { name: 'imul r32, imm8: MIN fits', asm: 'imul eax, ebx, -2', gpr: { rbx: 0x40000000n }, flags: CF | OF, undef: SF | ZF | AF | PF, expect: { gpr: { rax: 0x80000000n }, clear: CF | OF } },
  { name: 'mul r64: -1 × -1 (unsigned)', asm: 'mul rbx', gpr: { rax: X(-1), rbx: X(-1) }, undef: SF | ZF | AF | PF, expect: { gpr: { rax: 1n, rdx: X(-2) }, set: CF | OF } },
  { name: 'mul r64: no high half, CF=OF=0', asm: 'mul rbx', gpr: { rax: 3n, rbx: 5n, rdx: 77n }, flags: CF | OF, undef: SF | ZF | AF | PF, expect: { gpr: { rax: 15n, rdx: 0n }, clear: CF | OF } },
  { name: 'imul r16 one-operand: DX:AX', asm: 'imul cx', gpr: { rax: 0xffffn, rcx: 0x7fffn, rdx: 0x1234_0000_0000_0000n }, undef: SF | ZF | AF | PF, expect: { gpr: { rax: 0x8001n, rdx: 0x1234_0000_0000_ffffn }, clear: CF | OF } },

  // ---- BSF/BSR of 0, TZCNT/LZCNT/POPCNT ----
  { name: 'bsf r64 of 0: ZF=1 (destination: Intel undefined, AMD unchanged)', asm: 'bsf rax, rbx', gpr: { rbx: 0n }, undef: CF | OF | SF | AF | PF, expect: { set: ZF } },
  { name: 'bsr r32 of 0: ZF=1', asm: 'bsr eax, ebx', gpr: { rbx: 0xffffffff00000000n }, undef: CF | OF | SF | AF | PF, expect: { set: ZF } },
  { name: 'bsf r64 of 0x8000 = 15', asm: 'bsf rax, rbx', gpr: { rbx: 0x8000n }, flags: ZF, undef: CF | OF | SF | AF | PF, expect: { gpr: { rax: 15n }, clear: ZF } },
  { name: 'bsr r16 of 0x0100 = 8', asm: 'bsr ax, bx', gpr: { rax: 0x5555_0000_0000_0000n, rbx: 0x100n }, undef: CF | OF | SF | AF | PF, expect: { gpr: { rax: 0x5555_0000_0000_0008n }, clear: ZF } },
  { name: 'tzcnt r64 of 0 = 64, CF=1', asm: 'tzcnt rax, rbx', gpr: { rbx: 0n }, needs: 'bmi1', undef: OF | SF | AF | PF, expect: { gpr: { rax: 64n }, set: CF, clear: ZF } },
  { name: 'lzcnt r32 of 0 = 32, CF=1', asm: 'lzcnt eax, ebx', gpr: { rbx: 0n }, needs: 'lzcnt', undef: OF | SF | AF | PF, expect: { gpr: { rax: 32n }, set: CF, clear: ZF } },
  { name: 'lzcnt r16 of 1 = 15', asm: 'lzcnt ax, bx', gpr: { rbx: 1n, rax: 0n }, needs: 'lzcnt', undef: OF | SF | AF | PF, expect: { gpr: { rax: 15n }, clear: CF | ZF } },
  { name: 'popcnt of 0: ZF=1, other flags 0', asm: 'popcnt rax, rbx', gpr: { rbx: 0n }, flags: ALL & ~ZF, expect: { gpr: { rax: 0n }, set: ZF, clear: CF | OF | SF | AF | PF } },

  // ---- ADC/SBB chains ----
  { name: 'add/adc chain: 256-bit (2^192-1)·… + 1 carries through', asm: 'add rax, r8\nadc rbx, r9\nadc rcx, r10\nadc rdx, r11', gpr: { rax: X(-1), rbx: X(-1), rcx: X(-1), rdx: 0n, r8: 1n, r9: 0n, r10: 0n, r11: 0n }, expect: { gpr: { rax: 0n, rbx: 0n, rcx: 0n, rdx: 1n }, clear: CF | ZF | SF | OF } },
  { name: 'sub/sbb chain: 256-bit borrow through', asm: 'sub rax, r8\nsbb rbx, r9\nsbb rcx, r10\nsbb rdx, r11', gpr: { rax: 0n, rbx: 0n, rcx: 0n, rdx: 1n, r8: 1n, r9: 0n, r10: 0n, r11: 0n }, expect: { gpr: { rax: X(-1), rbx: X(-1), rcx: X(-1), rdx: 0n }, set: ZF | PF, clear: CF | SF | OF } },
  { name: 'adc r64 with CF=1: -1 + 0 + 1', asm: 'adc rax, rbx', gpr: { rax: X(-1), rbx: 0n }, flags: CF, expect: { gpr: { rax: 0n }, set: CF | ZF | AF | PF, clear: SF | OF } },
  { name: 'sbb r8 with CF=1: 0 - 0 - 1', asm: 'sbb al, bl', gpr: { rax: 0x100n, rbx: 0n }, flags: CF, expect: { gpr: { rax: 0x1ffn }, set: CF | SF | AF | PF, clear: ZF | OF } },
  { name: 'adc r32 overflow: 0x7fffffff + 0 + CF', asm: 'adc eax, ebx', gpr: { rax: 0x7fffffffn, rbx: 0n }, flags: CF, expect: { gpr: { rax: 0x80000000n }, set: OF | SF | AF | PF, clear: CF | ZF } },

  // ---- REP with RCX = 0 ----
  { name: 'rep movsb, RCX=0: nothing moves', asm: 'rep movsb', gpr: { rsi: X(S + 0x100), rdi: X(S + 0x200), rcx: 0n }, flags: ALL, expect: { same: ['rsi', 'rdi', 'rcx'], set: ALL } },
  { name: 'repe cmpsb, RCX=0: flags unchanged', asm: 'repe cmpsb', gpr: { rsi: X(S + 0x100), rdi: X(S + 0x200), rcx: 0n }, flags: ZF | CF, expect: { same: ['rsi', 'rdi', 'rcx'], set: ZF | CF, clear: SF | OF | PF | AF } },
  { name: 'repne scasq, RCX=0: flags unchanged', asm: 'repne scasq', gpr: { rdi: X(S + 0x200), rcx: 0n }, flags: SF, expect: { same: ['rdi', 'rcx'], set: SF, clear: ZF | CF } },
  { name: 'rep stosq, RCX=0: no store', asm: 'rep stosq', gpr: { rdi: X(S + 0x200), rcx: 0n, rax: 0n }, expect: { same: ['rdi'] } },
  { name: 'rep stosb with 67 and ECX=0 (RCX=2^32)', asm: 'addr32 rep stosb', gpr: { rdi: X(S + 0x200), rcx: 1n << 32n, rax: 0n }, expect: { same: ['rdi'] } },
  { name: 'rep movsq, RCX=3', asm: 'rep movsq', gpr: { rsi: X(S + 0x100), rdi: X(S + 0x300), rcx: 3n }, expect: { gpr: { rsi: X(S + 0x118), rdi: X(S + 0x318), rcx: 0n } } },

  // ---- DF = 1 ----
  { name: 'DF=1: lodsq steps RSI down by 8', asm: 'std\nlodsq', gpr: { rsi: X(S + 0x100) }, expect: { gpr: { rsi: X(S + 0xf8) }, set: DF } },
  { name: 'DF=1: rep movsb copies an overlapping block backwards', asm: 'std\nrep movsb', gpr: { rsi: X(S + 0x107), rdi: X(S + 0x10f), rcx: 8n }, expect: { gpr: { rsi: X(S + 0xff), rdi: X(S + 0x107), rcx: 0n }, mem: [[0x108, pattern(0x100, 8)]] } },
  { name: 'DF=1: rep stosd fills downwards', asm: 'std\nrep stosd', gpr: { rdi: X(S + 0x200), rcx: 3n, rax: 0x11223344n }, expect: { gpr: { rdi: X(S + 0x1f4), rcx: 0n }, mem: [[0x1f8, [0x44, 0x33, 0x22, 0x11, 0x44, 0x33, 0x22, 0x11, 0x44, 0x33, 0x22, 0x11]]] } },
  { name: 'DF=1 from the input flags: scasw steps RDI down by 2', asm: 'scasw', gpr: { rdi: X(S + 0x300) }, flags: DF, expect: { gpr: { rdi: X(S + 0x2fe) }, set: DF } },
  { name: 'DF=1: repe cmpsb over equal bytes', asm: 'std\nrepe cmpsb', gpr: { rsi: X(S + 0x100), rdi: X(S + 0x100), rcx: 5n }, expect: { gpr: { rsi: X(S + 0xfb), rdi: X(S + 0xfb), rcx: 0n }, set: ZF } },

  // ---- classic interpreter bugs (reference sheet §10) ----
  { name: 'xchg eax, eax (87 C0) zero-extends', asm: '.byte 0x87, 0xc0', gpr: { rax: 0xffffffff00000001n }, expect: { gpr: { rax: 1n } } },
  { name: '90 is NOP, not xchg eax, eax', asm: 'nop', gpr: { rax: 0xffffffff00000001n }, expect: { same: ['rax'] } },
  { name: '41 90 is xchg r8d, eax', asm: '.byte 0x41, 0x90', gpr: { rax: 0xffffffff00000001n, r8: 0xeeeeeeee00000002n }, expect: { gpr: { rax: 2n, r8: 1n } } },
  { name: 'cmovz false still zero-extends a 32-bit destination', asm: 'cmovz eax, ebx', gpr: { rax: 0xffffffff00000001n, rbx: 5n }, expect: { gpr: { rax: 1n } } },
  { name: 'mov sil with REX 40 is not DH', asm: '.byte 0x40, 0x88, 0xc6', gpr: { rax: 0x7fn, rsi: 0x1234n, rdx: 0x5555n }, expect: { gpr: { rsi: 0x127fn }, same: ['rdx'] } },
  { name: 'mov dh, al without REX', asm: '.byte 0x88, 0xc6', gpr: { rax: 0x7fn, rsi: 0x1234n, rdx: 0x5555n }, expect: { gpr: { rdx: 0x7f55n }, same: ['rsi'] } },
  { name: 'push imm8 sign-extends to 64 bits', asm: 'push -2\npop rbx', expect: { gpr: { rbx: X(-2), rsp: X(RSP0) } } },
  { name: '66 push imm16 moves RSP by 2', asm: '.byte 0x66, 0x6a, 0xff', expect: { gpr: { rsp: X(RSP0 - 2) }, mem: [[RSP0 - DATA_BASE - 2, [0xff, 0xff]]] } },
  { name: 'RIP-relative: RIP is the end of the instruction, immediate included', asm: 'cmp byte ptr [rip - 1], 0x42', expect: { set: ZF } },
  { name: 'lea rax, [rip]', asm: 'lea rax, [rip]', expect: { gpr: { rax: X(CODE_BASE + 7) } } },
  { name: 'mov eax, [rip]: reads the end marker and the filler', asm: 'mov eax, [rip]', expect: { gpr: { rax: 0xcccc0b0fn } } },
  { name: 'imm32 sign-extends under REX.W (81 /0)', asm: '.byte 0x48, 0x81, 0xc0, 0xff, 0xff, 0xff, 0xff', gpr: { rax: 0n }, expect: { gpr: { rax: X(-1) }, set: SF, clear: CF | ZF } },
  { name: 'lea with 67 wraps at 32 bits', asm: 'lea rax, [ebx + ecx]', gpr: { rbx: 0xffffffffn, rcx: 2n }, expect: { gpr: { rax: 1n } } },
  { name: 'bt m32 with a register offset reaches past the operand', asm: 'bt dword ptr [rbx], ecx', gpr: { rbx: X(S + 0x100), rcx: 64n + 3n }, undef: OF | SF | AF | PF, expect: patternBit(0x108, 3) ? { set: CF } : { clear: CF } },
  { name: 'xadd with one register for both operands: the sum wins', asm: 'xadd ebx, ebx', gpr: { rbx: 0xffff_ffff_0000_0021n }, expect: { gpr: { rbx: 0x42n } } },
  { name: 'xadd r8, r/m8 high byte: AH + AH', asm: 'xadd ah, ah', gpr: { rax: 0x1234n }, expect: { gpr: { rax: 0x2434n } } },
  { name: 'bts m64 with 67: the bit offset wraps with the 32-bit address', asm: 'bts qword ptr [ebx], rax', gpr: { rbx: 0xffff_ffff_ffff_fff0n, rax: X(S + 0x10) * 8n + 3n }, undef: OF | SF | AF | PF, expect: { mem: [[0x0, [pattern(0, 1)[0] | 8]]] } },
  { name: 'bts m64 with 67 and GS: the base is added after the wrap', asm: 'bts qword ptr gs:[ebx], rax', gpr: { rbx: 0xffff_ffff_ffff_fff0n, rax: X(S - GS_BASE + 0x10) * 8n + 3n }, undef: OF | SF | AF | PF, expect: { mem: [[0x0, [pattern(0, 1)[0] | 8]]] } },
  { name: 'GS then a null CS prefix (65 2E): still GS in 64-bit mode', asm: '.byte 0x65, 0x2e, 0x8b, 0x03', gpr: { rbx: X(S + 0x100 - GS_BASE) }, expect: { gpr: { rax: BigInt(pattern(0x100, 4).reduce((a, b, i) => a + b * 256 ** i, 0)) } } },
  { name: 'FS then GS (64 65): the last one, GS', asm: '.byte 0x64, 0x65, 0x8b, 0x03', gpr: { rbx: X(S + 0x100 - GS_BASE) }, expect: { gpr: { rax: BigInt(pattern(0x100, 4).reduce((a, b, i) => a + b * 256 ** i, 0)) } } },
  { name: 'CLAC at CPL 3: #UD', asm: '.byte 0x0f, 0x01, 0xca', expect: { vector: 6 } },
  { name: 'STAC at CPL 3: #UD', asm: '.byte 0x0f, 0x01, 0xcb', expect: { vector: 6 } },
  { name: 'cmpxchg16b: equal → stores RCX:RBX, ZF=1', asm: 'mov rax, [rdi]\nmov rdx, [rdi + 8]\ncmpxchg16b [rdi]', gpr: { rdi: X(S + 0x400), rbx: 0x1111n, rcx: 0x2222n }, expect: { set: ZF, mem: [[0x400, [0x11, 0x11, 0, 0, 0, 0, 0, 0, 0x22, 0x22, 0, 0, 0, 0, 0, 0]]] } },
  { name: 'cmpxchg16b misaligned: #GP', asm: 'cmpxchg16b [rdi]', gpr: { rdi: X(S + 0x408) }, expect: { vector: 13 } },
  { name: 'PREFETCHW with a register operand (0F 0D C0): #UD', asm: '.byte 0x0f, 0x0d, 0xc0', expect: { vector: 6 } },
  { name: 'hint NOP 0F 18 with a register operand: a NOP', asm: '.byte 0x0f, 0x18, 0xc0', expect: { same: ['rax'] } },
  { name: 'LEA ignores a GS prefix', asm: 'lea rax, gs:[rbx]', gpr: { rbx: 0x1234n }, expect: { gpr: { rax: 0x1234n } } },
  { name: 'ud2: #UD', asm: 'ud2', expect: { vector: 6 } },
  { name: 'hlt at CPL 3: #GP', asm: 'hlt', expect: { vector: 13 } },
  { name: 'load from an unmapped page: #PF', asm: 'mov rax, [rbx]', gpr: { rbx: X(DATA_BASE + DATA_SIZE + 0x10) }, expect: { vector: 14 } },
  { name: 'RFLAGS.AC at CPL 3 (CR0.AM as Linux sets it): misaligned load, #AC', asm: 'mov eax, [rbx]', gpr: { rbx: X(S + 0x101) }, flags: 1 << 18, expect: { vector: 17, same: ['rax'] } },
  { name: 'RFLAGS.AC: an aligned load is fine', asm: 'mov eax, [rbx]', gpr: { rbx: X(S + 0x104), rax: X(-1) }, flags: 1 << 18, expect: { gpr: { rax: BigInt(pattern(0x104, 4).reduce((a, b, i) => a + b * 256 ** i, 0)) } } },
  { name: 'RFLAGS.AC: a push onto a misaligned RSP, #AC', asm: 'push rax', gpr: { rsp: X(RSP0 - 4) }, flags: 1 << 18, expect: { vector: 17, same: ['rsp'] } },
  { name: 'load across the top of the lower canonical half: #GP before the #PF of its first page', asm: 'mov rax, [rbx]', gpr: { rbx: 0x7fff_ffff_fffcn }, expect: { vector: 13 } },
  { name: 'the same with an RBP base: #SS', asm: 'mov rax, [rbp]', gpr: { rbp: 0x7fff_ffff_fffcn }, expect: { vector: 12 } },
  { name: 'RFLAGS.AC and a misaligned non-canonical load: #GP before #AC', asm: 'mov rax, [rbx]', gpr: { rbx: 0x8000_0000_0e77n }, flags: 1 << 18, expect: { vector: 13 } },
  { name: 'read-modify-write on an unmapped page: #PF (error code W|U)', asm: 'add [rbx], eax', gpr: { rbx: X(DATA_BASE + DATA_SIZE + 0x10) }, expect: { vector: 14 } },
  { name: 'CMPXCHG16B on an unmapped page: #PF (error code W|U)', asm: 'cmpxchg16b [rbx]', gpr: { rbx: X(DATA_BASE + DATA_SIZE + 0x10) }, expect: { vector: 14 } },
];

/** How the outcome departs from the SDM values the vector states. */
export function checkVector(v: Vector, input: { gpr: bigint[] }, o: Outcome): string[] {
  const bad: string[] = [];
  const e = v.expect;
  const hex = (x: bigint) => '0x' + x.toString(16);
  if (e.vector !== undefined) {
    if (o.status !== 'fault' || o.vector !== e.vector) bad.push(`expected #${e.vector}, got ${o.status} ${o.vector}`);
    // Faulting vectors are one instruction: a fault leaves RIP on it.
    if (o.rip !== BigInt(CODE_BASE)) bad.push(`fault RIP ${hex(o.rip)}, expected the instruction's own`);
  } else if (o.status !== 'end') bad.push(`expected to reach the end, got ${o.status} #${o.vector}`);
  for (const [name, want] of Object.entries(e.gpr ?? {})) {
    const got = o.gpr[GPR_NAMES.indexOf(name as Gpr)];
    if (got !== want) bad.push(`${name} = ${hex(got)}, SDM value ${hex(want!)}`);
  }
  for (const name of e.same ?? []) {
    const i = GPR_NAMES.indexOf(name);
    if (o.gpr[i] !== input.gpr[i]) bad.push(`${name} changed to ${hex(o.gpr[i])}`);
  }
  const f = Number(o.rflags);
  if ((f & (e.set ?? 0)) !== (e.set ?? 0)) bad.push(`flags ${hex(BigInt(f))}: expected set ${hex(BigInt(e.set!))}`);
  if (f & (e.clear ?? 0)) bad.push(`flags ${hex(BigInt(f))}: expected clear ${hex(BigInt(e.clear!))}`);
  for (const [off, bytes] of e.mem ?? []) {
    const got = Array.from(o.data.subarray(off, off + bytes.length));
    if (got.join() !== bytes.join()) bad.push(`memory at +${hex(BigInt(off))}: ${got}, expected ${bytes}`);
  }
  return bad;
}

/** The vectors' data image: byte i = (7i + 3) mod 256. */
export function pattern(from = 0, n = DATA_SIZE): number[] {
  return Array.from({ length: n }, (_, i) => ((from + i) * 7 + 3) & 0xff);
}
function patternBit(byteOff: number, bit: number): boolean { return ((pattern(byteOff, 1)[0] >> bit) & 1) === 1; }

/** Input GPRs: the vector's, else a distinct pattern per register; RSP = the private stack. */
export function vectorInputs(v: Vector): { gpr: bigint[]; rflags: bigint } {
  const gpr = GPR_NAMES.map((n, i) => v.gpr?.[n] ?? X(0x0101010101010101n * BigInt(i + 1) + 0x1000n));
  gpr[4] = v.gpr?.rsp ?? BigInt(RSP0);
  return { gpr, rflags: BigInt(FIXED_FLAGS | (v.flags ?? 0)) };
}

/** Assembles every vector with `as` (one process) and returns each one's bytes. */
export function assemble(vectors: Vector[]): Uint8Array[] {
  const dir = mkdtempSync(join(tmpdir(), 'memvisor-vectors-'));
  try {
    const src = ['.intel_syntax noprefix', '.text'];
    vectors.forEach((v, i) => src.push(`v${i}:`, v.asm, `v${i}_end:`));
    writeFileSync(join(dir, 'v.s'), src.join('\n') + '\n');
    execFileSync('as', ['--64', '-o', join(dir, 'v.o'), join(dir, 'v.s')], { stdio: 'pipe' });
    execFileSync('objcopy', ['-O', 'binary', '-j', '.text', join(dir, 'v.o'), join(dir, 'v.bin')], { stdio: 'pipe' });
    const syms = new Map<string, number>();
    for (const line of execFileSync('nm', [join(dir, 'v.o')]).toString().split('\n')) {
      const [addr, , name] = line.trim().split(/\s+/);
      if (name) syms.set(name, parseInt(addr, 16));
    }
    const bin = readFileSync(join(dir, 'v.bin'));
    return vectors.map((_, i) => Uint8Array.from(bin.subarray(syms.get(`v${i}`)!, syms.get(`v${i}_end`)!)));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
