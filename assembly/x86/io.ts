// Port I/O: IN/OUT (imm8 and DX forms, 1/2/4 bytes) and INS/OUTS with REP, each an IO
// exit to the host, as KVM_RUN's KVM_EXIT_IO. The exit carries port, size, direction and
// (OUT) the data; the host may read and change the whole register file before it runs
// the vCPU again.
//
//   OUT / OUTS element: completes before the exit. RIP is past the instruction, or still
//     on a REP OUTS that has elements left (RSI/RCX already count the one sent).
//   IN / INS element: stays pending. RIP is on the instruction during the exit. The host
//     supplies the data with setIoData (default all ones, a floating bus); the next run
//     first completes it: IN merges the data into AL/AX/EAX (EAX zero-extends RAX), INS
//     stores it at [RDI] and steps RDI/RCX; then RIP moves on (or stays on a REP INS
//     with elements left). A backdoor `inl (%dx)` is thus one exit: the handler reads
//     EBX/ECX/ESI, writes its outputs with setRegisters and EAX's with setIoData.
//
// Permission (SDM Vol. 1 §19.5): CPL > IOPL needs the TSS I/O bitmap bits for
// port..port+size-1 clear; the TSS is read as an implicit supervisor access; a bitmap
// beyond the TSS limit (or no TSS) is #GP(0).

import { ACC_IMPLICIT } from "../entry";
import { Cpu } from "../cpu";
import {
  X86, getR64, setR64, setReg, maskOf, gp0, exitTo, STOP_NONE, F_IOPL, F_DF, XEXIT_IO,
} from "./state";
import { Insn, P_REP, P_REPNE, P_ASZ } from "./decode";
import { rd, rdSlow, wr, dataAcc, probeWrite } from "./vmem";

export const IO_NONE: u32 = 0;
export const IO_IN: u32 = 1;
export const IO_INS: u32 = 2;

function allowed(c: Cpu, x: X86, port: u32, size: u32): bool {
  if (<u64>c.cpl <= ((c.rflags & F_IOPL) >> 12)) return true;
  if (x.trLimit < 0x67) { gp0(x); return false; }
  let base = rdSlow(c, x, x.trBase + 0x66, 2, ACC_IMPLICIT);
  if (x.stop != STOP_NONE) return false;
  let at = base + <u64>(port >> 3);
  if (at + 1 > x.trLimit) { gp0(x); return false; }
  let bits = rdSlow(c, x, x.trBase + at, 2, ACC_IMPLICIT);
  if (x.stop != STOP_NONE) return false;
  let want = ((<u64>1 << <u64>size) - 1) << <u64>(port & 7);
  if ((bits & want) != 0) { gp0(x); return false; }
  return true;
}

@inline function ioSize(d: Insn): u32 {
  return (d.op & 1) == 0 ? 1 : (d.osz == 2 ? 2 : 4);
}

function ioExit(c: Cpu, x: X86, port: u32, size: u32, write: bool, v: u64): void {
  c.exitAddr = <u64>port;
  x.exitSize = size;
  x.exitWrite = write ? 1 : 0;
  x.exitValue = write ? v & maskOf(size) : 0;
  c.errorCode = size | (write ? 0 : 0x100);
  exitTo(c, x, XEXIT_IO);
}

// E4/E5 (imm8) and EC/ED (DX).
export function portIn(c: Cpu, x: X86, d: Insn): void {
  let port = d.op < 0xE8 ? <u32>d.imm & 0xFF : <u32>getR64(x, 2) & 0xFFFF;
  let size = ioSize(d);
  if (!allowed(c, x, port, size)) return;
  x.ioPending = IO_IN;
  x.ioSize = size;
  x.ioPort = port;
  x.ioData = 0xFFFF_FFFF;
  x.exitLen = d.len;
  ioExit(c, x, port, size, false, 0);
}

// E6/E7 (imm8) and EE/EF (DX).
export function portOut(c: Cpu, x: X86, d: Insn): void {
  let port = d.op < 0xE8 ? <u32>d.imm & 0xFF : <u32>getR64(x, 2) & 0xFFFF;
  let size = ioSize(d);
  if (!allowed(c, x, port, size)) return;
  x.rip = x.nextRip;
  ioExit(c, x, port, size, true, getR64(x, 0));
}

// 6C/6D INS and 6E/6F OUTS: one element per exit.
export function insOuts(c: Cpu, x: X86, d: Insn): void {
  let size = ioSize(d);
  let port = <u32>getR64(x, 2) & 0xFFFF;
  let rep = (d.pfx & (P_REP | P_REPNE)) != 0;
  let a32 = (d.pfx & P_ASZ) != 0;
  let am: u64 = a32 ? 0xFFFF_FFFF : 0xFFFF_FFFF_FFFF_FFFF;
  let cx = getR64(x, 1) & am;
  if (rep && cx == 0) return;
  if (!allowed(c, x, port, size)) return;
  let step: u64 = (c.rflags & F_DF) != 0 ? 0 - <u64>size : <u64>size;
  if (d.op < 0x6E) { // INS: check [RDI] is writable now, store at completion
    let di = getR64(x, 7) & am;
    if (!probeWrite(c, x, di, size, dataAcc(c))) return;
    x.ioPending = IO_INS;
    x.ioSize = size;
    x.ioPort = port;
    x.ioData = 0xFFFF_FFFF;
    x.ioAddr32 = a32 ? 1 : 0;
    x.ioRep = rep ? 1 : 0;
    x.exitLen = d.len;
    ioExit(c, x, port, size, false, 0);
    return;
  }
  let seg: u64 = d.seg == 4 ? x.fsBase : (d.seg == 5 ? x.gsBase : 0);
  let si = getR64(x, 6) & am;
  let v = rd(c, x, seg + si, size, dataAcc(c));
  if (x.stop != STOP_NONE) return;
  setR64(x, 6, (si + step) & am);
  let more = false;
  if (rep) {
    cx = (cx - 1) & am;
    setR64(x, 1, cx);
    more = cx != 0;
  }
  if (!more) x.rip = x.nextRip;
  ioExit(c, x, port, size, true, v);
}

// Completes a pending IN/INS with the host's data (start of a run). Returns false if
// the INS store faulted (x.stop set; the element is dropped, RIP stays on the INS).
export function completeIo(c: Cpu, x: X86): bool {
  let kind = x.ioPending;
  x.ioPending = IO_NONE;
  let size = x.ioSize;
  if (kind == IO_IN) {
    setReg(x, 0, size, 1, x.ioData & maskOf(size));
    x.rip += <u64>x.exitLen;
    return true;
  }
  let am: u64 = x.ioAddr32 != 0 ? 0xFFFF_FFFF : 0xFFFF_FFFF_FFFF_FFFF;
  let di = getR64(x, 7) & am;
  wr(c, x, di, size, x.ioData, dataAcc(c));
  if (x.stop != STOP_NONE) return false;
  let step: u64 = (c.rflags & F_DF) != 0 ? 0 - <u64>size : <u64>size;
  setR64(x, 7, (di + step) & am);
  let more = false;
  if (x.ioRep != 0) {
    let cx = (getR64(x, 1) - 1) & am;
    setR64(x, 1, cx);
    more = cx != 0;
  }
  if (!more) x.rip += <u64>x.exitLen;
  return true;
}
