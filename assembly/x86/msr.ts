// RDMSR/WRMSR, CPUID and RDTSC/RDTSCP.
//
// MSRs (CPL0 only; any other index, a reserved bit or a non-canonical address → #GP(0)):
//   0x10 TSC, 0x1B APIC_BASE, 0x277 PAT, 0x6E0 TSC_DEADLINE, 0x802-0x83F x2APIC,
//   C000_0080 EFER (SCE 0, LME 8, LMA 10 read-only, NXE 11), C000_0081 STAR,
//   C000_0082 LSTAR, C000_0083 CSTAR, C000_0084 FMASK, C000_0100 FS_BASE,
//   C000_0101 GS_BASE, C000_0102 KERNEL_GS_BASE, C000_0103 TSC_AUX.
// The TSC is the virtual clock: insnCycles per retired instruction plus whatever the
// host adds (time spent halted, exits).
//
// CPUID advertises only what is implemented (see cpuidLeaf).

import { EFER_LME, EFER_LMA, EFER_NXE, CR0_PG } from "../entry";
import { Cpu, refresh, canonical, flushAll, MODE_SHADOW } from "../cpu";
import { shadowCrExit } from "./system";
import { X86, getR64, setR64, gp0, STOP_NONE } from "./state";
import {
  Apic, ppr, eoi, setBit, currentCount, writeInitial, writeLvtTimer, writeDeadline, highest,
} from "./apic";

@inline export function tscNow(x: X86): u64 { return x.tsc + x.nInsns * x.insnCycles; }
@inline export function apicOf(x: X86): Apic { return changetype<Apic>(x.apic); }

export function rdtsc(c: Cpu, x: X86, aux: bool): void {
  if (c.cpl != 0 && (c.cr4 & 4) != 0) { gp0(x); return; } // CR4.TSD
  let t = tscNow(x);
  setR64(x, 0, t & 0xFFFF_FFFF);
  setR64(x, 2, t >> 32);
  if (aux) setR64(x, 1, x.tscAux & 0xFFFF_FFFF);
}

// Reads an MSR; returns false (#GP) for an unknown one.
function readMsr(c: Cpu, x: X86, idx: u32): bool {
  let a = apicOf(x);
  let v: u64 = 0;
  switch (idx) {
    case 0x10: v = tscNow(x); break;
    case 0x1B: v = a.base; break;
    case 0x277: v = x.pat; break;
    case 0x6E0: v = a.deadline; break;
    case 0xC000_0080: v = c.efer; break;
    case 0xC000_0081: v = x.star; break;
    case 0xC000_0082: v = x.lstar; break;
    case 0xC000_0083: v = x.cstar; break;
    case 0xC000_0084: v = x.fmask; break;
    case 0xC000_0100: v = x.fsBase; break;
    case 0xC000_0101: v = x.gsBase; break;
    case 0xC000_0102: v = x.kernelGsBase; break;
    case 0xC000_0103: v = x.tscAux; break;
    case 0x802: v = 0; break;              // x2APIC ID
    case 0x803: v = 0x0005_0014; break;    // version 0x14, 6 LVT entries
    case 0x808: v = <u64>a.tpr; break;
    case 0x80A: v = <u64>ppr(a); break;
    case 0x80F: v = <u64>a.svr; break;
    case 0x830: v = a.icr; break;
    case 0x832: v = <u64>a.lvtTimer; break;
    case 0x838: v = <u64>a.initial; break;
    case 0x839: v = currentCount(a, tscNow(x)); break;
    case 0x83E: v = <u64>a.divide; break;
    default:
      if (idx >= 0x810 && idx <= 0x817) { v = isrIrrWord(a, true, idx - 0x810); break; }
      if (idx >= 0x820 && idx <= 0x827) { v = isrIrrWord(a, false, idx - 0x820); break; }
      return false;
  }
  setR64(x, 0, v & 0xFFFF_FFFF);
  setR64(x, 2, v >> 32);
  return true;
}

function isrIrrWord(a: Apic, isr: bool, i: u32): u64 {
  let p = changetype<usize>(a) + (isr ? 32 : 0) + <usize>(i >> 1) * 8;
  return (load<u64>(p) >> ((<u64>i & 1) * 32)) & 0xFFFF_FFFF;
}

