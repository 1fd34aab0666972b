// Event delivery in 64-bit mode through the IDT (SDM Vol. 3 §6.14), IRET, and the
// descriptor-table reads they need. Every IDT, GDT and TSS read is an implicit
// supervisor access through the MMU.
//
// 64-bit IDT gate (16 bytes at IDTR.base + vector*16):
//   63..48 offset 31:16 | 47 P | 46..45 DPL | 44 0 | 43..40 type (E int, F trap) |
//   39..35 0 | 34..32 IST | 31..16 selector | 15..0 offset 15:0
//   bytes 8..11: offset 63:32; 12..15 reserved
// Code/data descriptor (8 bytes): 55 G | 54 D/B | 53 L | 47 P | 46..45 DPL | 44 S |
//   43..40 type (bit 3 code; code: 2 readable, 1 conforming; data: 1 writable) |
//   base 31:24 at 63..56, base 23:0 at 39..16, limit at 51..48 and 15..0.
// 64-bit TSS: RSP0..2 at +4/+12/+20, IST1..7 at +0x24.., I/O map base (u16) at +0x66.
//
// Frame pushed (8 bytes each, RSP first aligned down to 16): SS, RSP, RFLAGS, CS, RIP,
// [error code]. A fault pushes the faulting RIP, a trap or INT n the next one.

import { ACC_IMPLICIT } from "../entry";
import { Cpu, canonical, refresh } from "../cpu";
import {
  X86, getR64, setR64, raise, STOP_NONE, REG_RSP, V_GP, V_NP, V_SS, V_TS, V_DF, V_PF,
  F_TF, F_NT, F_RF, F_VM, F_IF, F_IOPL, F_WRITABLE, F_AC,
} from "./state";
import { rdSlow, wrSlow, probeWrite, ACC_STACK } from "./vmem";
import { flags, materialize } from "./flags";

export const EV_EXCEPTION: u32 = 0; // raised by an instruction (EXT 0)
export const EV_SOFT: u32 = 1;      // INT n / INT3 / INTO: DPL checked
export const EV_EXTERNAL: u32 = 2;  // interrupt from the APIC or the host (EXT 1)

// Reads the 8-byte GDT descriptor of sel (LDT selectors are not supported: #GP(sel)).
// Returns 0 and stops with #GP(sel|ext) when sel is outside the GDT.
export function readDesc(c: Cpu, x: X86, sel: u32, ext: u32): u64 {
  let idx = <u64>(sel & 0xFFF8);
  if ((sel & 4) != 0 || idx + 7 > x.gdtrLimit) { raise(x, V_GP, true, (sel & 0xFFFC) | ext); return 0; }
  return rdSlow(c, x, x.gdtrBase + idx, 8, ACC_IMPLICIT);
}

@inline export function descDpl(dsc: u64): u32 { return <u32>(dsc >> 45) & 3; }
@inline export function descPresent(dsc: u64): bool { return (dsc & (<u64>1 << 47)) != 0; }
@inline export function descType(dsc: u64): u32 { return <u32>(dsc >> 40) & 15; }
@inline export function descS(dsc: u64): bool { return (dsc & (<u64>1 << 44)) != 0; }
@inline export function isCode64(dsc: u64): bool {
  return descS(dsc) && (descType(dsc) & 8) != 0 && (dsc & (<u64>1 << 53)) != 0 && (dsc & (<u64>1 << 54)) == 0;
}
@inline export function isWritableData(dsc: u64): bool {
  return descS(dsc) && (descType(dsc) & 10) == 2;
}
@inline export function descBase32(dsc: u64): u64 {
  return ((dsc >> 16) & 0xFF_FFFF) | (((dsc >> 56) & 0xFF) << 24);
}

function setCpl(c: Cpu, cpl: u32): void {
  if (c.cpl == cpl) return;
  c.cpl = cpl;
  refresh(c); // the fast path's rights depend on the CPL
}

