// A small table-free x86-64 encoder for the random instruction generator: legacy
// prefixes, REX, opcode, ModRM/SIB/displacement and immediate, from a description of the
// operands. It only encodes; which combinations are legal is the forms' business.
//
//   [legacy prefixes] [REX 0100WRXB] opcode… [ModRM mod|reg|rm] [SIB ss|index|base] [disp] [imm]

export type Size = 1 | 2 | 4 | 8;

/** A register operand. Byte registers: n 0–15 = AL…R15B (4–7 = SPL…DIL, need a REX);
 * `high` with n 0–3 = AH CH DH BH (encoded 4–7, no REX allowed). */
export interface Reg { kind: 'reg'; n: number; size: Size; high?: boolean }

/** A memory operand. `rip`: RIP-relative to the absolute `target`; `base`/`index` are GPR
 * numbers; neither → [disp32] through a SIB without base and index. */
export interface Mem {
  kind: 'mem';
  size: Size;
  base?: number;
  index?: number;
  scale: 1 | 2 | 4 | 8;
  disp: number;
  /** Displacement width to use (0 only when legal); chosen by the generator for coverage. */
  dispBytes: 0 | 1 | 4;
  /** Encode with a SIB byte even when not needed (index 100 = none). */
  forceSib?: boolean;
  rip?: boolean;
  target?: number;
  /** 67 prefix: 32-bit address size. */
  addr32?: boolean;
  /** Segment prefix byte (2E 36 3E 26 64 65), if any. */
  seg?: number;
  /** A second segment prefix after it (a null 2E/36/3E/26 after GS must not cancel GS). */
  seg2?: number;
}

export type Operand = Reg | Mem;

export interface Encoding {
  /** Legacy prefixes, in order, before the automatic 66/67/segment ones. */
  prefixes?: number[];
  /** Prefixes placed after the automatic ones (e.g. a mandatory F3 just before REX). */
  lastPrefixes?: number[];
  opcode: number[];
  /** Operand size: 2 adds 66, 8 adds REX.W unless `defaultSize64`. */
  size: Size;
  /** Default-64 instructions (push, pop, near branches): no REX.W for size 8. */
  defaultSize64?: boolean;
  /** ModRM.reg: an opcode extension (/digit) or a register. */
  reg?: number | Reg;
  rm?: Operand;
  /** Register encoded in the low 3 opcode bits (50+r, B8+r, 0F C8+r). */
  opreg?: Reg;
  imm?: { value: bigint; bytes: 1 | 2 | 4 | 8 };
  /** Emit a REX (0x40 at least) even when nothing needs one. */
  rex?: boolean;
  /** Extra REX bits forced on (e.g. REX.W for CMPXCHG16B whatever `size` says). */
  rexW?: boolean;
  /** Skip the automatic 66 (when the caller placed it among `prefixes`). */
  no66?: boolean;
}

const needsRex = (r: Reg) => r.size === 1 && !r.high && r.n >= 4 && r.n <= 7;
const low3 = (r: Reg) => (r.high ? r.n + 4 : r.n & 7);

function le(value: bigint, bytes: number): number[] {
  const out: number[] = [];
  let v = BigInt.asUintN(bytes * 8, value);
  for (let i = 0; i < bytes; i++) { out.push(Number(v & 0xffn)); v >>= 8n; }
  return out;
}

/** Encodes one instruction located at absolute address `at` (used for RIP-relative operands). */
export function encode(e: Encoding, at: number): number[] {
  const regs: Reg[] = [];
  if (typeof e.reg === 'object') regs.push(e.reg);
  if (e.rm?.kind === 'reg') regs.push(e.rm);
  if (e.opreg) regs.push(e.opreg);
  const mem = e.rm?.kind === 'mem' ? e.rm : undefined;

  let rex = 0;
  if ((e.size === 8 && !e.defaultSize64) || e.rexW) rex |= 8;
  if (typeof e.reg === 'object' && e.reg.n >= 8) rex |= 4;
  if (mem?.index !== undefined && mem.index >= 8) rex |= 2;
  if (mem?.base !== undefined && mem.base >= 8 && !mem.rip) rex |= 1;
  if (e.rm?.kind === 'reg' && e.rm.n >= 8) rex |= 1;
  if (e.opreg && e.opreg.n >= 8) rex |= 1;
  const wantRex = rex !== 0 || e.rex || regs.some(needsRex);
  if (wantRex && regs.some((r) => r.high)) throw new Error('AH/CH/DH/BH cannot be encoded with a REX prefix');

  const out: number[] = [...(e.prefixes ?? [])];
  if (mem?.seg !== undefined) out.push(mem.seg);
  if (mem?.seg2 !== undefined) out.push(mem.seg2);
  if (e.size === 2 && !e.no66) out.push(0x66);
  if (mem?.addr32) out.push(0x67);
  out.push(...(e.lastPrefixes ?? []));
  if (wantRex) out.push(0x40 | rex);
  const op = [...e.opcode];
  if (e.opreg) op[op.length - 1] |= low3(e.opreg);
  out.push(...op);

  let ripFix = -1;
  if (e.rm) {
    const regField = typeof e.reg === 'object' ? low3(e.reg) : (e.reg ?? 0);
    if (e.rm.kind === 'reg') out.push(0xc0 | (regField << 3) | low3(e.rm));
    else ripFix = modrmMem(out, regField, e.rm);
  }
  const immAt = out.length;
  if (e.imm) out.push(...le(e.imm.value, e.imm.bytes));
  if (ripFix >= 0) {
    const disp = (mem!.target! - (at + out.length)) | 0;
    out.splice(ripFix, 4, ...le(BigInt(disp), 4));
    void immAt;
  }
  if (out.length > 15) throw new Error(`encoded ${out.length} bytes (> 15)`);
  return out;
}

/** Appends ModRM (+SIB, +disp) for a memory operand; returns the index of a RIP disp32 to patch, or -1. */
function modrmMem(out: number[], regField: number, m: Mem): number {
  if (m.rip) {
    out.push((regField << 3) | 5);
    out.push(0, 0, 0, 0);
    return out.length - 4;
  }
  const disp = BigInt(m.disp);
  if (m.base === undefined) {
    // mod=00, SIB base=101: no base, disp32; index 100 (no REX.X) = none.
    const idx = m.index === undefined ? 4 : m.index & 7;
    const ss = m.index === undefined ? 0 : Math.log2(m.scale);
    out.push((regField << 3) | 4, (ss << 6) | (idx << 3) | 5, ...le(disp, 4));
    return -1;
  }
  let dispBytes = m.dispBytes;
  // [rbp]/[r13] with mod=00 means RIP-relative (or no base in a SIB): needs a disp8 of 0.
  if (dispBytes === 0 && (m.base & 7) === 5) dispBytes = 1;
  const mod = dispBytes === 0 ? 0 : dispBytes === 1 ? 1 : 2;
  const sib = m.index !== undefined || (m.base & 7) === 4 || m.forceSib;
  if (sib) {
    const idx = m.index === undefined ? 4 : m.index & 7;
    const ss = m.index === undefined ? 0 : Math.log2(m.scale);
    out.push((mod << 6) | (regField << 3) | 4, (ss << 6) | (idx << 3) | (m.base & 7));
  } else {
    out.push((mod << 6) | (regField << 3) | (m.base & 7));
  }
  if (dispBytes === 1) out.push(...le(disp, 1));
  if (dispBytes === 4) out.push(...le(disp, 4));
  return -1;
}

export const reg = (n: number, size: Size, high = false): Reg => ({ kind: 'reg', n, size, high });