function validPat(v: u64): bool {
  for (let i: u64 = 0; i < 8; i++) {
    let t = (v >> (i * 8)) & 0xFF;
    if (t == 2 || t == 3 || t > 7) return false;
  }
  return true;
}

function writeMsr(c: Cpu, x: X86, idx: u32, v: u64): bool {
  let a = apicOf(x);
  switch (idx) {
    case 0x10: x.tsc = v - x.nInsns * x.insnCycles; return true;
    case 0x1B: // only the x2APIC-enabled state is modeled: the mode bits must stay
      if ((v & 0xC00) != 0xC00 || (v & ~(<u64>0xF_FFFF_FD00)) != 0) return false;
      a.base = v; return true;
    case 0x277: if (!validPat(v)) return false; x.pat = v; return true;
    case 0x6E0: writeDeadline(a, v); return true;
    case 0xC000_0080: {
      if ((v & ~(<u64>0xD01)) != 0) return false; // SCE LME LMA NXE
      // LME cannot change while paging is on; LMA is read-only (follows LME and PG).
      if ((c.cr0 & CR0_PG) != 0 && ((v ^ c.efer) & EFER_LME) != 0) return false;
      if (c.mode == MODE_SHADOW) { shadowCrExit(c, x, 0xC000_0080, (v & ~EFER_LMA) | (c.efer & EFER_LMA)); return true; }
      let nxChanged = ((v ^ c.efer) & EFER_NXE) != 0;
      c.efer = (v & ~EFER_LMA) | (c.efer & EFER_LMA);
      refresh(c);
      if (nxChanged) flushAll(c); // cached rights were computed under the old NXE
      return true;
    }
    case 0xC000_0081: x.star = v; return true;
    case 0xC000_0082: if (!canonical(c, v)) return false; x.lstar = v; return true;
    case 0xC000_0083: if (!canonical(c, v)) return false; x.cstar = v; return true;
    case 0xC000_0084: if ((v >> 32) != 0) return false; x.fmask = v; return true;
    case 0xC000_0100: if (!canonical(c, v)) return false; x.fsBase = v; return true;
    case 0xC000_0101: if (!canonical(c, v)) return false; x.gsBase = v; return true;
    case 0xC000_0102: if (!canonical(c, v)) return false; x.kernelGsBase = v; return true;
    case 0xC000_0103: if ((v >> 32) != 0) return false; x.tscAux = v; return true;
    case 0x808: if (v > 0xFF) return false; a.tpr = <u32>v; x.cr8 = v >> 4; return true;
    case 0x80B: if (v != 0) return false; eoi(a); return true;
    case 0x80F: if ((v & ~(<u64>0x11FF)) != 0) return false; a.svr = <u32>v; return true;
    case 0x830: { // ICR: fixed self-IPIs (shorthand self, or destination = own ID 0)
      a.icr = v & ~(<u64>1 << 12);
      let vec = <u32>v & 0xFF;
      let mode = (<u32>v >> 8) & 7, sh = (<u32>v >> 18) & 3;
      if (mode == 0 && vec >= 16 && (sh == 1 || sh == 2 || (sh == 0 && (v >> 32) == 0))) setBit(a, false, vec);
      return true;
    }
    case 0x832: return writeLvtTimer(a, <u32>v) && (v >> 32) == 0;
    case 0x838: if ((v >> 32) != 0) return false; writeInitial(a, <u32>v, tscNow(x)); return true;
    case 0x83E: if ((v & ~(<u64>0xB)) != 0) return false; a.divide = <u32>v; return true;
    case 0x83F: if (v > 0xFF || v < 16) return false; setBit(a, false, <u32>v); return true;
  }
  return false;
}

export function rdmsr(c: Cpu, x: X86): void {
  if (c.cpl != 0) { gp0(x); return; }
  if (!readMsr(c, x, <u32>getR64(x, 1))) gp0(x);
}

