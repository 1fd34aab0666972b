// Integer arithmetic with exact flags (SDM Vol. 2 per instruction; the table in
// /reference/x86-64-cpu.md §2). Pure functions: they return the result and leave the new
// flags in x.tFlags/x.tMask, applied by commitFlags only after the instruction's store
// succeeded, so a faulting store leaves RFLAGS untouched.

import { Cpu } from "../cpu";
import { X86, F_CF, F_PF, F_AF, F_ZF, F_SF, F_OF, maskOf, signOf } from "./state";
import { LF_ADD, LF_SUB, LF_LOGIC, setLazy, szp, setArith } from "./flags";

// ALU row op: 0 ADD 1 OR 2 ADC 3 SBB 4 AND 5 SUB 6 XOR 7 CMP.
@inline export function aluRes(op: u32, a: u64, b: u64, cin: u64): u64 {
  switch (op) {
    case 0: return a + b;
    case 1: return a | b;
    case 2: return a + b + cin;
    case 3: return a - b - cin;
    case 4: return a & b;
    case 6: return a ^ b;
    default: return a - b; // SUB, CMP
  }
}

@inline export function aluFlags(x: X86, op: u32, size: u32, a: u64, b: u64, r: u64, cin: u64): void {
  if (op == 1 || op == 4 || op == 6) setLazy(x, LF_LOGIC, size, 0, 0, r, 0);
  else if (op == 0 || op == 2) setLazy(x, LF_ADD, size, a, b, r, op == 2 ? cin : 0);
  else setLazy(x, LF_SUB, size, a, b, r, op == 3 ? cin : 0);
}

@inline function put(x: X86, mask: u64, bits: u64): void {
  x.tMask = mask;
  x.tFlags = bits;
}

export function commitFlags(c: Cpu, x: X86): void {
  if (x.tMask != 0) setArith(c, x, x.tMask, x.tFlags);
}

// Shifts and rotates (group 2; ext 0 ROL 1 ROR 2 RCL 3 RCR 4 SHL 5 SHR 6 SAL 7 SAR).
// cnt is the raw count; cf the current CF. Flags are left in x.tFlags/x.tMask (mask 0 when
// the masked count is 0: no flag changes).
export function shift(x: X86, ext: u32, size: u32, a: u64, cnt: u32, cf: u64): u64 {
  let w = size * 8;
  let m = maskOf(size), sb = signOf(size);
  a &= m;
  let n = cnt & (size == 8 ? 63 : 31);
  x.tMask = 0;
  if (n == 0) return a;
  let r: u64 = 0, c: u64 = 0, o: u64 = 0;
  if (ext == 0 || ext == 1) { // ROL / ROR: only CF and OF
    let k = n % w;
    if (ext == 0) {
      r = k == 0 ? a : ((a << <u64>k) | (a >> <u64>(w - k))) & m;
      c = r & 1;
      o = ((r & sb) != 0 ? 1 : 0) ^ c;
    } else {
      r = k == 0 ? a : ((a >> <u64>k) | (a << <u64>(w - k))) & m;
      c = (r & sb) != 0 ? 1 : 0;
      o = c ^ ((r >> <u64>(w - 2)) & 1);
    }
    put(x, F_CF | F_OF, (c != 0 ? F_CF : 0) | (o != 0 ? F_OF : 0));
    return r;
  }
  if (ext == 2 || ext == 3) { // RCL / RCR through CF: 8-bit mod 9, 16-bit mod 17
    let k = size == 1 ? n % 9 : (size == 2 ? n % 17 : n);
    r = a; c = cf;
    for (let i: u32 = 0; i < k; i++) {
      if (ext == 2) {
        let nc = (r & sb) != 0 ? <u64>1 : 0;
        r = ((r << 1) | c) & m;
        c = nc;
      } else {
        let nc = r & 1;
        r = (r >> 1) | (c != 0 ? sb : 0);
        c = nc;
      }
    }
    if (ext == 2) o = ((r & sb) != 0 ? 1 : 0) ^ c;
    else o = ((r >> <u64>(w - 1)) ^ (r >> <u64>(w - 2))) & 1;
    put(x, F_CF | F_OF, (c != 0 ? F_CF : 0) | (o != 0 ? F_OF : 0));
    return r;
  }
  if (ext == 4 || ext == 6) { // SHL
    if (n < w) { r = (a << <u64>n) & m; c = (a >> <u64>(w - n)) & 1; }
    else { r = 0; c = n == w ? a & 1 : 0; }
    o = ((r & sb) != 0 ? 1 : 0) ^ c;
  } else if (ext == 5) { // SHR
    if (n < w) { r = a >> <u64>n; c = (a >> <u64>(n - 1)) & 1; }
    else { r = 0; c = n == w ? (a >> <u64>(w - 1)) & 1 : 0; }
    o = (a & sb) != 0 ? 1 : 0;
  } else { // SAR
    let sa = <i64>(a << <u64>(64 - w)) >> <i64>(64 - w);
    let k = n < w ? n : w - 1;
    r = <u64>(sa >> <i64>k) & m;
    c = <u64>(sa >> <i64>(n < w ? n - 1 : w - 1)) & 1;
    o = 0;
  }
  put(x, F_CF | F_OF | F_SF | F_ZF | F_PF | F_AF,
    szp(r, size) | (c != 0 ? F_CF : 0) | (o != 0 ? F_OF : 0));
  return r;
}

