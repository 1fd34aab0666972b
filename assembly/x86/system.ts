// System instructions: segment loads, descriptor tables (LGDT/LIDT/SGDT/SIDT/LTR/STR),
// MOV CR, INVLPG/INVPCID, SWAPGS, SYSCALL/SYSRET, INT n, IRET, CLTS/LMSW/SMSW, RDPKRU/
// WRPKRU and the cache no-ops. MSRs, CPUID and the TSC are in msr.ts.
//
// Privilege: CPL ≠ 0 → #GP(0) for every instruction marked CPL0 below. In shadow mode
// MOV to CR3 and INVLPG/INVPCID retire and then exit (XEXIT_CR3 / XEXIT_INVLPG) so the
// hypervisor emulates them against the guest's tables, as the batch engine does.

import { ACC_IMPLICIT, CR0_PG, EFER_LMA } from "../entry";
import { Cpu, refresh, writeCr0, writeCr3, writeCr4, invlpg, invpcid, MODE_SHADOW, canonical as isCanonical } from "../cpu";
import {
  X86, getR64, setR64, setReg, ud, gp0, raise, exitTo, STOP_NONE, V_GP, V_NP, V_SS, V_DB,
  XEXIT_CR3, XEXIT_INVLPG, XEXIT_CR_WRITE, F_RF, F_VM, F_IF,
} from "./state";
import { Insn, P_OSZ } from "./decode";
import { rmRead, rmWrite, accOf, d64, peek } from "./operand";
import { rd, wr, rdSlow, wrSlow, probeWrite } from "./vmem";
import { flags, materialize } from "./flags";
import { readDesc, descDpl, descPresent, descType, descS, descBase32, iretOp } from "./intr";
import { rdmsr, wrmsr, cpuid, rdtsc, apicOf } from "./msr";

// INT n: a software interrupt (DPL checked, RIP = next, not subject to the exception
// bitmap). INT3/INT1 are raised as exceptions by exec.ts.
export function softInt(c: Cpu, x: X86, vec: u32): void {
  raise(x, vec, false, 0);
  x.excTrap = 1;
  x.excSoft = 1;
  x.excIntN = 1;
}

export function iret(c: Cpu, x: X86, d: Insn): void {
  iretOp(c, x, (d.rex & 8) != 0 ? 8 : ((d.pfx & P_OSZ) != 0 ? 2 : 4));
}

// MOV Sreg, Ew / POP FS / POP GS. sreg: 0 ES 2 SS 3 DS 4 FS 5 GS (CS → #UD).
export function loadSreg(c: Cpu, x: X86, s: u32, sel: u32): void {
  let rpl = sel & 3;
  let base: u64 = 0;
  if ((sel & 0xFFFC) == 0) {
    if (s == 2 && (c.cpl == 3 || rpl != c.cpl)) { gp0(x); return; }
  } else {
    let dsc = readDesc(c, x, sel, 0);
    if (x.stop != STOP_NONE) return;
    let t = descType(dsc), dpl = descDpl(dsc);
    let err = sel & 0xFFFC;
    if (!descS(dsc)) { raise(x, V_GP, true, err); return; }
    if (s == 2) {
      if ((t & 10) != 2 || rpl != c.cpl || dpl != c.cpl) { raise(x, V_GP, true, err); return; }
      if (!descPresent(dsc)) { raise(x, V_SS, true, err); return; }
    } else {
      let code = (t & 8) != 0;
      if (code && (t & 2) == 0) { raise(x, V_GP, true, err); return; } // execute-only code
      let conforming = code && (t & 4) != 0;
      if (!conforming && (dpl < c.cpl || dpl < rpl)) { raise(x, V_GP, true, err); return; }
      if (!descPresent(dsc)) { raise(x, V_NP, true, err); return; }
    }
    base = descBase32(dsc);
  }
  if (s == 0) x.es = <u64>sel;
  else if (s == 2) { x.ss = <u64>sel; x.intShadow = 2; x.evCheck = 1; }
  else if (s == 3) x.ds = <u64>sel;
  else if (s == 4) { x.fs = <u64>sel; x.fsBase = base; }
  else { x.gs = <u64>sel; x.gsBase = base; }
}

