// Instruction forms, part 1: integer arithmetic, logic, shifts, multiply/divide, bit
// operations and data movement. Each form emits its own setup, then the instruction, with
// the SDM's flag effect (written flags, and which of them it leaves undefined).

import { ARITH, CF, PF, AF, ZF, SF, OF } from '../layout.js';
import { reg, type Size, type Reg, type Mem, type Encoding } from './encode.js';
import { Gen, SIZES, VSIZES, type FlagEffect } from './gen.js';

export interface Form { name: string; weight: number; gen: (g: Gen) => void; needs?: keyof Gen['features'] }

const bits = (s: Size) => s * 8;
const sz = (s: Size) => `/${bits(s)}`;
const imm = (g: Gen, bytes: 1 | 2 | 4 | 8) => ({ value: g.u64(), bytes });
const iz = (s: Size): 2 | 4 => (s === 2 ? 2 : 4);
const lock = (g: Gen, rm: Reg | Mem) => (rm.kind === 'mem' && g.chance(0.25) ? [0xf0] : []);
const rmName = (rm: Reg | Mem) => (rm.kind === 'mem' ? 'm' : 'r');

/** Condition code → flags it reads (cc 0 O, 2 B, 4 E, 6 BE, 8 S, A P, C L, E LE; odd = negation). */
export const CC_READS = [OF, CF, ZF, CF | ZF, SF, PF, SF | OF, ZF | SF | OF].flatMap((f) => [f, f]);
export const CC = ['o', 'no', 'b', 'ae', 'e', 'ne', 'be', 'a', 's', 'ns', 'p', 'np', 'l', 'ge', 'le', 'g'];

const ALU = ['add', 'or', 'adc', 'sbb', 'and', 'sub', 'xor', 'cmp'];
function aluFx(op: number): FlagEffect {
  return { reads: op === 2 || op === 3 ? CF : 0, writes: ARITH, undef: op === 1 || op === 4 || op === 6 ? AF : 0 };
}

function alu(g: Gen): void {
  const op = g.below(8), name = ALU[op], fx = aluFx(op), writes = op !== 7;
  const size = g.pick(SIZES), b = size === 1 ? 0 : 1;
  switch (g.below(5)) {
    case 0: { // Eb,Gb / Ev,Gv
      const rm = g.rm(size, [], writes);
      g.emit({ prefixes: writes ? lock(g, rm) : [], opcode: [op * 8 + b], size, reg: g.anyReg(size), rm }, `${name} E,G${rmName(rm)}${sz(size)}`, fx);
      break;
    }
    case 1: { // Gb,Eb / Gv,Ev
      const rm = g.rm(size, [], false);
      g.emit({ opcode: [op * 8 + 2 + b], size, reg: writes ? g.freeReg(size) : g.anyReg(size), rm }, `${name} G,E${rmName(rm)}${sz(size)}`, fx);
      break;
    }
    case 2: // AL,Ib / rAX,Iz
      g.emit({ opcode: [op * 8 + 4 + b], size, imm: imm(g, size === 1 ? 1 : iz(size)) }, `${name} A,I${sz(size)}`, fx);
      break;
    default: { // 80 /op Ib, 81 /op Iz, 83 /op Ib
      const rm = g.rm(size, [], writes);
      const o = size === 1 ? 0x80 : g.chance(0.5) ? 0x81 : 0x83;
      const ib = o !== 0x81;
      g.emit({ prefixes: writes ? lock(g, rm) : [], opcode: [o], size, reg: op, rm, imm: imm(g, ib ? 1 : iz(size)) }, `${name} ${o.toString(16)} E,I${rmName(rm)}${sz(size)}`, fx);
    }
  }
}

function test(g: Gen): void {
  const size = g.pick(SIZES), b = size === 1 ? 0 : 1, fx = { writes: ARITH, undef: AF };
  const k = g.below(3);
  if (k === 0) { const rm = g.rm(size, [], false); g.emit({ opcode: [0x84 + b], size, reg: g.anyReg(size), rm }, `test E,G${rmName(rm)}${sz(size)}`, fx); }
  else if (k === 1) g.emit({ opcode: [0xa8 + b], size, imm: imm(g, size === 1 ? 1 : iz(size)) }, `test A,I${sz(size)}`, fx);
  else { const rm = g.rm(size, [], false); g.emit({ opcode: [0xf6 + b], size, reg: 0, rm, imm: imm(g, size === 1 ? 1 : iz(size)) }, `test E,I${rmName(rm)}${sz(size)}`, fx); }
}

