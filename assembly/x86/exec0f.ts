// The two-byte opcode map 0F xx (SDM Vol. 2 Table A-3): CMOVcc, Jcc, SETcc, bit tests,
// SHLD/SHRD, IMUL, CMPXCHG, XADD, MOVZX/MOVSX, BSF/BSR/TZCNT/LZCNT/POPCNT, BSWAP,
// fences, hint NOPs. System instructions go to system.ts. Anything else is #UD.

import { Cpu } from "../cpu";
import {
  X86, getR64, setR64, setReg, maskOf, signOf, sext, ud, gp0, raise, STOP_NONE, REG_RSP,
  F_CF, F_ZF, F_OF, F_SF, F_PF, F_AF, V_GP,
} from "./state";
import { Insn, P_REP, P_OSZ, P_REPNE, P_ASZ } from "./decode";
import { LF_ADD, LF_SUB, setLazy, carry, cond, setArith, materialize } from "./flags";
import { shiftDouble, commitFlags, logicFlags } from "./alu";
import { rmRead, rmWrite, regRead, regWrite, push, branch, sx32, d64, accOf } from "./operand";
import { rd, wr, probeWrite } from "./vmem";
import { ACC_WRITE } from "../entry";
import { imul2 } from "./exec";
import { system0F } from "./system";

export function exec0F(c: Cpu, x: X86, d: Insn): void {
  let op = d.op;
  let osz = d.osz;
  if (op >= 0x200) { system0F(c, x, d); return; }
  let b = op & 0xFF;
  switch (b >> 4) {
    case 0x4: { // CMOVcc: the source is always read; a 32-bit destination is always written
      let v = rmRead(c, x, d, osz);
      if (x.stop != STOP_NONE) return;
      if (cond(c, x, b & 15)) regWrite(x, d, osz, v);
      else if (osz == 4) regWrite(x, d, 4, regRead(x, d, 4));
      return;
    }
    case 0x8: {
      if (cond(c, x, b & 15)) branch(c, x, x.nextRip + sx32(d.imm));
      return;
    }
    case 0x9: {
      rmWrite(c, x, d, 1, cond(c, x, b & 15) ? 1 : 0);
      return;
    }
    case 0xC: {
      if (b >= 0xC8) { bswapOp(x, d); return; }
      break;
    }
  }
  switch (b) {
    case 0x0B: ud(x); return; // UD2
    case 0x0D: if (d.mem == 0) { ud(x); return; } return; // PREFETCH/PREFETCHW m8: a register operand is #UD
    case 0x18: case 0x19: case 0x1A: case 0x1B: case 0x1C: case 0x1D: case 0x1E:
    case 0x1F:
      return; // prefetch and hint NOPs (F3 0F 1E FA = ENDBR64)
    case 0xA0: case 0xA8: { // PUSH FS / GS
      let sel = b == 0xA0 ? x.fs : x.gs;
      push(c, x, sel & 0xFFFF, d64(d));
      return;
    }
    case 0xA3: case 0xAB: case 0xB3: case 0xBB: bitTest(c, x, d, (b >> 3) & 3, false); return;
    case 0xBA: {
      let e = d.reg & 7;
      if (e < 4) { ud(x); return; }
      bitTest(c, x, d, e - 4, true);
      return;
    }
    case 0xA4: case 0xA5: case 0xAC: case 0xAD: {
      let cnt: u32 = (b & 1) == 0 ? <u32>d.imm : <u32>getR64(x, 1) & 0xFF;
      let a = rmRead(c, x, d, osz);
      if (x.stop != STOP_NONE) return;
      let r = shiftDouble(x, b < 0xA8, osz, a, regRead(x, d, osz), cnt);
      rmWrite(c, x, d, osz, r);
      if (x.stop != STOP_NONE) return;
      commitFlags(c, x);
      return;
    }
    case 0xAE: fenceGroup(c, x, d); return;
    case 0xAF: {
      let a = rmRead(c, x, d, osz);
      if (x.stop != STOP_NONE) return;
      imul2(c, x, d, osz, regRead(x, d, osz), a);
      return;
    }
    case 0xB0: case 0xB1: cmpxchg(c, x, d, b == 0xB0 ? 1 : osz); return;
    case 0xB6: case 0xB7: case 0xBE: case 0xBF: {
      let from: u32 = (b & 1) == 0 ? 1 : 2;
      let v = rmRead(c, x, d, from);
      if (x.stop != STOP_NONE) return;
      regWrite(x, d, osz, b >= 0xBE ? sext(v, from) : v);
      return;
    }
    case 0xB8: {
      if ((d.pfx & P_REP) == 0) { ud(x); return; }
      let v = rmRead(c, x, d, osz);
      if (x.stop != STOP_NONE) return;
      let n = <u64>popcnt<u64>(v);
      regWrite(x, d, osz, n);
      setArith(c, x, F_CF | F_OF | F_SF | F_ZF | F_PF | F_AF, v == 0 ? F_ZF : 0);
      return;
    }
    case 0xBC: case 0xBD: bitScan(c, x, d, b == 0xBD); return;
    case 0xC0: case 0xC1: {
      let size = b == 0xC0 ? 1 : osz;
      let a = rmRead(c, x, d, size);
      if (x.stop != STOP_NONE) return;
      let s = regRead(x, d, size);
      let r = (a + s) & maskOf(size);
      if (d.mem == 0) { // XADD r, r with the same register ends with the sum
        regWrite(x, d, size, a);
        rmWrite(c, x, d, size, r);
      } else {
        rmWrite(c, x, d, size, r);
        if (x.stop != STOP_NONE) return;
        regWrite(x, d, size, a);
      }
      setLazy(x, LF_ADD, size, a, s, r, 0);
      return;
    }
    case 0xC7: group9(c, x, d); return;
  }
  system0F(c, x, d);
}

