// Random instructions written as assembler text (the generator of the former
// test/x86/diff.test.ts, folded into this harness): every operand size and register name
// (AH..BH included), register/immediate/memory forms, shifts by CL, string instructions in
// both directions, and short sequences whose flags are all defined. Cases are assembled with
// `as` and run as vectors (vectors.ts) through the native helper and the interpreter.
// Undefined flags per instruction follow the SDM (AF after logic ops and shifts; OF after
// multi-bit shifts and rotates; SF ZF AF PF after MUL/IMUL; all but ZF after BSF/BSR; OF SF
// AF PF after BT* and TZCNT/LZCNT).

import { Rng } from '../../../src/util/rng.js';
import { DATA_BASE, RSP0, GPR_NAMES } from '../layout.js';

const CF = 1n, PF = 4n, AF = 16n, ZF = 64n, SF = 128n, OF = 2048n, DF = 1024n;
const ALL = CF | PF | AF | ZF | SF | OF | DF;
const DATA_VA = BigInt(DATA_BASE);

const R64 = ['rax', 'rcx', 'rdx', 'rbx', 'rsi', 'rdi', 'rbp', 'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14'];
const R32 = ['eax', 'ecx', 'edx', 'ebx', 'esi', 'edi', 'ebp', 'r8d', 'r9d', 'r10d', 'r11d', 'r12d', 'r13d', 'r14d'];
const R16 = ['ax', 'cx', 'dx', 'bx', 'si', 'di', 'bp', 'r8w', 'r9w', 'r10w', 'r11w', 'r12w', 'r13w', 'r14w'];
const R8 = ['al', 'cl', 'dl', 'bl', 'sil', 'dil', 'bpl', 'r8b', 'r9b', 'r10b', 'r11b', 'r12b', 'r13b', 'r14b', 'ah', 'ch', 'dh', 'bh'];
const SIZES = [1, 2, 4, 8] as const;
const PTR: Record<number, string> = { 1: 'byte', 2: 'word', 4: 'dword', 8: 'qword' };
const CC = ['o', 'no', 'b', 'ae', 'e', 'ne', 'be', 'a', 's', 'ns', 'p', 'np', 'l', 'ge', 'le', 'g'];

export interface Gen { insn: string; undef: bigint }

export function gen(rng: Rng, regs: bigint[]): Gen {
  const g = gen1(rng, regs);
  // A memory operand uses r15 (a REX prefix): AH..BH cannot appear with it.
  if (g.insn.includes('ptr') || /\br(8|9|1[0-5])|[sd]il|bpl/.test(g.insn)) g.insn = g.insn.replace(/\b([abcd])h\b/g, '$1l');
  return g;
}