function unary(g: Gen): void {
  const size = g.pick(SIZES), b = size === 1 ? 0 : 1;
  const rm = g.rm(size);
  const k = g.pick(['inc', 'dec', 'not', 'neg']);
  const pre = lock(g, rm);
  if (k === 'inc' || k === 'dec') g.emit({ prefixes: pre, opcode: [0xfe + b], size, reg: k === 'inc' ? 0 : 1, rm }, `${k}${sz(size)}`, { writes: ARITH & ~CF });
  else g.emit({ prefixes: pre, opcode: [0xf6 + b], size, reg: k === 'not' ? 2 : 3, rm }, `${k}${sz(size)}`, { writes: k === 'neg' ? ARITH : 0 });
}

const MULFX: FlagEffect = { writes: ARITH, undef: SF | ZF | AF | PF };

function mul(g: Gen): void {
  const size = g.pick(SIZES), b = size === 1 ? 0 : 1;
  const k = g.below(5);
  if (k <= 1) { // F6/F7 /4 MUL, /5 IMUL: rDX:rAX ← rAX × r/m
    const rm = g.rm(size, [], false);
    g.emit({ opcode: [0xf6 + b], size, reg: 4 + k, rm }, `${k ? 'imul' : 'mul'} E${sz(size)}`, MULFX);
    return;
  }
  const vs = g.pick(VSIZES), rm = g.rm(vs, [], false), r = g.freeReg(vs);
  if (k === 2) g.emit({ opcode: [0x0f, 0xaf], size: vs, reg: r, rm }, `imul G,E${sz(vs)}`, MULFX);
  else if (k === 3) g.emit({ opcode: [0x69], size: vs, reg: r, rm, imm: imm(g, iz(vs)) }, `imul G,E,Iz${sz(vs)}`, MULFX);
  else g.emit({ opcode: [0x6b], size: vs, reg: r, rm, imm: imm(g, 1) }, `imul G,E,Ib${sz(vs)}`, MULFX);
}

/** DIV/IDIV; usually with the dividend's high half set up so the quotient fits (else #DE). */
function div(g: Gen): void {
  const size = g.pick(SIZES), b = size === 1 ? 0 : 1, signed = g.chance(0.5);
  const rm = g.rm(size, [0, 2]); // a writable divisor: the setup below sets one of its bits
  if (g.chance(0.85)) {
    if (signed) g.emit({ opcode: [size === 1 ? 0x98 : 0x99], size: size === 1 ? 2 : size }, 'setup'); // CBW / CWD / CDQ / CQO
    else if (size === 1) g.emit({ opcode: [0x0f, 0xb6], size: 4, reg: reg(0, 4), rm: reg(0, 1) }, 'setup'); // movzx eax, al
    else g.emit({ opcode: [0x31], size: 4, reg: reg(2, 4), rm: reg(2, 4) }, 'setup', { writes: ARITH }); // xor edx, edx
    // divisor |= 1 << k (non-zero)
    const high = rm.kind === 'reg' && !!rm.high;
    const wide: Reg | Mem = rm.kind === 'reg' ? reg(rm.n, size === 1 ? 4 : size) : rm;
    const bit = (high ? 8 : 0) + g.below(size === 1 ? 7 : bits(size) - 1);
    g.emit({ opcode: [0x0f, 0xba], size: size === 1 ? (rm.kind === 'reg' ? 4 : 2) : size, reg: 5, rm: wide, imm: { value: BigInt(bit), bytes: 1 } }, 'setup', { writes: ARITH & ~ZF, undef: OF | SF | AF | PF });
  }
  g.emit({ opcode: [0xf6 + b], size, reg: signed ? 7 : 6, rm }, `${signed ? 'idiv' : 'div'} E${rmName(rm)}${sz(size)}`, { writes: ARITH, undef: ARITH });
}

