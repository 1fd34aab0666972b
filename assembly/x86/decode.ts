// The decoder: legacy prefixes, REX, opcode maps (one-byte, 0F, 0F 38, 0F 3A), ModRM,
// SIB, displacement and immediates (SDM Vol. 2 §2.1-2.2). It fills an Insn record;
// exec.ts executes it. Fetches go through vmem.ts (the MMU); more than 15 bytes is #GP(0).
//
// Insn.op: one-byte opcode b → b; 0F b → 0x100|b; 0F 38 b → 0x200|b; 0F 3A b → 0x300|b.
// Insn.pfx bits: P_LOCK F0, P_REP F3, P_REPNE F2, P_OSZ 66, P_ASZ 67, P_MODRM (ModRM present).
// Operand size osz: REX.W → 8, else 66 → 2, else 4 (exec adjusts d64/f64 and byte forms).
// Memory operand: base (0..15, B_RIP, B_NONE) + index (or B_NONE) << scale + disp,
// truncated to 32 bits with 67, plus the FS/GS base for a 64/65 prefix (seg 4/5).
// RIP-relative addresses are relative to the end of the instruction (rip + len).

import { Cpu } from "../cpu";
import { X86, gp0, ud, STOP_NONE } from "./state";
import { fetchByte } from "./vmem";

export const P_LOCK: u32 = 1;
export const P_REP: u32 = 2;
export const P_REPNE: u32 = 4;
export const P_OSZ: u32 = 8;
export const P_ASZ: u32 = 16;
export const P_MODRM: u32 = 32;
export const B_RIP: u32 = 16;
export const B_NONE: u32 = 0xFF;

@unmanaged export class Insn {
  op: u32;
  len: u32;
  osz: u32;
  pfx: u32;
  rex: u32;
  modrm: u32;
  reg: u32;   // ModRM.reg + REX.R
  rm: u32;    // ModRM.rm + REX.B (register form)
  mem: u32;   // 1: ModRM names memory
  base: u32;
  index: u32;
  scale: u32;
  seg: u32;
  disp: u64;
  imm: u64;
  imm2: u64;
  fast: u32;  // fast.ts form (0: the general path)
}

// ModRM presence for the one-byte map (bit per opcode).
function hasModrm1(b: u32): bool {
  if (b < 0x40) return (b & 7) < 4;
  if (b >= 0x80 && b < 0x90) return true;
  switch (b) {
    case 0x62: case 0x63: case 0x69: case 0x6B: case 0xC0: case 0xC1: case 0xC4: case 0xC5:
    case 0xC6: case 0xC7: case 0xD0: case 0xD1: case 0xD2: case 0xD3: case 0xF6: case 0xF7:
    case 0xFE: case 0xFF: return true;
  }
  return b >= 0xD8 && b <= 0xDF;
}

function hasModrm0F(b: u32): bool {
  if (b >= 0x80 && b < 0x90) return false;
  if (b >= 0xC8 && b < 0xD0) return false;
  if (b >= 0x30 && b < 0x38) return false;
  switch (b) {
    case 0x05: case 0x06: case 0x07: case 0x08: case 0x09: case 0x0B: case 0x0E: case 0x77:
    case 0xA0: case 0xA1: case 0xA2: case 0xA8: case 0xA9: case 0xAA: return false;
  }
  return true;
}

// Immediate size in bytes; 0xFF = "Iz" (2 with 66, else 4), 0xFE = moffs, 0xFD = B8+r.
function immSize1(b: u32, reg: u32): u32 {
  if (b < 0x40) { let l = b & 7; return l == 4 ? 1 : (l == 5 ? 0xFF : 0); }
  if (b >= 0x70 && b < 0x80) return 1;
  if (b >= 0xB0 && b < 0xB8) return 1;
  if (b >= 0xB8 && b < 0xC0) return 0xFD;
  if (b >= 0xE0 && b < 0xE8) return 1;
  switch (b) {
    case 0x68: case 0x69: case 0x81: case 0xA9: case 0xC7: return 0xFF;
    case 0x6A: case 0x6B: case 0x80: case 0x82: case 0x83: case 0xA8: case 0xC0: case 0xC1:
    case 0xC6: case 0xCD: case 0xEB: return 1;
    case 0xC2: return 2;
    case 0xC8: return 3;
    case 0xE8: case 0xE9: return 4;
    case 0xA0: case 0xA1: case 0xA2: case 0xA3: return 0xFE;
    case 0xF6: return reg < 2 ? 1 : 0;
    case 0xF7: return reg < 2 ? 0xFF : 0;
  }
  return 0;
}

function immSize0F(b: u32): u32 {
  if (b >= 0x80 && b < 0x90) return 4;
  switch (b) {
    case 0x70: case 0x71: case 0x72: case 0x73: case 0xA4: case 0xAC: case 0xBA: case 0xC2:
    case 0xC4: case 0xC5: case 0xC6: return 1;
  }
  return 0;
}

@inline function next(c: Cpu, x: X86, d: Insn): u32 {
  let n = d.len;
  if (n >= 15) { gp0(x); return 0; }
  d.len = n + 1;
  return fetchByte(c, x, n);
}

function readImm(c: Cpu, x: X86, d: Insn, size: u32): u64 {
  let v: u64 = 0;
  for (let i: u32 = 0; i < size; i++) {
    v |= <u64>next(c, x, d) << (8 * <u64>i);
    if (x.stop != STOP_NONE) return 0;
  }
  return v;
}

@inline function sx(v: u64, bytes: u32): u64 {
  let s = 64 - 8 * <u64>bytes;
  return <u64>((<i64>(v << s)) >> s);
}

