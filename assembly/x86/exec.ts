// The one-byte opcode map (SDM Vol. 2 Table A-2; the sheet's §1 map). Each case reads
// its operands, performs its stores, and only then writes registers and flags, so an
// instruction that stops (x.stop) leaves no half-committed state. x.nextRip is the
// fall-through RIP; branches replace it.

import { Cpu, refresh } from "../cpu";
import {
  X86, getReg, setReg, getR64, setR64, maskOf, signOf, sext, ud, gp0, raise, exitTo, STOP_NONE,
  REG_RSP, V_DE, V_BP, V_DB, F_CF, F_DF, F_IF, F_AC, F_IOPL, F_WRITABLE, F_ARITH, F_PF, F_AF,
  F_ZF, F_SF, XEXIT_HLT,
} from "./state";
import { Insn, P_LOCK, P_REP, P_ASZ, B_NONE, B_RIP } from "./decode";
import { LF_INC, LF_DEC, LF_SUB, setLazy, carry, flags, materialize, cond } from "./flags";
import { aluRes, aluFlags, shift, commitFlags, mulHiU, mulHiS, mulFlags, div128, divRem, logicFlags } from "./alu";
import {
  rmRead, rmWrite, regRead, regWrite, push, peek, branch, sx8, sx32, d64, accOf, stackAcc,
} from "./operand";
import { rd, wr, dataAcc } from "./vmem";
import { exec0F } from "./exec0f";
import { stringOp } from "./string";
import { portIn, portOut } from "./io";
import { softInt, iret, movToSreg } from "./system";

// LOCK is allowed only on these read-modify-write forms with a memory destination.
function lockOk(d: Insn): bool {
  if (d.mem == 0) return false;
  let op = d.op, e = d.reg & 7;
  if (op < 0x40) return (op & 7) < 2 && (op >> 3) != 7;
  if (op >= 0x80 && op <= 0x83) return e != 7;
  if (op == 0x86 || op == 0x87) return true;
  if (op == 0xF6 || op == 0xF7) return e == 2 || e == 3;
  if (op == 0xFE || op == 0xFF) return e < 2;
  if (op == 0x1AB || op == 0x1B3 || op == 0x1BB || op == 0x1B0 || op == 0x1B1 ||
      op == 0x1C0 || op == 0x1C1) return true;
  if (op == 0x1BA) return e >= 5;
  if (op == 0x1C7) return e == 1;
  return false;
}