const SHIFT = ['rol', 'ror', 'rcl', 'rcr', 'shl', 'shr', 'sal', 'sar'];
/** A shift count with the edges over-represented: 0, 1, width−1, width, width+1, 31, 32, 63, 64. */
function count(g: Gen, size: Size): number {
  const w = bits(size);
  return g.pick([0, 1, 1, w - 1, w, w + 1, 31, 32, 33, 63, 64, g.below(256), g.below(256), g.below(w)]) & 0xff;
}

function shiftFx(op: number, size: Size, c: number): FlagEffect {
  const mc = c & (size === 8 ? 63 : 31);
  if (mc === 0) return {};
  const of = mc !== 1 ? OF : 0;
  if (op < 2) return { writes: CF | OF, undef: of };
  if (op < 4) return { reads: CF, writes: CF | OF, undef: of };
  const cfUndef = op !== 7 && size <= 2 && mc >= bits(size) ? CF : 0;
  return { writes: ARITH, undef: AF | of | cfUndef };
}

function shift(g: Gen): void {
  const size = g.pick(SIZES), b = size === 1 ? 0 : 1, op = g.below(8);
  const form = g.below(3);
  const rm = g.rm(size, [1]);
  let c = 1;
  if (form === 0) {
    c = count(g, size);
    g.emit({ opcode: [0xc0 + b], size, reg: op, rm, imm: { value: BigInt(c), bytes: 1 } }, `${SHIFT[op]} E,Ib${sz(size)}`, shiftFx(op, size, c));
  } else if (form === 1) {
    g.emit({ opcode: [0xd0 + b], size, reg: op, rm }, `${SHIFT[op]} E,1${sz(size)}`, shiftFx(op, size, 1));
  } else {
    c = count(g, size);
    g.emit({ opcode: [0xb1], size: 1, opreg: reg(1, 1), imm: { value: BigInt(c), bytes: 1 } }, 'setup'); // mov cl, count
    g.emit({ opcode: [0xd2 + b], size, reg: op, rm }, `${SHIFT[op]} E,CL${sz(size)}`, shiftFx(op, size, c));
  }
}

function shiftDouble(g: Gen): void {
  const size = g.pick(VSIZES), right = g.chance(0.5), useCl = g.chance(0.5);
  const rm = g.rm(size, [1]), src = g.anyReg(size, [1]);
  // A count above the operand size leaves result and flags undefined: 16-bit counts stay ≤ 16.
  let c = count(g, size);
  if (size === 2 && (c & 31) > 16) c = g.below(17);
  const mc = c & (size === 8 ? 63 : 31);
  const fx: FlagEffect = mc === 0 ? {} : { writes: ARITH, undef: AF | (mc !== 1 ? OF : 0) };
  const name = `${right ? 'shrd' : 'shld'} E,G,${useCl ? 'CL' : 'Ib'}${sz(size)}`;
  if (useCl) {
    g.emit({ opcode: [0xb1], size: 1, opreg: reg(1, 1), imm: { value: BigInt(c), bytes: 1 } }, 'setup');
    g.emit({ opcode: [0x0f, right ? 0xad : 0xa5], size, reg: src, rm }, name, fx);
  } else {
    g.emit({ opcode: [0x0f, right ? 0xac : 0xa4], size, reg: src, rm, imm: { value: BigInt(c), bytes: 1 } }, name, fx);
  }
}

const BT = ['bt', 'bts', 'btr', 'btc'];
const BTFX: FlagEffect = { writes: ARITH & ~ZF, undef: OF | SF | AF | PF };

function bitTest(g: Gen): void {
  const size = g.pick(VSIZES), op = g.below(4);
  if (g.chance(0.5)) { // 0F BA /4-7 Ev,Ib
    const rm = g.rm(size, [], op !== 0);
    g.emit({ prefixes: op ? lock(g, rm) : [], opcode: [0x0f, 0xba], size, reg: 4 + op, rm, imm: { value: BigInt(g.below(256)), bytes: 1 } }, `${BT[op]} E,Ib${rmName(rm)}${sz(size)}`, BTFX);
    return;
  }
  const opc = [0xa3, 0xab, 0xb3, 0xbb][op];
  if (g.chance(0.5)) { // register destination: the offset wraps modulo the width
    g.emit({ opcode: [0x0f, opc], size, reg: g.anyReg(size), rm: op ? g.freeReg(size) : g.anyReg(size) }, `${BT[op]} E,Gr${sz(size)}`, BTFX);
    return;
  }
  // Memory destination: the signed register offset reaches outside the operand (±256 bytes).
  const off = g.freeReg(size);
  const m = g.mem(size, [off.n]);
  g.setReg(off.n, BigInt(g.below(4096) - 2048));
  g.emit({ prefixes: op ? lock(g, m) : [], opcode: [0x0f, opc], size, reg: off, rm: m }, `${BT[op]} E,Gm${sz(size)}`, BTFX);
}