function bswapOp(x: X86, d: Insn): void {
  let r = (d.op & 7) | ((d.rex & 1) << 3);
  let v = getR64(x, r);
  if (d.osz == 8) setR64(x, r, bswap<u64>(v));
  else if (d.osz == 4) setR64(x, r, <u64>bswap<u32>(<u32>v));
  else setReg(x, r, 2, 1, 0); // BSWAP r16 is undefined; Intel clears the low word
}

// BT/BTS/BTR/BTC (kind 0..3). A register offset on a memory operand is signed and
// selects another operand-size unit; an immediate or register destination wraps.
function bitTest(c: Cpu, x: X86, d: Insn, kind: u32, immediate: bool): void {
  let size = d.osz;
  let w = <u64>size * 8;
  let off: u64 = immediate ? d.imm & 0xFF : regRead(x, d, size);
  if (d.mem != 0 && !immediate) {
    let so = <i64>sext(off, size);
    x.ea += <u64>((so >> <i64>(size == 8 ? 6 : (size == 4 ? 5 : 4))) * <i64>size);
    if ((d.pfx & P_ASZ) != 0) { // the bit offset is part of a 32-bit offset; the FS/GS base is added after
      let seg = d.seg == 4 ? x.fsBase : (d.seg == 5 ? x.gsBase : 0);
      x.ea = seg + ((x.ea - seg) & 0xFFFF_FFFF);
    }
  }
  let bit = off & (w - 1);
  let a = rmRead(c, x, d, size);
  if (x.stop != STOP_NONE) return;
  let cf = (a >> bit) & 1;
  if (kind != 0) {
    let mbit = <u64>1 << bit;
    let r = kind == 1 ? a | mbit : (kind == 2 ? a & ~mbit : a ^ mbit);
    rmWrite(c, x, d, size, r);
    if (x.stop != STOP_NONE) return;
  }
  setArith(c, x, F_CF, cf != 0 ? F_CF : 0);
}