export function exec(c: Cpu, x: X86, d: Insn): void {
  if ((d.pfx & P_LOCK) != 0 && !lockOk(d)) { ud(x); return; }
  let op = d.op;
  if (op >= 0x100) { exec0F(c, x, d); return; }
  if (op < 0x40) { aluOp(c, x, d); return; }
  let osz = d.osz;
  switch (op >> 4) {
    case 0x5: {
      let r = (op & 7) | ((d.rex & 1) << 3);
      let size = d64(d);
      if (op < 0x58) { push(c, x, getR64(x, r) & maskOf(size), size); return; }
      let v = peek(c, x, 0, size);
      if (x.stop != STOP_NONE) return;
      setR64(x, REG_RSP, getR64(x, REG_RSP) + <u64>size);
      setReg(x, r, size, 1, v);
      return;
    }
    case 0x7: {
      if (cond(c, x, op & 15)) branch(c, x, x.nextRip + sx8(d.imm));
      return;
    }
    case 0x9: {
      if (op < 0x98) { xchgAcc(c, x, d); return; }
      break;
    }
    case 0xB: {
      if (op < 0xB8) { setReg(x, (op & 7) | ((d.rex & 1) << 3), 1, d.rex, d.imm); return; }
      setReg(x, (op & 7) | ((d.rex & 1) << 3), osz, d.rex, d.imm);
      return;
    }
  }
  switch (op) {
    case 0x63: { // MOVSXD (REX.W), else a plain 32/16-bit MOV
      let v = rmRead(c, x, d, osz == 8 ? 4 : osz);
      if (x.stop != STOP_NONE) return;
      regWrite(x, d, osz, osz == 8 ? sx32(v) : v);
      return;
    }
    case 0x68: push(c, x, d.imm & maskOf(d64(d)), d64(d)); return;
    case 0x6A: push(c, x, sx8(d.imm) & maskOf(d64(d)), d64(d)); return;
    case 0x69: case 0x6B: {
      let b = op == 0x6B ? sx8(d.imm) : d.imm;
      let a = rmRead(c, x, d, osz);
      if (x.stop != STOP_NONE) return;
      imul2(c, x, d, osz, a, b);
      return;
    }
    case 0x6C: case 0x6D: case 0x6E: case 0x6F:
    case 0xA4: case 0xA5: case 0xA6: case 0xA7: case 0xAA: case 0xAB: case 0xAC: case 0xAD:
    case 0xAE: case 0xAF:
      stringOp(c, x, d);
      return;
    case 0x80: case 0x81: case 0x83: {
      let size = op == 0x80 ? 1 : osz;
      let b = op == 0x83 ? sx8(d.imm) : d.imm;
      let e = d.reg & 7;
      let a = rmRead(c, x, d, size);
      if (x.stop != STOP_NONE) return;
      let cin = e == 2 || e == 3 ? carry(c, x) : 0;
      let r = aluRes(e, a, b, cin) & maskOf(size);
      if (e != 7) { rmWrite(c, x, d, size, r); if (x.stop != STOP_NONE) return; }
      aluFlags(x, e, size, a, b, r, cin);
      return;
    }
    case 0x84: case 0x85: {
      let size = op == 0x84 ? 1 : osz;
      let a = rmRead(c, x, d, size);
      if (x.stop != STOP_NONE) return;
      logicFlags(x, size, a & regRead(x, d, size));
      return;
    }
    case 0x86: case 0x87: {
      let size = op == 0x86 ? 1 : osz;
      let a = rmRead(c, x, d, size);
      if (x.stop != STOP_NONE) return;
      let b = regRead(x, d, size);
      rmWrite(c, x, d, size, b);
      if (x.stop != STOP_NONE) return;
      regWrite(x, d, size, a);
      return;
    }
    case 0x88: case 0x89: {
      let size = op == 0x88 ? 1 : osz;
      rmWrite(c, x, d, size, regRead(x, d, size));
      return;
    }
    case 0x8A: case 0x8B: {
      let size = op == 0x8A ? 1 : osz;
      let v = rmRead(c, x, d, size);
      if (x.stop != STOP_NONE) return;
      regWrite(x, d, size, v);
      return;
    }
    case 0x8C: { // MOV Ev, Sreg
      let s = d.reg & 7;
      if (s > 5) { ud(x); return; }
      let sel = load<u64>(changetype<usize>(x) + <usize>(18 + sregSlot(s)) * 8) & 0xFFFF;
      if (d.mem != 0) rmWrite(c, x, d, 2, sel);
      else setReg(x, d.rm, osz, d.rex, sel);
      return;
    }
    case 0x8D: { // LEA: the offset, without a segment base
      if (d.mem == 0) { ud(x); return; }
      let seg = d.seg;
      d.seg = 0;
      let a = leaAddr(x, d);
      d.seg = seg;
      regWrite(x, d, osz, a);
      return;
    }
    case 0x8E: movToSreg(c, x, d); return;
    case 0x8F: { // POP Ev: the address is computed after RSP is incremented
      if ((d.reg & 7) != 0) { ud(x); return; }
      let size = d64(d);
      let v = peek(c, x, 0, size);
      if (x.stop != STOP_NONE) return;
      let old = getR64(x, REG_RSP);
      setR64(x, REG_RSP, old + <u64>size);
      if (d.mem != 0) x.ea = leaAddrSeg(x, d);
      rmWrite(c, x, d, size, v);
      if (x.stop != STOP_NONE) setR64(x, REG_RSP, old);
      return;
    }
    case 0x98: { // CBW / CWDE / CDQE
      let h = osz >> 1;
      setReg(x, 0, osz, 1, sext(getR64(x, 0), h));
      return;
    }
    case 0x99: { // CWD / CDQ / CQO
      let neg = (getR64(x, 0) & signOf(osz)) != 0;
      setReg(x, 2, osz, 1, neg ? ~(<u64>0) : 0);
      return;
    }
    case 0x9C: { // PUSHF: RF and VM read as 0
      let size = d64(d);
      push(c, x, flags(c, x) & 0x00FC_FFFF & maskOf(size), size);
      return;
    }
    case 0x9D: popf(c, x, d); return;
    case 0x9E: { // SAHF
      let ah = (getR64(x, 0) >> 8) & 0xFF;
      let m = F_SF | F_ZF | F_AF | F_PF | F_CF;
      materialize(c, x);
      c.rflags = (c.rflags & ~m) | (ah & m);
      return;
    }
    case 0x9F: { // LAHF
      let f = flags(c, x) & 0xD7 | 2;
      setReg(x, 4, 1, 0, f);
      return;
    }
    case 0xA0: case 0xA1: case 0xA2: case 0xA3: { // MOV with moffs
      let size = (op & 1) == 0 ? 1 : osz;
      let a = d.imm;
      if (d.seg == 4) a += x.fsBase; else if (d.seg == 5) a += x.gsBase;
      if (op < 0xA2) {
        let v = rd(c, x, a, size, dataAcc(c));
        if (x.stop != STOP_NONE) return;
        setReg(x, 0, size, 1, v);
      } else {
        wr(c, x, a, size, getR64(x, 0), dataAcc(c));
      }
      return;
    }
    case 0xA8: case 0xA9: {
      let size = op == 0xA8 ? 1 : osz;
      logicFlags(x, size, getR64(x, 0) & d.imm & maskOf(size));
      return;
    }
    case 0xC0: case 0xC1: case 0xD0: case 0xD1: case 0xD2: case 0xD3: {
      let size = (op & 1) == 0 ? 1 : osz;
      let cnt: u32 = op <= 0xC1 ? <u32>d.imm : (op <= 0xD1 ? 1 : <u32>getR64(x, 1) & 0xFF);
      let a = rmRead(c, x, d, size);
      if (x.stop != STOP_NONE) return;
      let r = shift(x, d.reg & 7, size, a, cnt, carry(c, x));
      rmWrite(c, x, d, size, r);
      if (x.stop != STOP_NONE) return;
      commitFlags(c, x);
      return;
    }
    case 0xC2: case 0xC3: { // RET (64-bit operand on Intel, 66 ignored)
      let t = peek(c, x, 0, 8);
      if (x.stop != STOP_NONE) return;
      branch(c, x, t);
      if (x.stop != STOP_NONE) return;
      setR64(x, REG_RSP, getR64(x, REG_RSP) + 8 + (op == 0xC2 ? d.imm & 0xFFFF : 0));
      return;
    }
    case 0xC6: case 0xC7: {
      if ((d.reg & 7) != 0) { ud(x); return; }
      rmWrite(c, x, d, op == 0xC6 ? 1 : osz, d.imm);
      return;
    }
    case 0xC8: enter(c, x, d); return;
    case 0xC9: { // LEAVE
      let size = d64(d);
      let bp = getR64(x, 5);
      let v = rd(c, x, bp, size, stackAcc(c));
      if (x.stop != STOP_NONE) return;
      setR64(x, REG_RSP, bp + <u64>size);
      setReg(x, 5, size, 1, v);
      return;
    }
    case 0xCC: raise(x, V_BP, false, 0); x.excTrap = 1; return;
    case 0xCD: softInt(c, x, <u32>d.imm & 0xFF); return;
    case 0xCF: iret(c, x, d); return;
    case 0xE0: case 0xE1: case 0xE2: case 0xE3: loopOp(c, x, d); return;
    case 0xE4: case 0xE5: case 0xEC: case 0xED: portIn(c, x, d); return;
    case 0xE6: case 0xE7: case 0xEE: case 0xEF: portOut(c, x, d); return;
    case 0xE8: {
      let t = x.nextRip + sx32(d.imm);
      branch(c, x, t);
      if (x.stop != STOP_NONE) return;
      push(c, x, x.rip + <u64>d.len, 8);
      return;
    }
    case 0xE9: branch(c, x, x.nextRip + sx32(d.imm)); return;
    case 0xEB: branch(c, x, x.nextRip + sx8(d.imm)); return;
    case 0xF1: raise(x, V_DB, false, 0); x.excTrap = 1; return;
    case 0xF4: {
      if (c.cpl != 0) { gp0(x); return; }
      x.halted = 1;
      x.evCheck = 1;
      return;
    }
    case 0xF5: materialize(c, x); c.rflags ^= F_CF; return;
    case 0xF6: case 0xF7: group3(c, x, d, op == 0xF6 ? 1 : osz); return;
    case 0xF8: materialize(c, x); c.rflags &= ~F_CF; return;
    case 0xF9: materialize(c, x); c.rflags |= F_CF; return;
    case 0xFA: case 0xFB: {
      if (<u64>c.cpl > ((c.rflags & F_IOPL) >> 12)) { gp0(x); return; }
      if (op == 0xFA) c.rflags &= ~F_IF;
      else {
        if ((c.rflags & F_IF) == 0) x.intShadow = 2;
        x.evCheck = 1;
        c.rflags |= F_IF;
      }
      return;
    }
    case 0xFC: c.rflags &= ~F_DF; return;
    case 0xFD: c.rflags |= F_DF; return;
    case 0xFE: case 0xFF: group45(c, x, d); return;
  }
  ud(x);
}