function bitScan(g: Gen): void {
  const size = g.pick(VSIZES);
  const k = g.pick(['bsf', 'bsr', 'tzcnt', 'lzcnt', 'popcnt'] as const);
  if ((k === 'tzcnt' && !g.features.bmi1) || (k === 'lzcnt' && !g.features.lzcnt) || (k === 'popcnt' && !g.features.popcnt)) return;
  if (k === 'bsf' || k === 'bsr') {
    // BSF/BSR of 0 leave the destination undefined (Intel): set a random bit first (BTS).
    const rm = g.rm(size);
    g.emit({ opcode: [0x0f, 0xba], size, reg: 5, rm, imm: { value: BigInt(g.below(bits(size))), bytes: 1 } }, 'setup', BTFX);
    g.emit({ opcode: [0x0f, k === 'bsf' ? 0xbc : 0xbd], size, reg: g.freeReg(size), rm }, `${k}${sz(size)}`, { writes: ARITH, undef: CF | OF | SF | AF | PF });
  } else {
    const rm = g.rm(size, [], false);
    const op = k === 'popcnt' ? 0xb8 : k === 'tzcnt' ? 0xbc : 0xbd;
    g.emit({ lastPrefixes: [0xf3], opcode: [0x0f, op], size, reg: g.freeReg(size), rm }, `${k}${sz(size)}`, { writes: ARITH, undef: k === 'popcnt' ? 0 : OF | SF | AF | PF });
  }
}

function condMove(g: Gen): void {
  const cc = g.below(16);
  if (g.chance(0.4)) {
    const rm = g.rm(1);
    g.emit({ opcode: [0x0f, 0x90 + cc], size: 1, reg: 0, rm }, `set${CC[cc]}`, { reads: CC_READS[cc] });
  } else {
    const size = g.pick(VSIZES), rm = g.rm(size, [], false);
    g.emit({ opcode: [0x0f, 0x40 + cc], size, reg: g.freeReg(size), rm }, `cmov${CC[cc]}${sz(size)}`, { reads: CC_READS[cc] });
  }
}

function extend(g: Gen): void {
  switch (g.below(4)) {
    case 0: case 1: {
      const sx = g.chance(0.5), word = g.chance(0.5), size = g.pick(word ? [4, 8] as const : VSIZES);
      const rm = g.rm(word ? 2 : 1, [], false);
      g.emit({ opcode: [0x0f, (sx ? 0xbe : 0xb6) + (word ? 1 : 0)], size, reg: g.freeReg(size), rm }, `${sx ? 'movsx' : 'movzx'} ${word ? 'w' : 'b'}${sz(size)}`);
      break;
    }
    case 2: { // MOVSXD (REX.W), or 63 without REX.W: a 32-bit move
      const size = g.pick([4, 8] as const), rm = g.rm(4, [], false);
      g.emit({ opcode: [0x63], size, reg: g.freeReg(size), rm }, `movsxd${sz(size)}`);
      break;
    }
    default: {
      const size = g.pick(VSIZES), wide = g.chance(0.5);
      g.emit({ opcode: [wide ? 0x99 : 0x98], size }, `${wide ? 'cwd/cdq/cqo' : 'cbw/cwde/cdqe'}${sz(size)}`);
    }
  }
}

