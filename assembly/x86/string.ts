// String instructions MOVS STOS LODS CMPS SCAS (INS/OUTS: io.ts) with REP/REPE/REPNE,
// DF and the 67 prefix (ESI/EDI/ECX, wrapping at 4 GiB).
//
// REP semantics (SDM Vol. 2 "REP/REPE/REPNE"): RCX = 0 → nothing happens. Each element
// commits RSI/RDI/RCX as it completes, so a fault on element k leaves the registers
// describing elements 0..k-1 done and RIP on the instruction (the host or the guest's
// handler fixes the fault and the instruction resumes). At most REP_CHUNK elements run
// per step; then RIP stays on the instruction, so interrupts and the budget are seen
// between chunks, as a processor takes interrupts between iterations.

import { Cpu } from "../cpu";
import { X86, getR64, setR64, setReg, maskOf, STOP_NONE, F_DF, F_ZF } from "./state";
import { Insn, P_REP, P_REPNE, P_ASZ } from "./decode";
import { LF_SUB, setLazy, flags } from "./flags";
import { rd, wr, dataAcc } from "./vmem";
import { insOuts } from "./io";

export const REP_CHUNK: u32 = 4096;

export function stringOp(c: Cpu, x: X86, d: Insn): void {
  let op = d.op;
  if (op < 0x70) { insOuts(c, x, d); return; }
  let size: u32 = (op & 1) == 0 ? 1 : d.osz;
  let kind = op & 0xFE; // A4 MOVS, A6 CMPS, AA STOS, AC LODS, AE SCAS
  let rep = (d.pfx & (P_REP | P_REPNE)) != 0;
  let repne = (d.pfx & P_REPNE) != 0;
  let a32 = (d.pfx & P_ASZ) != 0;
  let am: u64 = a32 ? 0xFFFF_FFFF : 0xFFFF_FFFF_FFFF_FFFF;
  let step: u64 = (c.rflags & F_DF) != 0 ? 0 - <u64>size : <u64>size;
  let seg: u64 = d.seg == 4 ? x.fsBase : (d.seg == 5 ? x.gsBase : 0);
  let acc = dataAcc(c);
  let m = maskOf(size);
  let cx = getR64(x, 1) & am;
  if (rep && cx == 0) return;
  let compares = kind == 0xA6 || kind == 0xAE;
  for (let n: u32 = 0; n < REP_CHUNK; n++) {
    let si = getR64(x, 6) & am, di = getR64(x, 7) & am;
    if (kind == 0xA4) {
      let v = rd(c, x, seg + si, size, acc);
      if (x.stop != STOP_NONE) return;
      wr(c, x, di, size, v, acc);
      if (x.stop != STOP_NONE) return;
      setR64(x, 6, (si + step) & am);
      setR64(x, 7, (di + step) & am);
    } else if (kind == 0xAA) {
      wr(c, x, di, size, getR64(x, 0), acc);
      if (x.stop != STOP_NONE) return;
      setR64(x, 7, (di + step) & am);
    } else if (kind == 0xAC) {
      let v = rd(c, x, seg + si, size, acc);
      if (x.stop != STOP_NONE) return;
      setReg(x, 0, size, 1, v);
      setR64(x, 6, (si + step) & am);
    } else if (kind == 0xA6) {
      let a = rd(c, x, seg + si, size, acc);
      if (x.stop != STOP_NONE) return;
      let b = rd(c, x, di, size, acc);
      if (x.stop != STOP_NONE) return;
      setLazy(x, LF_SUB, size, a, b, (a - b) & m, 0);
      setR64(x, 6, (si + step) & am);
      setR64(x, 7, (di + step) & am);
    } else { // SCAS
      let b = rd(c, x, di, size, acc);
      if (x.stop != STOP_NONE) return;
      let a = getR64(x, 0) & m;
      setLazy(x, LF_SUB, size, a, b, (a - b) & m, 0);
      setR64(x, 7, (di + step) & am);
    }
    if (!rep) return;
    cx = (cx - 1) & am;
    setR64(x, 1, a32 ? cx : cx);
    if (cx == 0) return;
    if (compares) {
      let zf = (flags(c, x) & F_ZF) != 0;
      if (repne ? zf : !zf) return;
    }
  }
  x.nextRip = x.rip; // more elements: run the instruction again
}