function gen1(rng: Rng, regs: bigint[]): Gen {
  const pick = <T,>(a: readonly T[]) => a[rng.below(a.length)];
  const size = pick(SIZES);
  const regOf = (s: number, noHigh = false) => {
    if (s === 8) return pick(R64);
    if (s === 4) return pick(R32);
    if (s === 2) return pick(R16);
    return noHigh ? pick(R8.slice(0, 14)) : pick(R8);
  };
  // 8-bit forms cannot mix AH..BH with REX registers: keep them apart.
  const pair8 = () => (rng.below(2) ? [pick(R8.slice(0, 4).concat(R8.slice(14))), pick(R8.slice(0, 4).concat(R8.slice(14)))] : [pick(R8.slice(0, 14)), pick(R8.slice(0, 14))]);
  const two = (s: number) => (s === 1 ? pair8() : [regOf(s), regOf(s)]);
  const mem = (s: number) => `${PTR[s]} ptr [r15 + ${rng.below(64) * 8 - 256 + (rng.below(4) === 0 ? rng.below(8) : 0)}]`;
  const imm = (s: number) => {
    const v = rng.below(4) === 0 ? rng.below(256) - 128 : rng.u32() | 0;
    if (s === 1) return ((v % 256) + 256) % 256;
    if (s === 2) return ((v % 65536) + 65536) % 65536;
    return v; // imm32, sign-extended for 64-bit
  };
  const cl = Number(regs[1] & 0xffn);
  switch (rng.below(20)) {
    case 0: case 1: case 2: { // ALU
      const op = pick(['add', 'or', 'adc', 'sbb', 'and', 'sub', 'xor', 'cmp', 'test']);
      const logic = op === 'or' || op === 'and' || op === 'xor' || op === 'test';
      const [a, b] = two(size);
      const form = rng.below(4);
      const insn = form === 0 ? `${op} ${a}, ${b}` : form === 1 ? `${op} ${a}, ${imm(size)}`
        : form === 2 && op !== 'test' ? `${op} ${a}, ${mem(size)}` : `${op} ${mem(size)}, ${a}`;
      return { insn, undef: logic ? AF : 0n };
    }
    case 3: { // shifts and rotates
      const op = pick(['rol', 'ror', 'rcl', 'rcr', 'shl', 'shr', 'sar']);
      const dst = rng.below(4) === 0 ? mem(size) : regOf(size, true);
      const useCl = rng.below(2) === 0;
      const n = useCl ? cl : rng.below(size * 8 + 8);
      const masked = n & (size === 8 ? 63 : 31);
      let undef = 0n;
      if (masked !== 0) {
        if (masked !== 1) undef |= OF;
        if (op === 'shl' || op === 'shr' || op === 'sar') undef |= AF;
        if ((op === 'shl' || op === 'shr') && size < 4 && masked >= size * 8) undef |= CF | OF;
      }
      return { insn: `${op} ${dst}, ${useCl ? 'cl' : n}`, undef };
    }
    case 4: { // shld/shrd
      if (size === 1) return { insn: 'nop', undef: 0n };
      const op = pick(['shld', 'shrd']);
      const [a, b] = [regOf(size), regOf(size)];
      const useCl = rng.below(2) === 0;
      let n = useCl ? cl : rng.below(size * 8);
      if (size === 2 && (n & 31) > 16) { if (useCl) return { insn: 'nop', undef: 0n }; n &= 15; }
      const masked = n & (size === 8 ? 63 : 31);
      return { insn: `${op} ${rng.below(3) === 0 ? mem(size) : a}, ${b}, ${useCl ? 'cl' : n}`, undef: masked === 0 ? 0n : AF | (masked !== 1 ? OF : 0n) };
    }
    case 5: { // unary
      const op = pick(['inc', 'dec', 'neg', 'not']);
      return { insn: `${op} ${rng.below(3) === 0 ? mem(size) : regOf(size)}`, undef: 0n };
    }
    case 6: { // multiply
      const f = rng.below(4);
      if (f === 0) return { insn: `${pick(['mul', 'imul'])} ${rng.below(3) === 0 ? mem(size) : regOf(size)}`, undef: SF | ZF | AF | PF };
      if (size === 1) return { insn: `imul ${regOf(1, true)}`, undef: SF | ZF | AF | PF };
      const [a, b] = [regOf(size), regOf(size)];
      if (f === 1) return { insn: `imul ${a}, ${rng.below(3) === 0 ? mem(size) : b}`, undef: SF | ZF | AF | PF };
      return { insn: `imul ${a}, ${b}, ${size === 2 ? imm(2) : imm(4)}`, undef: SF | ZF | AF | PF };
    }
    case 7: { // bit tests (register offsets wrap on register operands)
      if (size === 1) return { insn: 'nop', undef: 0n };
      const op = pick(['bt', 'bts', 'btr', 'btc']);
      const dst = rng.below(3) === 0 ? mem(size) : regOf(size);
      const src = rng.below(2) ? `${rng.below(256)}` : (dst.includes('ptr') ? 'nop' : regOf(size));
      if (src === 'nop') return { insn: `${op} ${dst}, ${rng.below(size * 8)}`, undef: OF | SF | AF | PF };
      return { insn: `${op} ${dst}, ${src}`, undef: OF | SF | AF | PF };
    }
    case 8: { // bit scans
      if (size === 1) return { insn: 'nop', undef: 0n };
      const op = pick(['bsf', 'bsr', 'tzcnt', 'lzcnt', 'popcnt']);
      const [a, b] = [regOf(size), regOf(size)];
      const undef = op === 'popcnt' ? 0n : op === 'bsf' || op === 'bsr' ? CF | OF | SF | AF | PF : OF | SF | AF | PF;
      return { insn: `${op} ${a}, ${rng.below(3) === 0 ? mem(size) : b}`, undef };
    }
    case 9: return { insn: `set${pick(CC)} ${rng.below(3) === 0 ? mem(1) : regOf(1)}`, undef: 0n };
    case 10: {
      if (size === 1) return { insn: 'nop', undef: 0n };
      return { insn: `cmov${pick(CC)} ${regOf(size)}, ${rng.below(3) === 0 ? mem(size) : regOf(size)}`, undef: 0n };
    }
    case 11: { // moves and extensions
      const f = rng.below(6);
      if (f === 0) { const [a, b] = two(size); return { insn: `mov ${a}, ${b}`, undef: 0n }; }
      if (f === 1) return { insn: `mov ${regOf(size)}, ${mem(size)}`, undef: 0n };
      if (f === 2) return { insn: `mov ${mem(size)}, ${size === 8 ? imm(4) : imm(size)}`, undef: 0n };
      if (f === 3) return { insn: `${pick(['movzx', 'movsx'])} ${regOf(pick([4, 8]))}, ${rng.below(2) ? regOf(1, true) : mem(pick([1, 2]))}`, undef: 0n };
      if (f === 4) return { insn: `movsxd ${pick(R64)}, ${rng.below(2) ? pick(R32) : mem(4)}`, undef: 0n };
      return { insn: pick(['cbw', 'cwde', 'cdqe', 'cwd', 'cdq', 'cqo', 'lahf', 'sahf', 'cmc', 'clc', 'stc']), undef: 0n };
    }
    case 12: { // exchange family
      const f = rng.below(3);
      const [a, b] = two(size);
      if (f === 0) return { insn: `xchg ${a}, ${rng.below(2) ? b : mem(size)}`, undef: 0n };
      if (f === 1) return { insn: `xadd ${rng.below(2) ? mem(size) : b}, ${a}`, undef: 0n };
      return { insn: `cmpxchg ${rng.below(2) ? mem(size) : b}, ${a}`, undef: 0n };
    }
    case 13: return { insn: `bswap ${pick(rng.below(2) ? R32 : R64)}`, undef: 0n };
    case 14: return { insn: `lea ${regOf(pick([4, 8]))}, [${pick(R64)} + ${pick(R64)} * ${pick([1, 2, 4, 8])} + ${imm(4)}]`, undef: 0n };
    case 15: { // division with operands that cannot fault
      const op = pick(['div', 'idiv']);
      let r = regOf(size, true);
      while (/^(r?dx|edx|dl|al|ax|eax|rax)$/.test(r)) r = regOf(size, true); // not a dividend register
      return { insn: `${op} ${r}`, undef: ALL & ~DF };
    }
    case 16: { // string instructions over the scratch page, both directions
      const op = pick(['movs', 'stos', 'lods', 'cmps', 'scas']);
      const sfx = { 1: 'b', 2: 'w', 4: 'd', 8: 'q' }[size];
      const rep = op === 'lods' ? '' : pick(['', 'rep ', op === 'cmps' || op === 'scas' ? 'repne ' : 'rep ']);
      return { insn: `${rep}${op}${sfx}`, undef: 0n };
    }
    case 17: return { insn: `${pick(['push', 'pop'])} ${pick(R64)}`, undef: 0n };
    case 18: return { insn: `${pick(['pushfq', 'popfq'])}`, undef: 0n };
    default: { // adc/sbb chains through CF
      const [a, b] = [regOf(8), regOf(8)];
      return { insn: `${pick(['adc', 'sbb'])} ${a}, ${b}`, undef: 0n };
    }
  }
}