function mov(g: Gen): void {
  const size = g.pick(SIZES), b = size === 1 ? 0 : 1;
  switch (g.below(7)) {
    case 0: { const rm = g.rm(size); g.emit({ opcode: [0x88 + b], size, reg: g.anyReg(size), rm }, `mov E,G${rmName(rm)}${sz(size)}`); break; }
    case 1: { const rm = g.rm(size, [], false); g.emit({ opcode: [0x8a + b], size, reg: g.freeReg(size), rm }, `mov G,E${rmName(rm)}${sz(size)}`); break; }
    case 2: { const rm = g.rm(size); g.emit({ opcode: [0xc6 + b], size, reg: 0, rm, imm: imm(g, size === 1 ? 1 : iz(size)) }, `mov E,I${rmName(rm)}${sz(size)}`); break; }
    case 3: g.emit({ opcode: [size === 1 ? 0xb0 : 0xb8], size, opreg: g.freeReg(size), imm: imm(g, size === 8 ? 8 : size === 1 ? 1 : iz(size)) }, `mov r,imm${sz(size)}`); break;
    case 4: { // A0–A3 moffs: an 8-byte absolute address (4 with 67)
      const a32 = g.chance(0.3), store = g.chance(0.5);
      const enc: Encoding = { prefixes: a32 ? [0x67] : [], opcode: [(store ? 0xa2 : 0xa0) + b], size, imm: { value: BigInt(g.scratchTarget(size)), bytes: a32 ? 4 : 8 } };
      g.emit(enc, `mov ${store ? 'moffs,A' : 'A,moffs'}${a32 ? '/a32' : ''}${sz(size)}`);
      break;
    }
    case 5: { // MOV r/m, Sreg (8C): ES CS SS DS FS GS; a register destination is zero-extended
      const rm = g.chance(0.3) ? g.mem(2) : g.freeReg(g.pick(VSIZES));
      g.emit({ opcode: [0x8c], size: rm.size, reg: g.below(6), rm }, `mov E,Sreg${rmName(rm)}${sz(rm.size)}`);
      break;
    }
    default: { // LEA: the address is computed, never accessed; random registers and 67 wrap it
      const vs = g.pick(VSIZES), r = g.freeReg(vs);
      const m: Mem = g.chance(0.5) ? g.mem(vs) : { kind: 'mem', size: vs, base: g.below(16), index: g.chance(0.5) ? g.pick([0, 1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]) : undefined, scale: g.pick([1, 2, 4, 8] as const), disp: g.below(0x10000) - 0x8000, dispBytes: 4, addr32: g.chance(0.3) };
      g.emit({ opcode: [0x8d], size: vs, reg: r, rm: m }, `lea${m.addr32 ? '/a32' : ''}${sz(vs)}`);
    }
  }
}

function exchange(g: Gen): void {
  const size = g.pick(SIZES), b = size === 1 ? 0 : 1;
  switch (g.below(5)) {
    case 0: { const rm = g.rm(size); g.emit({ prefixes: lock(g, rm), opcode: [0x86 + b], size, reg: g.freeReg(size), rm }, `xchg E,G${rmName(rm)}${sz(size)}`); break; }
    case 1: { // 90+r with rAX (41 90 is XCHG r8d,eax, not NOP)
      const vs = g.pick(VSIZES), r = g.freeReg(vs, [0]);
      g.emit({ opcode: [0x90], size: vs, opreg: r }, `xchg rAX,r${sz(vs)}`);
      break;
    }
    case 2: { // CMPXCHG: sometimes make the accumulator equal to the destination first
      const rm = g.rm(size, [0]);
      if (g.chance(0.4)) g.emit({ opcode: [0x8a + b], size, reg: reg(0, size), rm }, 'setup');
      // Intel writes a failed CMPXCHG's destination back (a 32-bit register is zero-extended), AMD
      // leaves it: on AMD hosts clear its upper half first, so both behaviours agree.
      if (g.features.amd && size === 4 && rm.kind === 'reg') g.emit({ opcode: [0x89], size: 4, reg: rm, rm }, 'setup');
      g.emit({ prefixes: lock(g, rm), opcode: [0x0f, 0xb0 + b], size, reg: g.anyReg(size), rm }, `cmpxchg ${rmName(rm)}${sz(size)}`, { writes: ARITH });
      break;
    }
    case 3: { const rm = g.rm(size); g.emit({ prefixes: lock(g, rm), opcode: [0x0f, 0xc0 + b], size, reg: g.freeReg(size), rm }, `xadd ${rmName(rm)}${sz(size)}`, { writes: ARITH }); break; }
    default: { const vs = g.pick([4, 8] as const); g.emit({ opcode: [0x0f, 0xc8], size: vs, opreg: g.freeReg(vs) }, `bswap${sz(vs)}`); }
  }
}