// Slot of segment register s (0 ES 1 CS 2 SS 3 DS 4 FS 5 GS) in the register file
// (cs ss ds es fs gs from index 18).
@inline export function sregSlot(s: u32): u32 {
  return s == 0 ? 3 : (s == 1 ? 0 : (s == 2 ? 1 : (s == 3 ? 2 : s)));
}

// The ALU rows 00-3F (ADD OR ADC SBB AND SUB XOR CMP × six forms).
function aluOp(c: Cpu, x: X86, d: Insn): void {
  let op = d.op;
  let form = op & 7, row = op >> 3;
  if (form >= 6) { ud(x); return; }
  let size = (form & 1) == 0 ? 1 : d.osz;
  let m = maskOf(size);
  let a: u64, b: u64;
  if (form < 2) {
    a = rmRead(c, x, d, size);
    if (x.stop != STOP_NONE) return;
    b = regRead(x, d, size);
  } else if (form < 4) {
    b = rmRead(c, x, d, size);
    if (x.stop != STOP_NONE) return;
    a = regRead(x, d, size);
  } else {
    a = getR64(x, 0) & m;
    b = d.imm & m;
  }
  let cin = row == 2 || row == 3 ? carry(c, x) : 0;
  let r = aluRes(row, a, b, cin) & m;
  if (row != 7) {
    if (form < 2) { rmWrite(c, x, d, size, r); if (x.stop != STOP_NONE) return; }
    else if (form < 4) regWrite(x, d, size, r);
    else setReg(x, 0, size, 1, r);
  }
  aluFlags(x, row, size, a, b, r, cin);
}

