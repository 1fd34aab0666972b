// Lazy arithmetic flags. ADD/ADC/SUB/SBB/CMP/NEG/INC/DEC and the logic ops record their
// operands and result; CF PF AF ZF SF OF are computed only when something reads them
// (Jcc, SETcc, CMOVcc, PUSHF, ADC...). Everything else writes RFLAGS eagerly.
//
//   kind     a, b          res              CF                      OF (sign bit of)
//   ADD      dst, src      a+b+cin          cin ? res<=a : res<a    (a^res)&(b^res)
//   SUB      dst, src      a-b-cin          cin ? a<=b : a<b        (a^b)&(a^res)
//   INC/DEC  dst, 1        a±1              saved CF (cin)          as ADD / SUB
//   LOGIC    -, -          res              0                       0   (AF 0)
// PF = even parity of res[7:0]; ZF = res==0; SF = sign of res; AF = bit 4 of a^b^res.
// All values are masked to lfSize bytes.

import { Cpu } from "../cpu";
import { X86, F_CF, F_PF, F_AF, F_ZF, F_SF, F_OF, F_ARITH, maskOf, signOf } from "./state";

export const LF_NONE: u32 = 0;
export const LF_ADD: u32 = 1;
export const LF_SUB: u32 = 2;
export const LF_LOGIC: u32 = 3;
export const LF_INC: u32 = 4;
export const LF_DEC: u32 = 5;

@inline export function setLazy(x: X86, kind: u32, size: u32, a: u64, b: u64, res: u64, cin: u64): void {
  x.lfKind = kind;
  x.lfSize = size;
  x.lfA = a;
  x.lfB = b;
  x.lfRes = res;
  x.lfCin = cin;
}

@inline export function parity(v: u64): u64 {
  return (popcnt<u32>(<u32>v & 0xFF) & 1) == 0 ? F_PF : 0;
}

// ZF, SF and PF of a result of `size` bytes.
@inline export function szp(res: u64, size: u32): u64 {
  let f = parity(res);
  if ((res & maskOf(size)) == 0) f |= F_ZF;
  if ((res & signOf(size)) != 0) f |= F_SF;
  return f;
}

function lazyBits(x: X86): u64 {
  let k = x.lfKind, size = x.lfSize;
  let a = x.lfA, b = x.lfB, res = x.lfRes;
  let m = maskOf(size), sb = signOf(size);
  let f = szp(res, size);
  if (k == LF_LOGIC) return f;
  f |= ((a ^ b ^ res) & 0x10) != 0 ? F_AF : 0;
  if (k == LF_ADD || k == LF_INC) {
    if (((a ^ res) & (b ^ res) & sb) != 0) f |= F_OF;
  } else {
    if (((a ^ b) & (a ^ res) & sb) != 0) f |= F_OF;
  }
  if (k == LF_ADD) {
    let am = a & m, rm = res & m;
    if (x.lfCin != 0 ? rm <= am : rm < am) f |= F_CF;
  } else if (k == LF_SUB) {
    let am = a & m, bm = b & m;
    if (x.lfCin != 0 ? am <= bm : am < bm) f |= F_CF;
  } else {
    f |= x.lfCin != 0 ? F_CF : 0; // INC/DEC keep CF
  }
  return f;
}

// Folds pending lazy flags into c.rflags.
@inline export function materialize(c: Cpu, x: X86): void {
  if (x.lfKind == LF_NONE) return;
  c.rflags = (c.rflags & ~F_ARITH) | lazyBits(x);
  x.lfKind = LF_NONE;
}

@inline export function flags(c: Cpu, x: X86): u64 {
  materialize(c, x);
  return c.rflags | 2;
}

// CF without materializing everything (ADC/SBB/RCL/INC).
@inline export function carry(c: Cpu, x: X86): u64 {
  let k = x.lfKind;
  if (k == LF_NONE) return c.rflags & F_CF;
  if (k == LF_LOGIC) return 0;
  if (k == LF_INC || k == LF_DEC) return x.lfCin;
  let m = maskOf(x.lfSize);
  if (k == LF_ADD) {
    let am = x.lfA & m, rm = x.lfRes & m;
    return (x.lfCin != 0 ? rm <= am : rm < am) ? 1 : 0;
  }
  let am = x.lfA & m, bm = x.lfB & m;
  return (x.lfCin != 0 ? am <= bm : am < bm) ? 1 : 0;
}

// Sets the arithmetic flags to `bits` (eager ops: shifts, multiply, bit tests...).
@inline export function setArith(c: Cpu, x: X86, mask: u64, bits: u64): void {
  materialize(c, x);
  c.rflags = (c.rflags & ~mask) | (bits & mask);
}

// Condition codes (cc 0..15: O NO B AE E NE BE A S NS P NP L GE LE G).
export function cond(c: Cpu, x: X86, cc: u32): bool {
  let k = x.lfKind;
  // ZF and SF come from the result alone, whatever the lazy operation.
  if (k != LF_NONE && ((cc >> 1) == 2 || (cc >> 1) == 4)) {
    let r = (cc >> 1) == 2 ? (x.lfRes & maskOf(x.lfSize)) == 0 : (x.lfRes & signOf(x.lfSize)) != 0;
    return (cc & 1) != 0 ? !r : r;
  }
  // Fast paths for the common compare-and-branch pairs.
  if (k == LF_SUB && x.lfCin == 0) {
    let m = maskOf(x.lfSize);
    let a = x.lfA & m, b = x.lfB & m;
    let sa = sextS(a, x.lfSize), sbv = sextS(b, x.lfSize);
    let r: bool;
    switch (cc >> 1) {
      case 1: r = a < b; break;           // B
      case 2: r = a == b; break;          // E
      case 3: r = a <= b; break;          // BE
      case 6: r = sa < sbv; break;        // L
      case 7: r = sa <= sbv; break;       // LE
      default: return condSlow(c, x, cc);
    }
    return (cc & 1) != 0 ? !r : r;
  }
  if (k == LF_LOGIC && (cc >> 1) == 2) {
    let z = (x.lfRes & maskOf(x.lfSize)) == 0;
    return (cc & 1) != 0 ? !z : z;
  }
  return condSlow(c, x, cc);
}

@inline function sextS(v: u64, size: u32): i64 {
  let s = 64 - <u64>size * 8;
  return (<i64>(v << s)) >> s;
}

function condSlow(c: Cpu, x: X86, cc: u32): bool {
  let f = flags(c, x);
  let r: bool;
  switch (cc >> 1) {
    case 0: r = (f & F_OF) != 0; break;
    case 1: r = (f & F_CF) != 0; break;
    case 2: r = (f & F_ZF) != 0; break;
    case 3: r = (f & (F_CF | F_ZF)) != 0; break;
    case 4: r = (f & F_SF) != 0; break;
    case 5: r = (f & F_PF) != 0; break;
    case 6: r = ((f & F_SF) != 0) != ((f & F_OF) != 0); break;
    default: r = (f & F_ZF) != 0 || (((f & F_SF) != 0) != ((f & F_OF) != 0)); break;
  }
  return (cc & 1) != 0 ? !r : r;
}
