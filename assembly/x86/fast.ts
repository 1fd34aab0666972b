// Fast paths for the most frequent instruction forms (what compiled loops are made of):
// the decoder classifies an instruction once (Insn.fast) and the run loop executes these
// forms here without the general dispatch. Each must behave exactly as exec.ts does for
// the same instruction; anything unusual (16-bit operands, LOCK, non-canonical targets)
// is classified F_NONE or returns false, and exec.ts runs it.
//
//   F_ALU_RR   00-3F forms Ev,Gv / Gv,Ev with two registers, 32/64-bit
//   F_ALU_RI   81 / 83 with a register destination, 32/64-bit
//   F_ALU_RM   00-3F form Gv,Ev with a memory source (load-op), 32/64-bit
//   F_MOV_RR   89 / 8B register to register, 32/64-bit
//   F_MOV_RI   B8+r, 32/64-bit
//   F_LOAD     8B r, [mem], 32/64-bit        F_STORE  89 [mem], r, 32/64-bit
//   F_JCC      70-7F, 0F 80-8F               F_JMP    EB, E9
//   F_INCDEC   FF /0 /1 register, 32/64-bit  F_TEST   85 register, 32/64-bit
//   F_LEA      8D, 32/64-bit
//   F_PUSH     50+r (64-bit)                 F_POP    58+r (64-bit)
//   F_CALL     E8                            F_RET    C3
//   F_SHIFT    C1 /0-/7 (rotates and shifts by imm8) with a register destination, 32/64-bit
//   F_IMUL     0F AF register, register, 32/64-bit
// Insn.imm2 holds the sign-extended immediate or displacement of the form. The stack,
// shift and multiply forms call the same helpers exec.ts uses (push, peek, branch, shift,
// imul2), so only the dispatch is skipped.

import { Cpu, canonical } from "../cpu";
import { X86, getR64, setR64, STOP_NONE } from "./state";
import { Insn, P_LOCK, P_ASZ, B_NONE, B_RIP, effAddr } from "./decode";
import { LF_ADD, LF_SUB, LF_LOGIC, LF_INC, LF_DEC, setLazy, carry, cond } from "./flags";
import { aluRes, shift, commitFlags } from "./alu";
import { rd, wr, dataAcc } from "./vmem";
import { accOf, push, peek, branch } from "./operand";
import { REG_RSP } from "./state";
import { imul2 } from "./exec";

export const F_NONE: u32 = 0;
export const F_ALU_RR: u32 = 1;
export const F_ALU_RI: u32 = 2;
export const F_ALU_RM: u32 = 3;
export const F_MOV_RR: u32 = 4;
export const F_MOV_RI: u32 = 5;
export const F_LOAD: u32 = 6;
export const F_STORE: u32 = 7;
export const F_JCC: u32 = 8;
export const F_JMP: u32 = 9;
export const F_INCDEC: u32 = 10;
export const F_TEST: u32 = 11;
export const F_LEA: u32 = 12;
export const F_PUSH: u32 = 13;
export const F_POP: u32 = 14;
export const F_CALL: u32 = 15;
export const F_RET: u32 = 16;
export const F_SHIFT: u32 = 17;
export const F_IMUL: u32 = 18;

@inline function sx(v: u64, bytes: u32): u64 {
  let s = 64 - 8 * <u64>bytes;
  return <u64>((<i64>(v << s)) >> s);
}

// Picks the fast form of a decoded instruction (after decode).
export function classify(d: Insn): u32 {
  if ((d.pfx & P_LOCK) != 0 || d.osz == 2) return F_NONE;
  let op = d.op;
  if (op < 0x40) {
    let form = op & 7;
    if (form == 1 || form == 3) {
      if (d.mem == 0) return F_ALU_RR;
      if (form == 3) return F_ALU_RM;
    }
    return F_NONE;
  }
  if (op >= 0x70 && op < 0x80) { d.imm2 = sx(d.imm, 1); return F_JCC; }
  if (op >= 0x180 && op < 0x190) { d.imm2 = sx(d.imm, 4); return F_JCC; }
  if (op >= 0xB8 && op < 0xC0) return F_MOV_RI;
  if (op >= 0x50 && op < 0x58) return F_PUSH;
  if (op >= 0x58 && op < 0x60) return F_POP;
  switch (op) {
    case 0xE8: d.imm2 = sx(d.imm, 4); return F_CALL;
    case 0xC3: return F_RET;
    case 0xC1: return d.mem == 0 ? F_SHIFT : F_NONE;
    case 0x1AF: return d.mem == 0 ? F_IMUL : F_NONE;
    case 0x81: case 0x83:
      if (d.mem != 0) return F_NONE;
      d.imm2 = op == 0x83 ? sx(d.imm, 1) : d.imm;
      return F_ALU_RI;
    case 0x89: return d.mem == 0 ? F_MOV_RR : F_STORE;
    case 0x8B: return d.mem == 0 ? F_MOV_RR : F_LOAD;
    case 0x85: return d.mem == 0 ? F_TEST : F_NONE;
    case 0x8D: return d.mem != 0 ? F_LEA : F_NONE;
    case 0xEB: d.imm2 = sx(d.imm, 1); return F_JMP;
    case 0xE9: d.imm2 = sx(d.imm, 4); return F_JMP;
    case 0xFF: return d.mem == 0 && (d.reg & 7) < 2 ? F_INCDEC : F_NONE;
  }
  return F_NONE;
}

@inline function put(x: X86, r: u32, size: u32, v: u64): void {
  setR64(x, r, size == 8 ? v : v & 0xFFFF_FFFF);
}