function xchgAcc(c: Cpu, x: X86, d: Insn): void {
  let r = (d.op & 7) | ((d.rex & 1) << 3);
  if (r == 0) {
    // 90 = NOP (F3 90 = PAUSE); with REX.W it is still a no-op (XCHG RAX, RAX).
    if (d.osz == 4) return; // not XCHG EAX,EAX: no zero-extension
    return;
  }
  let size = d.osz;
  let a = getR64(x, 0) & maskOf(size), b = getR64(x, r) & maskOf(size);
  setReg(x, 0, size, 1, b);
  setReg(x, r, size, 1, a);
}

export function imul2(c: Cpu, x: X86, d: Insn, size: u32, a: u64, b: u64): void {
  let sa = sext(a, size), sbv = sext(b, size);
  let lo = (sa * sbv) & maskOf(size);
  let over: bool;
  if (size == 8) {
    let hi = mulHiS(sa, sbv);
    over = hi != (<u64>(<i64>lo >> 63));
  } else {
    over = sext(lo, size) != sa * sbv;
  }
  mulFlags(x, size, lo, over);
  regWrite(x, d, size, lo);
  commitFlags(c, x);
}

// F6/F7: TEST NOT NEG MUL IMUL DIV IDIV.
function group3(c: Cpu, x: X86, d: Insn, size: u32): void {
  let e = d.reg & 7;
  if (e == 1) e = 0; // /1 is an alias of TEST
  let m = maskOf(size);
  let a = rmRead(c, x, d, size);
  if (x.stop != STOP_NONE) return;
  if (e == 0) { logicFlags(x, size, a & d.imm & m); return; }
  if (e == 2) { rmWrite(c, x, d, size, ~a & m); return; }
  if (e == 3) {
    let r = (0 - a) & m;
    rmWrite(c, x, d, size, r);
    if (x.stop != STOP_NONE) return;
    setLazy(x, LF_SUB, size, 0, a, r, 0);
    return;
  }
  if (e == 4 || e == 5) { mulAcc(c, x, size, a, e == 5); return; }
  divAcc(c, x, size, a, e == 7);
}