// SHLD / SHRD dst, src, cnt (count masked to 5/6 bits; 0 = no change).
export function shiftDouble(x: X86, left: bool, size: u32, a: u64, b: u64, cnt: u32): u64 {
  let w = size * 8;
  let m = maskOf(size), sb = signOf(size);
  a &= m; b &= m;
  let n = cnt & (size == 8 ? 63 : 31);
  x.tMask = 0;
  if (n == 0) return a;
  let r: u64, c: u64;
  if (size == 2 && n > 16) {
    // Undefined by the SDM (result and flags); a deterministic choice, compared masked.
    let t: u64 = (a << 32) | (b << 16) | a;
    if (left) { r = (t >> <u64>(32 - n)) & m; c = (t >> <u64>(48 - n)) & 1; }
    else { r = (t >> <u64>n) & m; c = (t >> <u64>(n - 1)) & 1; }
  } else if (left) {
    r = ((a << <u64>n) | (n == w ? b : (b >> <u64>(w - n)))) & m;
    if (n == w) r = b;
    c = (a >> <u64>(w - n)) & 1;
  } else {
    r = ((a >> <u64>n) | (n == w ? 0 : (b << <u64>(w - n)))) & m;
    if (n == w) r = b;
    c = (a >> <u64>(n - 1)) & 1;
  }
  let o: u64 = ((r ^ a) & sb) != 0 ? 1 : 0;
  put(x, F_CF | F_OF | F_SF | F_ZF | F_PF | F_AF,
    szp(r, size) | (c != 0 ? F_CF : 0) | (o != 0 ? F_OF : 0));
  return r;
}

// High 64 bits of the unsigned 128-bit product (no i128 in Wasm).
export function mulHiU(a: u64, b: u64): u64 {
  let al = a & 0xFFFF_FFFF, ah = a >> 32, bl = b & 0xFFFF_FFFF, bh = b >> 32;
  let p0 = al * bl, p1 = al * bh, p2 = ah * bl, p3 = ah * bh;
  let mid = (p0 >> 32) + (p1 & 0xFFFF_FFFF) + (p2 & 0xFFFF_FFFF);
  return p3 + (p1 >> 32) + (p2 >> 32) + (mid >> 32);
}

export function mulHiS(a: u64, b: u64): u64 {
  let h = mulHiU(a, b);
  if (<i64>a < 0) h -= b;
  if (<i64>b < 0) h -= a;
  return h;
}

// Flags of MUL/IMUL: CF = OF = overflow; SF ZF PF from the low result (undefined by
// the SDM, compared masked), AF 0.
export function mulFlags(x: X86, size: u32, lo: u64, overflow: bool): void {
  put(x, F_CF | F_OF | F_SF | F_ZF | F_PF | F_AF, szp(lo, size) | (overflow ? F_CF | F_OF : 0));
}

// Unsigned 128/64 division of hi:lo by d, with hi < d (the caller checked). Returns the
// quotient; the remainder is left in divRem.
export let divRem: u64 = 0;
export function div128(hi: u64, lo: u64, d: u64): u64 {
  if (hi == 0) { divRem = lo % d; return lo / d; }
  let q: u64 = 0, r = hi;
  for (let i = 63; i >= 0; i--) {
    let top = r >> 63;
    r = (r << 1) | ((lo >> <u64>i) & 1);
    if (top != 0 || r >= d) { r -= d; q |= <u64>1 << <u64>i; }
  }
  divRem = r;
  return q;
}

// Logic-op flags for results computed eagerly (TEST-like): CF=OF=0.
export function logicFlags(x: X86, size: u32, r: u64): void {
  setLazy(x, LF_LOGIC, size, 0, 0, r, 0);
}

export { F_CF, F_ZF };