export function movToSreg(c: Cpu, x: X86, d: Insn): void {
  let s = d.reg & 7;
  if (s == 1 || s > 5) { ud(x); return; }
  let sel = rmRead(c, x, d, 2);
  if (x.stop != STOP_NONE) return;
  loadSreg(c, x, s, <u32>sel & 0xFFFF);
}

function popSreg(c: Cpu, x: X86, d: Insn, s: u32): void {
  let size = d64(d);
  let v = peek(c, x, 0, size);
  if (x.stop != STOP_NONE) return;
  loadSreg(c, x, s, <u32>v & 0xFFFF);
  if (x.stop != STOP_NONE) return;
  setR64(x, 4, getR64(x, 4) + <u64>size);
}

@inline function cpl0(c: Cpu, x: X86): bool {
  if (c.cpl != 0) { gp0(x); return false; }
  return true;
}

// Everything of the 0F map that exec0f.ts does not handle.
export function system0F(c: Cpu, x: X86, d: Insn): void {
  let op = d.op;
  switch (op) {
    case 0x100: group6(c, x, d); return;
    case 0x101: group7(c, x, d); return;
    case 0x105: syscall(c, x); return;
    case 0x106: if (cpl0(c, x)) { writeCr0(c, c.cr0 & ~(<u64>8)); x.cr0Mirror = c.cr0; } return;
    case 0x107: sysret(c, x, d); return;
    case 0x108: case 0x109: cpl0(c, x); return; // INVD / WBINVD: no caches to flush
    case 0x120: case 0x122: movCr(c, x, d, op == 0x122); return;
    case 0x130: wrmsr(c, x); return;
    case 0x131: rdtsc(c, x, false); return;
    case 0x132: rdmsr(c, x); return;
    case 0x1A1: popSreg(c, x, d, 4); return;
    case 0x1A9: popSreg(c, x, d, 5); return;
    case 0x1A2: cpuid(c, x); return;
    case 0x282: invpcidOp(c, x, d); return;
  }
  ud(x);
}

// 0F 00: SLDT STR LLDT LTR (VERR/VERW are not implemented: #UD).
function group6(c: Cpu, x: X86, d: Insn): void {
  let e = d.reg & 7;
  if (e == 0 || e == 1) {
    let v: u64 = e == 0 ? 0 : x.tr & 0xFFFF;
    if (d.mem != 0) rmWrite(c, x, d, 2, v);
    else setReg(x, d.rm, d.osz, d.rex, v);
    return;
  }
  if (e == 2) { // LLDT: only the null selector (no LDT support)
    if (!cpl0(c, x)) return;
    let sel = <u32>rmRead(c, x, d, 2);
    if (x.stop != STOP_NONE) return;
    if ((sel & 0xFFFC) != 0) raise(x, V_GP, true, sel & 0xFFFC);
    return;
  }
  if (e == 3) { ltr(c, x, d); return; }
  ud(x);
}