export function randomState(rng: Rng, insn: string): { regs: bigint[]; flags: bigint } {
  const r64 = () => (BigInt(rng.u32()) << 32n) | BigInt(rng.u32());
  const small = () => BigInt(rng.below(4) === 0 ? rng.below(70) : rng.u32());
  const regs = GPR_NAMES.map(() => (rng.below(3) === 0 ? small() : r64()));
  regs[4] = BigInt(RSP0);                 // rsp: the private stack
  regs[15] = DATA_VA + 0x800n;                  // r15: the memory operand base
  if (/movs|stos|lods|cmps|scas/.test(insn)) {
    regs[6] = DATA_VA + 0x400n + BigInt(rng.below(256)) * 8n; // rsi
    regs[7] = DATA_VA + 0x1000n + BigInt(rng.below(256)) * 8n; // rdi
    regs[1] = BigInt(rng.below(24));                    // rcx
  }
  if (/^i?div/.test(insn)) { // no #DE: divisor odd and > 1, RDX 0, a small RAX
    for (const k of [0, 1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]) regs[k] = (regs[k] & 0x7fff_ffff_ffff_ff00n) | 3n;
    regs[2] = 0n;
    regs[0] &= 0x7fn;
  }
  if (/^popfq/.test(insn)) { /* the popped value is random: keep only writable user flags */ }
  let flags = 0x202n | BigInt(rng.u32() & 0x8d5);
  if (rng.below(4) === 0) flags |= DF;
  return { regs, flags };
}

export interface TextCase { insn: string; gpr: bigint[]; rflags: bigint; undef: number }

/**
 * n cases: single instructions, and (a fifth of them) sequences of 2..5 instructions whose
 * flags are all defined, so flags computed lazily by one are consumed by the next.
 */
export function textCases(rng: Rng, n: number): TextCase[] {
  const out: TextCase[] = [];
  for (let i = 0; i < n; i++) {
    // The state first: shift counts in CL decide which flags are undefined.
    const st = randomState(rng, '');
    let g = gen(rng, st.regs);
    if (rng.below(5) === 0) {
      const seq: string[] = [];
      for (let guard = 0; seq.length < 2 + rng.below(4) && guard < 100; guard++) {
        const h = gen(rng, st.regs);
        if (h.undef === 0n && !/movs|stos|lods|cmps|scas|div|push|pop|shl|shr|sar|ro[lr]|rc[lr]|sh[lr]d/.test(h.insn)) seq.push(h.insn);
      }
      g = { insn: seq.join('\n  '), undef: 0n };
    }
    const fixed = randomState(new Rng(rng.u32()), g.insn);
    if (/movs|stos|lods|cmps|scas/.test(g.insn)) for (const k of [1, 6, 7]) st.regs[k] = fixed.regs[k];
    if (/^i?div/.test(g.insn)) for (let k = 0; k < 16; k++) if (k !== 4 && k !== 15) st.regs[k] = fixed.regs[k];
    out.push({ insn: g.insn, gpr: st.regs, rflags: st.flags, undef: Number(g.undef) });
  }
  return out;
}