/** CMPXCHG8B / CMPXCHG16B (16-byte aligned; misaligned is a terminal #GP case elsewhere). */
function cmpxchgWide(g: Gen): void {
  const wide = g.chance(0.5), n = wide ? 16 : 8;
  const target = (g.scratchTarget(n, 2 * n) & ~(wide ? 15 : 0));
  const m = g.mem(8, [0, 1, 2, 3], target);
  if (g.chance(0.5)) { // load the current value into rDX:rAX so the exchange happens
    g.emit({ opcode: [0x8b], size: wide ? 8 : 4, reg: reg(0, 8), rm: { kind: 'mem', size: 8, scale: 1, disp: 0, dispBytes: 4, rip: true, target } }, 'setup');
    g.emit({ opcode: [0x8b], size: wide ? 8 : 4, reg: reg(2, 8), rm: { kind: 'mem', size: 8, scale: 1, disp: 0, dispBytes: 4, rip: true, target: target + n / 2 } }, 'setup');
  }
  g.emit({ prefixes: g.chance(0.3) ? [0xf0] : [], opcode: [0x0f, 0xc7], size: 4, rexW: wide, reg: 1, rm: m }, wide ? 'cmpxchg16b' : 'cmpxchg8b', { writes: ZF });
}

/**
 * MOV ES/SS/DS, r/m16 (8E) with selectors of Linux's GDT: null, user data 0x2B (RPL 0–3),
 * user code 0x23/0x33 (readable: fine for DS/ES, #GP for SS), kernel 0x10/0x18 (DPL 0: #GP),
 * the TSS 0x40, past the limit 0x80, an LDT selector (#GP).
 */
function movSreg(g: Gen): void {
  const sreg = g.pick([0, 0, 3, 3, 2]);
  // Mostly loads that succeed (a #GP ends the case): 0x2B anywhere, null and code for DS/ES.
  const sel = g.chance(0.8) ? (sreg === 2 ? 0x2b : g.pick([0x2b, 0x28, 0x2a, 0, 0x33, 0x23]))
    : g.pick([0x28, 0, 0x33, 0x10, 0x18, 0x1b, 0x40, 0x80, 0x2c, 0x08]);
  let rm: Reg | Mem;
  if (g.chance(0.3)) {
    rm = g.mem(2);
    g.emit({ opcode: [0xc7], size: 2, reg: 0, rm, imm: { value: BigInt(sel), bytes: 2 } }, 'setup');
  } else {
    rm = g.freeReg(g.pick([2, 4] as const));
    const high = BigInt(g.rng.u32()) << 16n; // bits above 15 are ignored
    g.setReg(rm.n, high | BigInt(sel));
  }
  g.emit({ opcode: [0x8e], size: rm.size === 2 && rm.kind === 'reg' ? 2 : 4, reg: sreg, rm: rm.kind === 'reg' ? reg(rm.n, 4) : rm }, `mov Sreg,E${rmName(rm)} ${['es', '', 'ss', 'ds'][sreg]}`);
}

export const ALU_FORMS: Form[] = [
  { name: 'alu', weight: 16, gen: alu },
  { name: 'test', weight: 3, gen: test },
  { name: 'unary', weight: 4, gen: unary },
  { name: 'mul', weight: 4, gen: mul },
  { name: 'div', weight: 3, gen: div },
  { name: 'shift', weight: 10, gen: shift },
  { name: 'shiftDouble', weight: 4, gen: shiftDouble },
  { name: 'bitTest', weight: 4, gen: bitTest },
  { name: 'bitScan', weight: 4, gen: bitScan },
  { name: 'condMove', weight: 5, gen: condMove },
  { name: 'extend', weight: 4, gen: extend },
  { name: 'mov', weight: 8, gen: mov },
  { name: 'exchange', weight: 5, gen: exchange },
  { name: 'cmpxchgWide', weight: 1, gen: cmpxchgWide },
  { name: 'movSreg', weight: 1, gen: movSreg },
];