// LTR: an available 64-bit TSS (type 9) in the GDT; marks it busy (type B).
function ltr(c: Cpu, x: X86, d: Insn): void {
  if (!cpl0(c, x)) return;
  let sel = <u32>rmRead(c, x, d, 2) & 0xFFFF;
  if (x.stop != STOP_NONE) return;
  if ((sel & 0xFFFC) == 0) { gp0(x); return; }
  let lo = readDesc(c, x, sel, 0);
  if (x.stop != STOP_NONE) return;
  let err = sel & 0xFFFC;
  if (<u64>(sel & 0xFFF8) + 15 > x.gdtrLimit) { raise(x, V_GP, true, err); return; }
  let at = x.gdtrBase + <u64>(sel & 0xFFF8);
  let hi = rdSlow(c, x, at + 8, 8, ACC_IMPLICIT);
  if (x.stop != STOP_NONE) return;
  if (descS(lo) || descType(lo) != 9) { raise(x, V_GP, true, err); return; }
  if (!descPresent(lo)) { raise(x, V_NP, true, err); return; }
  wrSlow(c, x, at, 8, lo | (<u64>2 << 40), ACC_IMPLICIT);
  if (x.stop != STOP_NONE) return;
  let limit = (lo & 0xFFFF) | (((lo >> 48) & 0xF) << 16);
  if ((lo & (<u64>1 << 55)) != 0) limit = (limit << 12) | 0xFFF;
  x.tr = <u64>sel;
  x.trBase = descBase32(lo) | ((hi & 0xFFFF_FFFF) << 32);
  x.trLimit = limit;
}

// 0F 01: SGDT SIDT LGDT LIDT SMSW LMSW INVLPG; register forms CLAC STAC RDPKRU WRPKRU
// SWAPGS RDTSCP.
function group7(c: Cpu, x: X86, d: Insn): void {
  let e = d.reg & 7;
  if (d.mem == 0) {
    let m = d.modrm;
    if (m == 0xCA || m == 0xCB) { // CLAC / STAC: #UD (not #GP) at CPL > 0
      if (c.cpl != 0) { ud(x); return; }
      materialize(c, x);
      if (m == 0xCA) c.rflags &= ~(<u64>1 << 18); else c.rflags |= <u64>1 << 18;
      refresh(c);
      return;
    }
    if (m == 0xEE || m == 0xEF) { pkru(c, x, m == 0xEF); return; }
    if (m == 0xF8) { // SWAPGS
      if (!cpl0(c, x)) return;
      let t = x.gsBase; x.gsBase = x.kernelGsBase; x.kernelGsBase = t;
      return;
    }
    if (m == 0xF9) { rdtsc(c, x, true); return; }
    if (e == 4) { setReg(x, d.rm, d.osz, d.rex, c.cr0 & 0xFFFF_FFFF); return; } // SMSW r
    if (e == 6) { lmsw(c, x, d); return; }
    ud(x);
    return;
  }
  let acc = accOf(c, d);
  if (e == 0 || e == 1) { // SGDT / SIDT: 2-byte limit, 8-byte base
    if (!probeWrite(c, x, x.ea, 10, acc)) return;
    wr(c, x, x.ea, 2, e == 0 ? x.gdtrLimit : x.idtrLimit, acc);
    wr(c, x, x.ea + 2, 8, e == 0 ? x.gdtrBase : x.idtrBase, acc);
    return;
  }
  if (e == 2 || e == 3) { // LGDT / LIDT
    if (!cpl0(c, x)) return;
    let limit = rd(c, x, x.ea, 2, acc);
    if (x.stop != STOP_NONE) return;
    let base = rd(c, x, x.ea + 2, 8, acc);
    if (x.stop != STOP_NONE) return;
    if (!isCanonical(c, base)) { gp0(x); return; }
    if (e == 2) { x.gdtrBase = base; x.gdtrLimit = limit; }
    else { x.idtrBase = base; x.idtrLimit = limit; }
    return;
  }
  if (e == 4) { rmWrite(c, x, d, 2, c.cr0 & 0xFFFF); return; }
  if (e == 6) { lmsw(c, x, d); return; }
  if (e == 7) { // INVLPG
    if (!cpl0(c, x)) return;
    if (c.mode == MODE_SHADOW) {
      x.rip = x.nextRip;
      c.exitAddr = x.ea;
      x.exitValue = 0;
      exitTo(c, x, XEXIT_INVLPG);
      return;
    }
    invlpg(c, x.ea);
    return;
  }
  ud(x);
}