// MUL/IMUL with the accumulator: AX = AL*src, DX:AX, EDX:EAX, RDX:RAX.
function mulAcc(c: Cpu, x: X86, size: u32, b: u64, signed: bool): void {
  let m = maskOf(size);
  let a = getR64(x, 0) & m;
  let lo: u64, hi: u64;
  if (size == 8) {
    lo = a * b;
    hi = signed ? mulHiS(a, b) : mulHiU(a, b);
  } else {
    let p = signed ? sext(a, size) * sext(b, size) : a * b;
    lo = p & m;
    hi = (p >> (<u64>size * 8)) & m;
  }
  let over = signed ? hi != (sext(lo, size) >> 63 != 0 ? m : 0) : hi != 0;
  mulFlags(x, size, lo, over);
  if (size == 1) setReg(x, 0, 2, 1, (hi << 8) | lo);
  else { setReg(x, 0, size, 1, lo); setReg(x, 2, size, 1, hi); }
  commitFlags(c, x);
}

// DIV/IDIV: #DE for a zero divisor or a quotient that does not fit (checked before any
// Wasm division, which would trap).
function divAcc(c: Cpu, x: X86, size: u32, b: u64, signed: bool): void {
  let m = maskOf(size);
  if (b == 0) { raise(x, V_DE, false, 0); return; }
  let lo = getR64(x, 0) & m;
  let hi = size == 1 ? (getR64(x, 0) >> 8) & 0xFF : getR64(x, 2) & m;
  let q: u64, r: u64;
  if (size < 8) {
    let w = <u64>size * 8;
    let n = (hi << w) | lo; // up to 64 bits
    if (!signed) {
      q = n / b; r = n % b;
      if (q > m) { raise(x, V_DE, false, 0); return; }
    } else {
      let sn = sext(n, size * 2), sd = <i64>sext(b, size);
      if (<i64>sn == i64.MIN_VALUE && sd == -1) { raise(x, V_DE, false, 0); return; }
      let sq = <i64>sn / sd;
      let lim = <i64>1 << (w - 1);
      if (sq >= lim || sq < -lim) { raise(x, V_DE, false, 0); return; }
      q = <u64>sq & m; r = <u64>(<i64>sn % sd) & m;
    }
  } else if (!signed) {
    if (hi >= b) { raise(x, V_DE, false, 0); return; }
    q = div128(hi, lo, b); r = divRem;
  } else {
    let neg = (<i64>hi) < 0, dneg = (<i64>b) < 0;
    let ah = hi, al = lo;
    if (neg) { al = ~lo + 1; ah = ~hi + (al == 0 ? 1 : 0); }
    let ad = dneg ? 0 - b : b;
    if (ah >= ad) { raise(x, V_DE, false, 0); return; }
    let uq = div128(ah, al, ad), ur = divRem;
    let qneg = neg != dneg;
    if (qneg ? uq > 0x8000_0000_0000_0000 : uq > 0x7FFF_FFFF_FFFF_FFFF) { raise(x, V_DE, false, 0); return; }
    q = qneg ? 0 - uq : uq;
    r = neg ? 0 - ur : ur;
  }
  if (size == 1) setReg(x, 0, 2, 1, ((r & 0xFF) << 8) | (q & 0xFF));
  else { setReg(x, 0, size, 1, q); setReg(x, 2, size, 1, r); }
}