export function wrmsr(c: Cpu, x: X86): void {
  if (c.cpl != 0) { gp0(x); return; }
  let v = (getR64(x, 2) << 32) | (getR64(x, 0) & 0xFFFF_FFFF);
  if (!writeMsr(c, x, <u32>getR64(x, 1), v)) gp0(x);
  x.evCheck = 1; // the TPR, EOI, timer or an IPI may make an interrupt deliverable
}

// CPUID leaves. Only implemented features are reported:
//   1: ECX CX16(13) PCID(17) x2APIC(21) POPCNT(23) TSC-deadline(24) hypervisor(31);
//      EDX TSC(4) MSR(5) PAE(6) CX8(8) APIC(9) PGE(13) CMOV(15) PAT(16) CLFSH(19).
//      No FPU/SSE: x87 and SSE instructions raise #UD.
//   7.0: EBX SMEP(7) INVPCID(10) SMAP(20); ECX PKU(3) OSPKE(4, = CR4.PKE) LA57(16).
//   8000_0001: ECX LAHF64(0) ABM/LZCNT(5); EDX SYSCALL(11) NX(20) 1G(26) RDTSCP(27) LM(29).
//   8000_0008: EAX physical bits 7:0, linear bits 15:8.
//   15h (TSC and core crystal clock, SDM vol. 2A CPUID): EAX denominator, EBX numerator of
//      the TSC / crystal ratio, ECX crystal Hz; TSC Hz = ECX * EBX / EAX. The APIC timer
//      counts TSC cycles here, so the "crystal" is the TSC itself: 1/1, ECX = tscHz.
//      All zero (not enumerated) when the host set no frequency or it exceeds 32 bits.
//   16h (processor frequency): EAX 15:0 base MHz, EBX 15:0 maximum MHz, ECX 15:0 bus
//      (reference) MHz; all the TSC rate (no turbo; the bus is the APIC timer's clock).
// TZCNT runs (as on BMI1 CPUs) but BMI1 is not advertised: ANDN/BEXTR/BLSI are VEX-encoded
// and raise #UD.
export function cpuid(c: Cpu, x: X86): void {
  let leaf = <u32>getR64(x, 0), sub = <u32>getR64(x, 1);
  let a: u32 = 0, b: u32 = 0, cc: u32 = 0, d: u32 = 0;
  if (leaf == 0) { a = 0x16; b = 0x756E_6547; d = 0x4965_6E69; cc = 0x6C65_746E; }
  else if (leaf == 1) {
    a = 0x0005_06E3;
    b = 0x0000_0800;
    // PCID(17) in every mode: under shadow paging the shadow CR3 carries the guest's PCID.
    cc = (1 << 13) | (1 << 17) | (1 << 21) | (1 << 23) | (1 << 24) | (1 << 31);
    d = (1 << 4) | (1 << 5) | (1 << 6) | (1 << 8) | (1 << 9) | (1 << 13) | (1 << 15) | (1 << 16) | (1 << 19);
  } else if (leaf == 7 && sub == 0) {
    b = (1 << 7) | (1 << 10) | (1 << 20);
    cc = (1 << 3) | (c.pke != 0 ? 1 << 4 : 0) | (1 << 16);
  } else if (leaf == 0x15) {
    if (x.tscHz != 0 && x.tscHz <= 0xFFFF_FFFF) { a = 1; b = 1; cc = <u32>x.tscHz; }
  } else if (leaf == 0x16) {
    let mhz = <u32>(x.tscHz / 1_000_000);
    if (mhz > 0xFFFF) mhz = 0xFFFF;
    a = mhz; b = mhz; cc = mhz;
  } else if (leaf == 0x8000_0000) { a = 0x8000_0008; }
  else if (leaf == 0x8000_0001) {
    cc = 1 | (1 << 5);
    d = (1 << 11) | (1 << 20) | (1 << 26) | (1 << 27) | (1 << 29);
  } else if (leaf == 0x8000_0008) {
    a = c.maxPhysAddr | (57 << 8);
  }
  setR64(x, 0, <u64>a);
  setR64(x, 3, <u64>b);
  setR64(x, 1, <u64>cc);
  setR64(x, 2, <u64>d);
}

export { STOP_NONE, highest };