@inline function lazyFor(x: X86, row: u32, size: u32, a: u64, b: u64, r: u64, cin: u64): void {
  if (row == 1 || row == 4 || row == 6) setLazy(x, LF_LOGIC, size, 0, 0, r, 0);
  else if (row == 0 || row == 2) setLazy(x, LF_ADD, size, a, b, r, cin);
  else setLazy(x, LF_SUB, size, a, b, r, cin);
}

// Executes d if it has a fast form; false: the caller runs the general path.
export function fastExec(c: Cpu, x: X86, d: Insn): bool {
  let size = d.osz;
  let m: u64 = size == 8 ? 0xFFFF_FFFF_FFFF_FFFF : 0xFFFF_FFFF;
  switch (d.fast) {
    case F_ALU_RR: case F_ALU_RM: case F_ALU_RI: {
      let row: u32, dst: u32, a: u64, b: u64;
      if (d.fast == F_ALU_RI) {
        row = d.reg & 7; dst = d.rm;
        a = getR64(x, dst) & m; b = d.imm2 & m;
      } else if (d.fast == F_ALU_RR) {
        row = d.op >> 3;
        let toRm = (d.op & 2) == 0;
        dst = toRm ? d.rm : d.reg;
        a = getR64(x, dst) & m;
        b = getR64(x, toRm ? d.reg : d.rm) & m;
      } else {
        row = d.op >> 3; dst = d.reg;
        x.ea = effAddr(x, d);
        b = rd(c, x, x.ea, size, accOf(c, d));
        if (x.stop != STOP_NONE) return true;
        a = getR64(x, dst) & m;
      }
      let cin: u64 = row == 2 || row == 3 ? carry(c, x) : 0;
      let r = aluRes(row, a, b, cin) & m;
      if (row != 7) put(x, dst, size, r);
      lazyFor(x, row, size, a, b, r, row == 2 || row == 3 ? cin : 0);
      return true;
    }
    case F_MOV_RR: {
      let to = d.op == 0x89 ? d.rm : d.reg, from = d.op == 0x89 ? d.reg : d.rm;
      put(x, to, size, getR64(x, from));
      return true;
    }
    case F_MOV_RI: put(x, (d.op & 7) | ((d.rex & 1) << 3), size, d.imm); return true;
    case F_LOAD: {
      x.ea = effAddr(x, d);
      let v = rd(c, x, x.ea, size, accOf(c, d));
      if (x.stop == STOP_NONE) put(x, d.reg, size, v);
      return true;
    }
    case F_STORE: {
      x.ea = effAddr(x, d);
      wr(c, x, x.ea, size, getR64(x, d.reg), accOf(c, d));
      return true;
    }
    case F_JCC: {
      if (!cond(c, x, d.op & 15)) return true;
      let t = x.nextRip + d.imm2;
      if (!canonical(c, t)) return false;
      x.nextRip = t;
      return true;
    }
    case F_JMP: {
      let t = x.nextRip + d.imm2;
      if (!canonical(c, t)) return false;
      x.nextRip = t;
      return true;
    }
    case F_INCDEC: {
      let r0 = d.rm;
      let a = getR64(x, r0) & m;
      let cf = carry(c, x);
      let inc = (d.reg & 7) == 0;
      let r = (inc ? a + 1 : a - 1) & m;
      put(x, r0, size, r);
      setLazy(x, inc ? LF_INC : LF_DEC, size, a, 1, r, cf);
      return true;
    }
    case F_TEST: {
      setLazy(x, LF_LOGIC, size, 0, 0, getR64(x, d.rm) & getR64(x, d.reg) & m, 0);
      return true;
    }
    case F_PUSH: push(c, x, getR64(x, (d.op & 7) | ((d.rex & 1) << 3)), 8); return true;
    case F_POP: {
      let v = peek(c, x, 0, 8);
      if (x.stop != STOP_NONE) return true;
      setR64(x, REG_RSP, getR64(x, REG_RSP) + 8);
      setR64(x, (d.op & 7) | ((d.rex & 1) << 3), v); // POP RSP: the popped value wins
      return true;
    }
    case F_CALL: {
      branch(c, x, x.nextRip + d.imm2);
      if (x.stop != STOP_NONE) return true;
      push(c, x, x.rip + <u64>d.len, 8);
      return true;
    }
    case F_RET: {
      let t = peek(c, x, 0, 8);
      if (x.stop != STOP_NONE) return true;
      branch(c, x, t);
      if (x.stop != STOP_NONE) return true;
      setR64(x, REG_RSP, getR64(x, REG_RSP) + 8);
      return true;
    }
    case F_SHIFT: {
      let r = shift(x, d.reg & 7, size, getR64(x, d.rm) & m, <u32>d.imm, carry(c, x));
      put(x, d.rm, size, r);
      commitFlags(c, x);
      return true;
    }
    case F_IMUL: imul2(c, x, d, size, getR64(x, d.reg) & m, getR64(x, d.rm) & m); return true;
    case F_LEA: {
      let a = d.disp;
      if (d.base == B_RIP) a += x.rip + <u64>d.len;
      else if (d.base != B_NONE) a += getR64(x, d.base);
      if (d.index != B_NONE) a += getR64(x, d.index) << <u64>d.scale;
      if ((d.pfx & P_ASZ) != 0) a &= 0xFFFF_FFFF;
      put(x, d.reg, size, a);
      return true;
    }
  }
  return false;
}

export { dataAcc };