function lmsw(c: Cpu, x: X86, d: Insn): void {
  if (!cpl0(c, x)) return;
  let v = rmRead(c, x, d, 2);
  if (x.stop != STOP_NONE) return;
  // Loads PE MP EM TS; PE cannot be cleared.
  let n = (c.cr0 & ~(<u64>0xE)) | (v & 0xF);
  writeCr0(c, n);
  x.cr0Mirror = c.cr0;
}

function pkru(c: Cpu, x: X86, write: bool): void {
  if (c.pke == 0) { ud(x); return; }
  if ((getR64(x, 1) & 0xFFFF_FFFF) != 0 || (write && (getR64(x, 2) & 0xFFFF_FFFF) != 0)) { gp0(x); return; }
  if (write) { c.pkru = <u32>getR64(x, 0); refresh(c); }
  else { setR64(x, 0, <u64>c.pkru); setR64(x, 2, 0); }
}

// MOV to/from CR0 CR2 CR3 CR4 CR8 (64-bit operands; CR8 needs REX.R).
function movCr(c: Cpu, x: X86, d: Insn, write: bool): void {
  let n = d.reg;
  if (n == 1 || (n > 4 && n != 8)) { ud(x); return; }
  if (!cpl0(c, x)) return;
  let r = d.rm;
  if (!write) {
    let cr3 = c.mode == MODE_SHADOW ? x.guestCr3 : c.cr3;
    let cr0 = c.mode == MODE_SHADOW ? x.guestCr0 : c.cr0;
    let v: u64 = n == 0 ? cr0 : (n == 2 ? x.cr2 : (n == 3 ? cr3 : (n == 4 ? c.cr4 : x.cr8)));
    setR64(x, r, v);
    return;
  }
  let v = getR64(x, r);
  if (n == 0) {
    // Reserved 63:32; PG without PE; NW without CD; clearing PG in long mode.
    if ((v >> 32) != 0 || ((v & CR0_PG) != 0 && (v & 1) == 0) ||
        ((v & (<u64>1 << 29)) != 0 && (v & (<u64>1 << 30)) == 0) ||
        ((c.efer & EFER_LMA) != 0 && (v & CR0_PG) == 0)) { gp0(x); return; }
    if (c.mode == MODE_SHADOW) { shadowCrExit(c, x, 0, v | 0x10); return; }
    writeCr0(c, v | 0x10); // ET is hard-wired to 1
    return;
  }
  if (n == 2) { x.cr2 = v; return; }
  if (n == 3) {
    if (c.mode == MODE_SHADOW) {
      if ((v & 0x000F_FFFF_FFFF_FFFF & ~(((<u64>1) << c.maxPhysAddr) - 1)) != 0 && (v >> 63) == 0) { gp0(x); return; }
      x.rip = x.nextRip;
      c.exitValue = v;
      exitTo(c, x, XEXIT_CR3);
      return;
    }
    if (!writeCr3(c, v)) gp0(x);
    return;
  }
  if (n == 4) {
    // Implemented CR4 bits: TSD DE PSE PAE MCE PGE PCE OSFXSR OSXMMEXCPT LA57 PCIDE SMEP SMAP PKE.
    let ok: u64 = 0x0070_17FC | (<u64>1 << 17);
    if ((v & ~ok) != 0) { gp0(x); return; }
    if (c.mode == MODE_SHADOW) {
      let changed = c.cr4 ^ v;
      if ((changed & (<u64>1 << 12)) != 0 || (v & (<u64>1 << 5)) == 0) { gp0(x); return; }
      // Setting PCIDE: #GP unless in IA-32e mode with the (guest's) CR3[11:0] = 0 (SDM 4.10.1).
      if ((changed & v & (<u64>1 << 17)) != 0 && ((x.guestCr3 & 0xFFF) != 0 || (c.efer & EFER_LMA) == 0)) { gp0(x); return; }
      shadowCrExit(c, x, 4, v);
      return;
    }
    if (!writeCr4(c, v)) gp0(x);
    return;
  }
  if ((v >> 4) != 0) { gp0(x); return; } // CR8: TPR[7:4]
  x.cr8 = v;
  apicOf(x).tpr = <u32>v << 4;
  x.evCheck = 1;
}

