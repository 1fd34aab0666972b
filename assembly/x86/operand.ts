// Operand access shared by the executors: the ModRM r/m operand (register or memory at
// x.ea), the stack, branch targets. Writes happen before any register commit; a fault
// (x.stop) makes the caller return with nothing committed.

import { Cpu, canonical } from "../cpu";
import { X86, getReg, setReg, getR64, setR64, gp0, STOP_NONE, REG_RSP } from "./state";
import { Insn, isStackRef } from "./decode";
import { rd, wr, dataAcc, ACC_STACK } from "./vmem";
import { ACC_WRITE } from "../entry";

@inline export function accOf(c: Cpu, d: Insn): u32 {
  return isStackRef(d) ? dataAcc(c) | ACC_STACK : dataAcc(c);
}

@inline export function rmRead(c: Cpu, x: X86, d: Insn, size: u32): u64 {
  if (d.mem != 0) return rd(c, x, x.ea, size, accOf(c, d) | (rmwDest(d) ? ACC_WRITE : 0));
  return getReg(x, d.rm, size, d.rex);
}

// Read-modify-write forms: their load carries the write intent, so a #PF on it has W=1
// (as on hardware: `add [m], r` on a not-present page faults with error code W|U).
function rmwDest(d: Insn): bool {
  let op = d.op, e = d.reg & 7;
  if (op < 0x40) return (op & 7) < 2 && (op >> 3) != 7;
  if (op >= 0x80 && op <= 0x83) return e != 7;
  if (op == 0x86 || op == 0x87 || op == 0xC0 || op == 0xC1 || (op >= 0xD0 && op <= 0xD3)) return true;
  if (op == 0xF6 || op == 0xF7) return e == 2 || e == 3;
  if (op == 0xFE || op == 0xFF) return e < 2;
  if (op == 0x1AB || op == 0x1B3 || op == 0x1BB || op == 0x1B0 || op == 0x1B1 || op == 0x1C0 ||
      op == 0x1C1 || op == 0x1A4 || op == 0x1A5 || op == 0x1AC || op == 0x1AD) return true;
  if (op == 0x1BA) return e >= 5;
  return false;
}

@inline export function rmWrite(c: Cpu, x: X86, d: Insn, size: u32, v: u64): void {
  if (d.mem != 0) wr(c, x, x.ea, size, v, accOf(c, d));
  else setReg(x, d.rm, size, d.rex, v);
}

@inline export function regRead(x: X86, d: Insn, size: u32): u64 {
  return getReg(x, d.reg, size, d.rex);
}

@inline export function regWrite(x: X86, d: Insn, size: u32, v: u64): void {
  setReg(x, d.reg, size, d.rex, v);
}

@inline export function stackAcc(c: Cpu): u32 { return dataAcc(c) | ACC_STACK; }

// Pushes v (size 2 or 8). On success RSP is updated.
export function push(c: Cpu, x: X86, v: u64, size: u32): bool {
  let sp = getR64(x, REG_RSP) - <u64>size;
  wr(c, x, sp, size, v, stackAcc(c));
  if (x.stop != STOP_NONE) return false;
  setR64(x, REG_RSP, sp);
  return true;
}

// Reads the top of the stack (size bytes); the caller commits RSP += size.
@inline export function peek(c: Cpu, x: X86, off: u64, size: u32): u64 {
  return rd(c, x, getR64(x, REG_RSP) + off, size, stackAcc(c));
}

// Sets the next RIP to a branch target; a non-canonical target is #GP(0) at the branch.
export function branch(c: Cpu, x: X86, target: u64): void {
  if (!canonical(c, target)) { gp0(x); return; }
  x.nextRip = target;
}

@inline export function sx8(v: u64): u64 { return <u64>(<i64>(<i8>v)); }
@inline export function sx16(v: u64): u64 { return <u64>(<i64>(<i16>v)); }
@inline export function sx32(v: u64): u64 { return <u64>(<i64>(<i32>v)); }

// Stack operand size of d64 instructions: 8, or 2 with a 66 prefix (no 32-bit form).
@inline export function d64(d: Insn): u32 {
  return (d.rex & 8) == 0 && d.osz == 2 ? 2 : 8;
}