function modrm(c: Cpu, x: X86, d: Insn): void {
  let m = next(c, x, d);
  if (x.stop != STOP_NONE) return;
  d.pfx |= P_MODRM;
  d.modrm = m;
  let rex = d.rex;
  let mod = m >> 6, rml = m & 7;
  d.reg = ((m >> 3) & 7) | ((rex & 4) << 1);
  d.rm = rml | ((rex & 1) << 3);
  if (mod == 3) { d.mem = 0; return; }
  d.mem = 1;
  d.index = B_NONE;
  d.scale = 0;
  let dispBytes: u32 = mod == 1 ? 1 : (mod == 2 ? 4 : 0);
  if (rml == 4) {
    let sib = next(c, x, d);
    if (x.stop != STOP_NONE) return;
    d.scale = sib >> 6;
    let idx = ((sib >> 3) & 7) | ((rex & 2) << 2);
    if (idx != 4) d.index = idx;
    let bl = sib & 7;
    if (bl == 5 && mod == 0) { d.base = B_NONE; dispBytes = 4; }
    else d.base = bl | ((rex & 1) << 3);
  } else if (rml == 5 && mod == 0) {
    d.base = B_RIP;
    dispBytes = 4;
  } else {
    d.base = d.rm;
  }
  d.disp = dispBytes == 0 ? 0 : sx(readImm(c, x, d, dispBytes), dispBytes);
}

// Decodes the instruction at x.rip into d. On a fault x.stop is set.
export function decode(c: Cpu, x: X86, d: Insn): void {
  d.len = 0;
  d.fast = 0;
  d.pfx = 0;
  d.rex = 0;
  d.seg = 0;
  d.mem = 0;
  d.imm = 0;
  d.imm2 = 0;
  d.disp = 0;
  d.base = B_NONE;
  d.index = B_NONE;
  let b: u32 = 0;
  // Prefixes. A REX counts only directly before the opcode.
  while (true) {
    b = next(c, x, d);
    if (x.stop != STOP_NONE) return;
    if ((b & 0xF0) == 0x40) { d.rex = b; continue; }
    let p: u32 = 0;
    switch (b) {
      case 0xF0: p = P_LOCK; break;
      case 0xF3: d.pfx &= ~P_REPNE; p = P_REP; break;
      case 0xF2: d.pfx &= ~P_REP; p = P_REPNE; break;
      case 0x66: p = P_OSZ; break;
      case 0x67: p = P_ASZ; break;
      // ES/CS/SS/DS overrides are ignored in 64-bit mode: they do not cancel an FS/GS one.
      case 0x26: case 0x2E: case 0x36: case 0x3E: d.rex = 0; continue;
      case 0x64: d.seg = 4; d.rex = 0; continue;
      case 0x65: d.seg = 5; d.rex = 0; continue;
    }
    if (p == 0) break;
    d.pfx |= p;
    d.rex = 0;
  }
  let rex = d.rex;
  d.osz = (rex & 8) != 0 ? 8 : ((d.pfx & P_OSZ) != 0 ? 2 : 4);
  let op = b;
  let imm: u32 = 0;
  if (b == 0x0F) {
    let b2 = next(c, x, d);
    if (x.stop != STOP_NONE) return;
    if (b2 == 0x38 || b2 == 0x3A) {
      let b3 = next(c, x, d);
      if (x.stop != STOP_NONE) return;
      op = (b2 == 0x38 ? 0x200 : 0x300) | b3;
      modrm(c, x, d);
      imm = b2 == 0x3A ? 1 : 0;
    } else {
      op = 0x100 | b2;
      if (hasModrm0F(b2)) modrm(c, x, d);
      imm = immSize0F(b2);
    }
  } else {
    if (hasModrm1(b)) modrm(c, x, d);
    imm = immSize1(b, d.reg & 7);
  }
  if (x.stop != STOP_NONE) return;
  d.op = op;
  if (imm == 0) return;
  if (imm == 0xFF) {
    let n: u32 = d.osz == 2 ? 2 : 4;
    d.imm = sx(readImm(c, x, d, n), n);
  } else if (imm == 0xFE) {
    d.imm = readImm(c, x, d, (d.pfx & P_ASZ) != 0 ? 4 : 8);
  } else if (imm == 0xFD) {
    let n: u32 = d.osz;
    d.imm = readImm(c, x, d, n);
  } else if (op == 0xC8) {
    d.imm = readImm(c, x, d, 2);
    d.imm2 = readImm(c, x, d, 1);
  } else {
    d.imm = readImm(c, x, d, imm); // zero-extended: exec sign-extends where the SDM says
  }
}

// Effective linear address of d's memory operand (SDM Vol. 2 §2.2.1.6 for RIP+disp).
@inline export function effAddr(x: X86, d: Insn): u64 {
  let a = d.disp;
  let base = d.base;
  if (base == B_RIP) a += x.rip + <u64>d.len;
  else if (base != B_NONE) a += load<u64>(changetype<usize>(x) + (<usize>base << 3));
  if (d.index != B_NONE) a += load<u64>(changetype<usize>(x) + (<usize>d.index << 3)) << <u64>d.scale;
  if ((d.pfx & P_ASZ) != 0) a &= 0xFFFF_FFFF;
  if (d.seg == 4) a += x.fsBase;
  else if (d.seg == 5) a += x.gsBase;
  return a;
}

// Whether d's memory operand is a stack reference (RSP/RBP base: #SS, not #GP).
@inline export function isStackRef(d: Insn): bool {
  return d.base == 4 || d.base == 5;
}

export { ud };