// Delivers one event; on a fault during delivery x.stop describes it (nothing committed
// except CR2 for a #PF, which the SDM writes even if delivery escalates).
export function deliver(c: Cpu, x: X86, vec: u32, hasErr: bool, err: u32, retRip: u64, kind: u32, ext: u32): void {
  let gateErr = vec * 8 + 2 + ext;
  if (<u64>vec * 16 + 15 > x.idtrLimit) { raise(x, V_GP, true, gateErr); return; }
  let ga = x.idtrBase + <u64>vec * 16;
  let lo = rdSlow(c, x, ga, 8, ACC_IMPLICIT);
  if (x.stop != STOP_NONE) return;
  let hi = rdSlow(c, x, ga + 8, 8, ACC_IMPLICIT);
  if (x.stop != STOP_NONE) return;
  let type = <u32>(lo >> 40) & 15;
  if (type != 0xE && type != 0xF) { raise(x, V_GP, true, gateErr); return; }
  if (kind == EV_SOFT && ((<u32>(lo >> 45) & 3) < c.cpl)) { raise(x, V_GP, true, vec * 8 + 2); return; }
  if ((lo & (<u64>1 << 47)) == 0) { raise(x, V_NP, true, gateErr); return; }
  let sel = <u32>(lo >> 16) & 0xFFFF;
  let target = (lo & 0xFFFF) | ((lo >> 32) & 0xFFFF_0000) | ((hi & 0xFFFF_FFFF) << 32);
  let ist = <u32>(lo >> 32) & 7;
  if ((sel & 0xFFFC) == 0) { raise(x, V_GP, true, ext); return; }
  let cs = readDesc(c, x, sel, ext);
  if (x.stop != STOP_NONE) return;
  let dpl = descDpl(cs);
  if (!isCode64(cs) || dpl > c.cpl) { raise(x, V_GP, true, (sel & 0xFFFC) | ext); return; }
  if (!descPresent(cs)) { raise(x, V_NP, true, (sel & 0xFFFC) | ext); return; }
  let newCpl = (descType(cs) & 4) != 0 ? c.cpl : dpl; // conforming code keeps the CPL
  if (!canonical(c, target)) { raise(x, V_GP, true, ext); return; }
  let rsp = getR64(x, REG_RSP);
  let ss = x.ss;
  if (ist != 0 || newCpl < c.cpl) {
    let off: u64 = ist != 0 ? 0x24 + <u64>(ist - 1) * 8 : 4 + <u64>newCpl * 8;
    if (off + 7 > x.trLimit) { raise(x, V_TS, true, (<u32>x.tr & 0xFFFC) | ext); return; }
    rsp = rdSlow(c, x, x.trBase + off, 8, ACC_IMPLICIT);
    if (x.stop != STOP_NONE) return;
    if (newCpl < c.cpl) ss = <u64>newCpl; // a null SS with RPL = new CPL
  }
  let oldRsp = getR64(x, REG_RSP);
  rsp &= ~(<u64>15);
  let n: u32 = hasErr ? 6 : 5;
  let top = rsp - <u64>n * 8;
  let acc = (newCpl == 3 ? <u32>4 : 0) | ACC_STACK;
  // The first push (SS, at rsp-8) faults first, as the processor's sequence of pushes does.
  if (!probeWrite(c, x, rsp - 8, 8, acc) || !probeWrite(c, x, top, n * 8, acc)) return;
  let rf = flags(c, x);
  let p = rsp;
  p -= 8; wrSlow(c, x, p, 8, x.ss, acc);
  p -= 8; wrSlow(c, x, p, 8, oldRsp, acc);
  p -= 8; wrSlow(c, x, p, 8, rf, acc);
  p -= 8; wrSlow(c, x, p, 8, x.cs, acc);
  p -= 8; wrSlow(c, x, p, 8, retRip, acc);
  if (hasErr) { p -= 8; wrSlow(c, x, p, 8, <u64>err, acc); }
  if (x.stop != STOP_NONE) return;
  setR64(x, REG_RSP, top);
  x.ss = ss;
  x.cs = <u64>((sel & 0xFFFC) | newCpl);
  x.rip = target;
  let nf = rf & ~(F_TF | F_NT | F_RF | F_VM);
  if (type == 0xE) nf &= ~F_IF;
  c.rflags = nf;
  x.intShadow = 0;
  setCpl(c, newCpl);
}

// Exception classes for the double-fault rule (SDM Vol. 3 Table 6-5).
@inline function contributory(v: u32): bool { return v == 0 || (v >= 10 && v <= 13); }

export const DE_DELIVERED: u32 = 0;
export const DE_EXIT: u32 = 1;      // an exit during delivery: x.evPending holds the event
export const DE_SHUTDOWN: u32 = 2;  // triple fault
export const DE_EXCEPTION: u32 = 3; // a fault during delivery whose vector is in the bitmap