// BSF/BSR (source 0: ZF=1, destination unchanged) and TZCNT/LZCNT (F3).
function bitScan(c: Cpu, x: X86, d: Insn, reverse: bool): void {
  let size = d.osz;
  let w = <u64>size * 8;
  let v = rmRead(c, x, d, size);
  if (x.stop != STOP_NONE) return;
  if ((d.pfx & P_REP) != 0) {
    let n: u64 = v == 0 ? w : (reverse ? <u64>clz<u64>(v) - (64 - w) : <u64>ctz<u64>(v));
    regWrite(x, d, size, n);
    setArith(c, x, F_CF | F_ZF, (v == 0 ? F_CF : 0) | (n == 0 ? F_ZF : 0));
    return;
  }
  if (v == 0) { setArith(c, x, F_ZF, F_ZF); return; }
  let n: u64 = reverse ? 63 - <u64>clz<u64>(v) : <u64>ctz<u64>(v);
  regWrite(x, d, size, n);
  setArith(c, x, F_ZF, 0);
}

// CMPXCHG: flags of CMP acc, dest. Equal: dest = src. Else acc = dest; a memory
// destination is written back with its own value (as the processor's locked cycle does),
// a register destination is not touched (not even zero-extended).
function cmpxchg(c: Cpu, x: X86, d: Insn, size: u32): void {
  let m = maskOf(size);
  let dst = rmRead(c, x, d, size);
  if (x.stop != STOP_NONE) return;
  let acc = getR64(x, 0) & m;
  let eq = acc == dst;
  let src = regRead(x, d, size);
  if (eq || d.mem != 0) rmWrite(c, x, d, size, eq ? src : dst);
  if (x.stop != STOP_NONE) return;
  if (!eq) setReg(x, 0, size, 1, dst);
  setLazy(x, LF_SUB, size, acc, dst, (acc - dst) & m, 0);
}

// 0F C7: /1 CMPXCHG8B / CMPXCHG16B (m128 must be 16-aligned: #GP(0)).
function group9(c: Cpu, x: X86, d: Insn): void {
  let e = d.reg & 7;
  if (e != 1 || d.mem == 0) { ud(x); return; }
  let acc = accOf(c, d) | ACC_WRITE; // a locked read-modify-write: a #PF on the load has W=1
  if ((d.rex & 8) != 0) {
    if ((x.ea & 15) != 0) { gp0(x); return; }
    let lo = rd(c, x, x.ea, 8, acc);
    if (x.stop != STOP_NONE) return;
    let hi = rd(c, x, x.ea + 8, 8, acc);
    if (x.stop != STOP_NONE) return;
    let eq = lo == getR64(x, 0) && hi == getR64(x, 2);
    wr(c, x, x.ea, 8, eq ? getR64(x, 3) : lo, acc);
    if (x.stop != STOP_NONE) return;
    wr(c, x, x.ea + 8, 8, eq ? getR64(x, 1) : hi, acc);
    if (x.stop != STOP_NONE) return;
    if (!eq) { setR64(x, 0, lo); setR64(x, 2, hi); }
    setArith(c, x, F_ZF, eq ? F_ZF : 0);
    return;
  }
  let v = rd(c, x, x.ea, 8, acc);
  if (x.stop != STOP_NONE) return;
  let cur = (getR64(x, 2) << 32) | (getR64(x, 0) & 0xFFFF_FFFF);
  let eq = v == cur;
  wr(c, x, x.ea, 8, eq ? (getR64(x, 1) << 32) | (getR64(x, 3) & 0xFFFF_FFFF) : v, acc);
  if (x.stop != STOP_NONE) return;
  if (!eq) { setR64(x, 0, v & 0xFFFF_FFFF); setR64(x, 2, v >> 32); }
  setArith(c, x, F_ZF, eq ? F_ZF : 0);
}

// 0F AE: fences (register forms E8/F0/F8) and CLFLUSH/CLFLUSHOPT (memory /7): no-ops on
// this cache-less machine, but CLFLUSH still checks that the byte is readable.
function fenceGroup(c: Cpu, x: X86, d: Insn): void {
  let e = d.reg & 7;
  if ((d.pfx & (P_REP | P_REPNE)) != 0) { ud(x); return; }
  if (d.mem != 0) {
    if (e != 7) { ud(x); return; }
    rd(c, x, x.ea, 1, accOf(c, d));
    return;
  }
  if ((d.pfx & P_OSZ) != 0 || e < 5) { ud(x); return; }
}

export { probeWrite, materialize, raise, V_GP, signOf, REG_RSP };