// Shadow mode: a control-register write the hypervisor applies (the shadow tables encode
// rights under the guest's CR0.WP/CR4/EFER). The instruction retires first.
export function shadowCrExit(c: Cpu, x: X86, reg: u64, v: u64): void {
  x.rip = x.nextRip;
  c.exitAddr = reg;
  x.exitValue = v;
  exitTo(c, x, XEXIT_CR_WRITE);
}

// SYSCALL (SDM: RCX = next RIP, R11 = RFLAGS, RFLAGS &= ~FMASK, CS/SS from STAR[47:32]).
function syscall(c: Cpu, x: X86): void {
  if ((c.efer & 1) == 0) { ud(x); return; }
  let f = flags(c, x);
  setR64(x, 1, x.nextRip);
  setR64(x, 11, f & ~F_RF);
  c.rflags = (f & ~x.fmask & ~(F_RF | F_VM)) | 2;
  let base = (x.star >> 32) & 0xFFFF;
  x.cs = base & 0xFFFC;
  x.ss = (base + 8) & 0xFFFF;
  x.nextRip = x.lstar;
  let acChanged = ((f ^ c.rflags) & (<u64>1 << 18)) != 0;
  if (c.cpl != 0 || acChanged) { c.cpl = 0; refresh(c); }
}

// SYSRETQ: to CPL3 with CS = STAR[63:48]+16, SS = STAR[63:48]+8. A non-canonical RCX is
// #GP(0) in ring 0, before any state changes (Intel). Without REX.W (return to
// compatibility mode, not modeled): #UD.
function sysret(c: Cpu, x: X86, d: Insn): void {
  if ((c.efer & 1) == 0) { ud(x); return; }
  if (!cpl0(c, x)) return;
  if ((d.rex & 8) == 0) { ud(x); return; }
  let rcx = getR64(x, 1);
  if (!isCanonical(c, rcx)) { gp0(x); return; }
  materialize(c, x);
  let old = c.rflags;
  c.rflags = (getR64(x, 11) & 0x3C_7FD7) | 2;
  let base = (x.star >> 48) & 0xFFFF;
  x.cs = ((base + 16) & 0xFFFF) | 3;
  x.ss = ((base + 8) & 0xFFFF) | 3;
  x.nextRip = rcx;
  c.cpl = 3;
  x.evCheck = 1;
  refresh(c);
  if ((c.rflags & F_IF) != 0 && (old & F_IF) == 0) x.intShadow = 0;
}

// 66 0F 38 82: INVPCID type (register), 16-byte descriptor {pcid, la} in memory.
function invpcidOp(c: Cpu, x: X86, d: Insn): void {
  if ((d.pfx & P_OSZ) == 0 || d.mem == 0) { ud(x); return; }
  if (!cpl0(c, x)) return;
  let type = getR64(x, d.reg);
  let acc = accOf(c, d);
  let pcid = rd(c, x, x.ea, 8, acc);
  if (x.stop != STOP_NONE) return;
  let la = rd(c, x, x.ea + 8, 8, acc);
  if (x.stop != STOP_NONE) return;
  if (type > 3 || pcid > 0xFFF) { gp0(x); return; }
  if (c.mode == MODE_SHADOW) {
    // The checks invpcid() makes, before the exit (CR4 is the guest's under shadow paging).
    if ((type == 0 && !isCanonical(c, la)) || ((c.cr4 & (<u64>1 << 17)) == 0 && type <= 1 && pcid != 0)) { gp0(x); return; }
    x.rip = x.nextRip;
    c.exitAddr = la;
    x.exitValue = type | 0x100 | (pcid << 12); // marks INVPCID: type in bits 1:0, PCID in 23:12
    exitTo(c, x, XEXIT_INVLPG);
    return;
  }
  if (!invpcid(c, <u32>type, pcid, la)) gp0(x);
}

export { V_DB };