// Delivers an event, escalating faults during delivery: contributory after contributory,
// or contributory/#PF after #PF → #DF; a contributory fault or #PF while delivering #DF →
// triple fault. Other nested faults are delivered instead (serially). An exit during
// delivery leaves the event pending (x.evPending) for the next run.
export function deliverEvent(c: Cpu, x: X86, vec: u32, hasErr: bool, err: u32, retRip: u64,
                             kind: u32, ext: u32, cr2: u64, isPf: bool): u32 {
  for (let round = 0; round < 8; round++) {
    if (round > 0) retRip = x.rip; // a fault during delivery points at the instruction
    if (isPf) x.cr2 = cr2;
    x.stop = STOP_NONE;
    deliver(c, x, vec, hasErr, err, retRip, kind, ext);
    if (x.stop == STOP_NONE) { x.evPending = 0; return DE_DELIVERED; }
    if (x.stop != 1) { // an exit: deliver again after the host fixed it
      x.evPending = 1; x.evVec = vec; x.evHasErr = hasErr ? 1 : 0; x.evErr = err;
      x.evRip = retRip; x.evKind = kind; x.evExt = ext; x.evCr2 = cr2; x.evIsPf = isPf ? 1 : 0;
      return DE_EXIT;
    }
    x.evPending = 0;
    let v2 = x.excVector;
    let first = kind == EV_EXCEPTION ? vec : 0xFF;
    if (first == V_DF && (contributory(v2) || v2 == V_PF)) { x.stop = STOP_NONE; return DE_SHUTDOWN; }
    let df = (contributory(first) && contributory(v2)) || (first == V_PF && (contributory(v2) || v2 == V_PF));
    // Delivery of an external event makes the nested fault external too.
    let ext2: u32 = kind == EV_EXTERNAL || ext != 0 ? 1 : 0;
    if (df) {
      if (x.excIsPf != 0) x.cr2 = x.excCr2; // CR2 is written even though #PF escalates
      x.excVector = V_DF; x.excHasError = 1; x.excError = 0; x.excIsPf = 0;
    }
    if (((x.excBitmap >> x.excVector) & 1) != 0) {
      x.excTrap = 0; x.excSoft = 0; x.excIntN = 0;
      return DE_EXCEPTION;
    }
    vec = x.excVector; hasErr = x.excHasError != 0; err = x.excError;
    isPf = x.excIsPf != 0;
    cr2 = x.excCr2;
    kind = EV_EXCEPTION;
    ext = ext2;
  }
  x.stop = STOP_NONE;
  return DE_SHUTDOWN;
}

// IRET / IRETQ (operand size 4 or 8; 2 with 66): pops RIP, CS, RFLAGS, RSP, SS.
export function iretOp(c: Cpu, x: X86, size: u32): void {
  let sp = getR64(x, REG_RSP);
  let acc = (c.cpl == 3 ? <u32>4 : 0) | ACC_STACK;
  let m: u64 = size == 8 ? 0xFFFF_FFFF_FFFF_FFFF : (<u64>1 << (<u64>size * 8)) - 1;
  let rip = rdSlow(c, x, sp, size, acc) & m;
  if (x.stop != STOP_NONE) return;
  let cs = <u32>(rdSlow(c, x, sp + <u64>size, size, acc) & 0xFFFF);
  if (x.stop != STOP_NONE) return;
  let fl = rdSlow(c, x, sp + 2 * <u64>size, size, acc) & m;
  if (x.stop != STOP_NONE) return;
  let rsp = rdSlow(c, x, sp + 3 * <u64>size, size, acc) & m;
  if (x.stop != STOP_NONE) return;
  let ss = <u32>(rdSlow(c, x, sp + 4 * <u64>size, size, acc) & 0xFFFF);
  if (x.stop != STOP_NONE) return;
  let rpl = cs & 3;
  if ((cs & 0xFFFC) == 0) { raise(x, V_GP, true, 0); return; }
  if (rpl < c.cpl) { raise(x, V_GP, true, cs & 0xFFFC); return; }
  let cd = readDesc(c, x, cs, 0);
  if (x.stop != STOP_NONE) return;
  let conforming = (descType(cd) & 4) != 0;
  if (!isCode64(cd) || (conforming ? descDpl(cd) > rpl : descDpl(cd) != rpl)) { raise(x, V_GP, true, cs & 0xFFFC); return; }
  if (!descPresent(cd)) { raise(x, V_NP, true, cs & 0xFFFC); return; }
  if ((ss & 0xFFFC) == 0) {
    if (rpl == 3) { raise(x, V_GP, true, 0); return; }
    // a null SS is allowed when returning to CPL < 3
  } else {
    if ((ss & 3) != rpl) { raise(x, V_GP, true, ss & 0xFFFC); return; }
    let sd = readDesc(c, x, ss, 0);
    if (x.stop != STOP_NONE) return;
    if (!isWritableData(sd) || descDpl(sd) != rpl) { raise(x, V_GP, true, ss & 0xFFFC); return; }
    if (!descPresent(sd)) { raise(x, V_SS, true, ss & 0xFFFC); return; }
  }
  if (!canonical(c, rip)) { raise(x, V_GP, true, 0); return; }
  materialize(c, x);
  let mask = F_WRITABLE | F_RF;
  if (c.cpl != 0) mask &= ~F_IOPL;
  if (<u64>c.cpl > ((c.rflags & F_IOPL) >> 12)) mask &= ~F_IF;
  if (size == 2) mask &= 0xFFFF;
  let old = c.rflags;
  c.rflags = (old & ~mask) | (fl & mask) | 2;
  x.rip = rip;
  x.nextRip = rip;
  x.evCheck = 1;
  x.cs = <u64>cs;
  x.ss = <u64>ss;
  setR64(x, REG_RSP, rsp);
  if (rpl != c.cpl || ((old ^ c.rflags) & F_AC) != 0) { c.cpl = rpl; refresh(c); }
}

export { V_SS };