// FE/FF: INC DEC CALL CALLF JMP JMPF PUSH.
function group45(c: Cpu, x: X86, d: Insn): void {
  let e = d.reg & 7;
  let size = d.op == 0xFE ? 1 : d.osz;
  if (d.op == 0xFE && e > 1) { ud(x); return; }
  if (e < 2) {
    let a = rmRead(c, x, d, size);
    if (x.stop != STOP_NONE) return;
    let cf = carry(c, x);
    let r = (e == 0 ? a + 1 : a - 1) & maskOf(size);
    rmWrite(c, x, d, size, r);
    if (x.stop != STOP_NONE) return;
    setLazy(x, e == 0 ? LF_INC : LF_DEC, size, a, 1, r, cf);
    return;
  }
  if (e == 2 || e == 4) { // near CALL / JMP, 64-bit operand
    let t = rmRead(c, x, d, 8);
    if (x.stop != STOP_NONE) return;
    branch(c, x, t);
    if (x.stop != STOP_NONE) return;
    if (e == 2) push(c, x, x.rip + <u64>d.len, 8);
    return;
  }
  if (e == 6) {
    let sz = d64(d);
    let v = rmRead(c, x, d, sz);
    if (x.stop != STOP_NONE) return;
    push(c, x, v, sz);
    return;
  }
  ud(x); // far CALL/JMP are not implemented; /7 is undefined
}

function popf(c: Cpu, x: X86, d: Insn): void {
  let size = d64(d);
  let v = peek(c, x, 0, size);
  if (x.stop != STOP_NONE) return;
  setR64(x, REG_RSP, getR64(x, REG_RSP) + <u64>size);
  let mask = F_WRITABLE;
  if (c.cpl != 0) mask &= ~F_IOPL;
  if (<u64>c.cpl > ((c.rflags & F_IOPL) >> 12)) mask &= ~F_IF;
  if (size == 2) mask &= 0xFFFF;
  materialize(c, x);
  let old = c.rflags;
  c.rflags = (old & ~mask) | (v & mask) | 2;
  x.evCheck = 1;
  if (((old ^ c.rflags) & F_AC) != 0) refresh(c);
}

// ENTER imm16, imm8 (nesting level mod 32).
function enter(c: Cpu, x: X86, d: Insn): void {
  let size = d64(d);
  let alloc = d.imm & 0xFFFF;
  let level = <u32>d.imm2 & 31;
  let sp = getR64(x, REG_RSP), bp = getR64(x, 5);
  let acc = stackAcc(c);
  wr(c, x, sp - <u64>size, size, bp, acc);
  if (x.stop != STOP_NONE) return;
  let frame = sp - <u64>size;
  let cur = frame;
  if (level > 0) {
    let b = bp;
    for (let i: u32 = 1; i < level; i++) {
      b -= <u64>size;
      let v = rd(c, x, b, size, acc);
      if (x.stop != STOP_NONE) return;
      cur -= <u64>size;
      wr(c, x, cur, size, v, acc);
      if (x.stop != STOP_NONE) return;
    }
    cur -= <u64>size;
    wr(c, x, cur, size, frame, acc);
    if (x.stop != STOP_NONE) return;
  }
  setReg(x, 5, size, 1, frame);
  setR64(x, REG_RSP, cur - alloc);
}

// LOOP/LOOPE/LOOPNE/JrCXZ (ECX with 67).
function loopOp(c: Cpu, x: X86, d: Insn): void {
  let a32 = (d.pfx & P_ASZ) != 0;
  let cx = getR64(x, 1);
  if (a32) cx &= 0xFFFF_FFFF;
  let t = x.nextRip + sx8(d.imm);
  if (d.op == 0xE3) { if (cx == 0) branch(c, x, t); return; }
  cx = cx - 1;
  if (a32) cx &= 0xFFFF_FFFF;
  let take = cx != 0;
  if (d.op == 0xE0) take = take && !cond(c, x, 4);
  else if (d.op == 0xE1) take = take && cond(c, x, 4);
  if (take) { branch(c, x, t); if (x.stop != STOP_NONE) return; }
  setR64(x, 1, cx);
}

// Effective address without the segment base (LEA).
function leaAddr(x: X86, d: Insn): u64 {
  let a = d.disp;
  if (d.base == B_RIP) a += x.rip + <u64>d.len;
  else if (d.base != B_NONE) a += getR64(x, d.base);
  if (d.index != B_NONE) a += getR64(x, d.index) << <u64>d.scale;
  if ((d.pfx & P_ASZ) != 0) a &= 0xFFFF_FFFF;
  return a;
}

function leaAddrSeg(x: X86, d: Insn): u64 {
  let a = leaAddr(x, d);
  if (d.seg == 4) a += x.fsBase; else if (d.seg == 5) a += x.gsBase;
  return a;
}

export { F_ARITH, P_REP, accOf, exitTo, XEXIT_HLT, F_IF };
