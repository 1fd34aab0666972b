// The interpreter's part of the vCPU state. It extends the shared Cpu (assembly/cpu.ts:
// CR0/CR3/CR4/EFER/RFLAGS/CPL/PKRU, TLBs, counters) through Cpu.x86, so the batched
// access engine and the instruction interpreter see one vCPU.
//
// Register file: the first REG_COUNT u64 fields, in REG_NAMES order, are read and written
// by the host directly (src/core/x86.ts) around x86Store/x86Load. Entries marked (mirror)
// live in Cpu and are copied in by syncOut and back by syncIn.
//
//   index  name          notes
//   0..15  rax..r15      ModRM order: rax rcx rdx rbx rsp rbp rsi rdi r8..r15
//   16     rip
//   17     rflags        (mirror; arithmetic flags are lazy, see flags.ts)
//   18..23 cs ss ds es fs gs   selectors (bases of CS/SS/DS/ES are 0 in 64-bit mode)
//   24..26 fsBase gsBase kernelGsBase
//   27..30 gdtrBase gdtrLimit idtrBase idtrLimit
//   31..33 tr trBase trLimit
//   34..39 cr0 cr2 cr3 cr4 cr8 efer   (cr0 cr3 cr4 efer mirror; cr8 = TPR[7:4])
//   40     cpl           (mirror)
//   41..47 star lstar cstar fmask tscAux pat tsc

import { Cpu } from "../cpu";

export const REG_NAMES =
  "rax,rcx,rdx,rbx,rsp,rbp,rsi,rdi,r8,r9,r10,r11,r12,r13,r14,r15,rip,rflags," +
  "cs,ss,ds,es,fs,gs,fsBase,gsBase,kernelGsBase,gdtrBase,gdtrLimit,idtrBase,idtrLimit," +
  "tr,trBase,trLimit,cr0,cr2,cr3,cr4,cr8,efer,cpl,star,lstar,cstar,fmask,tscAux,pat,tsc";
export const REG_COUNT: i32 = 48;
export const REG_RSP: u32 = 4;
export const REG_RIP: i32 = 16;

// Exit reasons of the interpreter's run loop. 0..10 are the batch engine's (entry.ts).
export const XEXIT_NONE: u32 = 0;
export const XEXIT_PF: u32 = 1;        // shadow mode: a #PF on the shadow tables (host decides)
export const XEXIT_MMIO: u32 = 4;
export const XEXIT_EPT_VIOLATION: u32 = 5;
export const XEXIT_EPT_MISCONFIG: u32 = 6;
export const XEXIT_IO: u32 = 7;
export const XEXIT_HLT: u32 = 8;
export const XEXIT_CR3: u32 = 9;       // shadow mode: MOV to CR3
export const XEXIT_INVLPG: u32 = 10;   // shadow mode: INVLPG / INVPCID
export const XEXIT_SHUTDOWN: u32 = 11; // triple fault
export const XEXIT_BUDGET: u32 = 12;   // instruction budget exhausted
export const XEXIT_EXCEPTION: u32 = 13; // vector set in the exception bitmap
export const XEXIT_CR_WRITE: u32 = 14;  // shadow mode: MOV to CR0/CR4 or WRMSR EFER (retired; addr = 0, 4 or the MSR)
export const EXIT_NAMES =
  "none,PF,GP,unsupported,MMIO,EPT_VIOLATION,EPT_MISCONFIG,IO,HLT,CR3,INVLPG,SHUTDOWN,BUDGET,EXCEPTION,CR_WRITE";

// Why an instruction stopped before completing (X86.stop).
export const STOP_NONE: u32 = 0;
export const STOP_EXC: u32 = 1;   // a guest exception (excVector, excError, excHasError)
export const STOP_EXIT: u32 = 2;  // an exit to the host (c.exitReason and exit fields)

// Exception vectors.
export const V_DE: u32 = 0;
export const V_DB: u32 = 1;
export const V_BP: u32 = 3;
export const V_UD: u32 = 6;
export const V_NM: u32 = 7;
export const V_DF: u32 = 8;
export const V_TS: u32 = 10;
export const V_NP: u32 = 11;
export const V_SS: u32 = 12;
export const V_GP: u32 = 13;
export const V_PF: u32 = 14;
export const V_AC: u32 = 17;

// RFLAGS bits.
export const F_CF: u64 = 1 << 0;
export const F_PF: u64 = 1 << 2;
export const F_AF: u64 = 1 << 4;
export const F_ZF: u64 = 1 << 6;
export const F_SF: u64 = 1 << 7;
export const F_TF: u64 = 1 << 8;
export const F_IF: u64 = 1 << 9;
export const F_DF: u64 = 1 << 10;
export const F_OF: u64 = 1 << 11;
export const F_IOPL: u64 = 3 << 12;
export const F_NT: u64 = 1 << 14;
export const F_RF: u64 = 1 << 16;
export const F_VM: u64 = 1 << 17;
export const F_AC: u64 = 1 << 18;
export const F_ID: u64 = 1 << 21;
export const F_ARITH: u64 = F_CF | F_PF | F_AF | F_ZF | F_SF | F_OF;
// Bits software may change (POPF at CPL0; CPL3 keeps IF/IOPL): CF PF AF ZF SF TF IF DF
// OF IOPL NT AC ID. Bit 1 always reads 1.
export const F_WRITABLE: u64 = F_ARITH | F_TF | F_IF | F_DF | F_IOPL | F_NT | F_AC | F_ID;

@unmanaged export class X86 {
  // ---- register file (REG_NAMES order; the host reads/writes these directly) ----
  rax: u64; rcx: u64; rdx: u64; rbx: u64; rsp: u64; rbp: u64; rsi: u64; rdi: u64;
  r8: u64; r9: u64; r10: u64; r11: u64; r12: u64; r13: u64; r14: u64; r15: u64;
  rip: u64;
  rflagsMirror: u64;
  cs: u64; ss: u64; ds: u64; es: u64; fs: u64; gs: u64;
  fsBase: u64; gsBase: u64; kernelGsBase: u64;
  gdtrBase: u64; gdtrLimit: u64; idtrBase: u64; idtrLimit: u64;
  tr: u64; trBase: u64; trLimit: u64;
  cr0Mirror: u64; cr2: u64; cr3Mirror: u64; cr4Mirror: u64; cr8: u64; eferMirror: u64;
  cplMirror: u64;
  star: u64; lstar: u64; cstar: u64; fmask: u64; tscAux: u64; pat: u64; tsc: u64;
  // ---- lazy arithmetic flags (flags.ts) ----
  lfKind: u32;
  lfSize: u32;
  lfA: u64;
  lfB: u64;
  lfRes: u64;
  lfCin: u64;
  tFlags: u64;        // flags computed by alu.ts, applied after the store (commitFlags)
  tMask: u64;
  // ---- the instruction being executed ----
  stop: u32;          // STOP_*
  excVector: u32;
  excError: u32;
  excHasError: u32;
  excCr2: u64;        // #PF: the faulting linear address
  excIsPf: u32;
  excTrap: u32;       // a trap: the frame holds the next RIP
  excSoft: u32;       // INT n / INT3 / INT1: gate DPL checked (not for INT1)
  excIntN: u32;       // INT n: not subject to the exception bitmap
  ea: u64;            // effective (linear) address of the memory operand
  nextRip: u64;
  fVpn: u64;          // fetch window: page number and host pointer of the current page
  fHost: usize;
  fSlot: usize;       // its fast-path entry (0: none)
  // ---- run control ----
  budget: u64;        // instructions left in this run
  excBitmap: u32;     // exception vectors that exit instead of being delivered
  insnCycles: u64;    // virtual-TSC cycles per instruction
  tscHz: u64;         // TSC (= APIC timer) ticks per virtual second, reported by CPUID 0x15/0x16 (0: not enumerated)
  microI: usize;      // fast-path mirror of the L1 4 KiB instruction TLB
  insnPtr: usize;     // scratch decoded instruction (Insn)
  // pending IN: the instruction waits for the host's data (ioData) at the next run
  ioPending: u32;     // 0 none, 1 IN to AL/AX/EAX, 2 INS element
  ioSize: u32;
  ioPort: u32;
  ioData: u64;
  ioAddr32: u32;      // INS with a 67 prefix
  ioRep: u32;
  // exit data for the host
  exitSize: u32;
  exitWrite: u32;
  exitValue: u64;
  exitLen: u32;       // length of the instruction that exited (MMIO)
  // MMIO completion: the host answers the last MMIO exit (completeMmio); the instruction
  // runs again and its access to mmioPa takes mmioData (a read) or is skipped (a write)
  mmioPa: u64;
  mmioData: u64;
  mmioReady: u32;
  mmioHit: u32;
  // interrupt state
  intShadow: u32;     // STI / MOV SS shadow: 2 when set, 1 after that instruction, 0 after the next
  halted: u32;
  ripAtSync: u64;     // RIP the host last read: a new RIP loaded by the host wakes a halted vCPU
  guestCr3: u64;
  guestCr0: u64;      // shadow mode: the guest's CR0 (the vCPU runs with WP forced on)      // shadow mode: the guest's CR3 (MOV from CR3 reads it, not the shadow root)
  noIrq: u32;         // the host is single-stepping: no interrupt delivery
  evCheck: u32;
  sliceExit: u32;     // run.ts: the exit a slice ended with       // something may have made an interrupt deliverable: re-check
  apic: usize;        // Apic (apic.ts)
  // an event whose delivery exited to the host, delivered again at the next run
  evPending: u32;
  evVec: u32;
  evHasErr: u32;
  evErr: u32;
  evRip: u64;
  evKind: u32;
  evExt: u32;
  evCr2: u64;
  evIsPf: u32;
  shutdownPending: u32; // a host-injected fault escalated to a triple fault
  exitRec: usize;     // EXIT_REC_COUNT u64 describing the last exit (run.ts)
  // counts not yet added to the Cpu counters (flushed at the end of a run)
  nInsns: u64;
  nLoads: u64;
  nStores: u64;
  nFetches: u64;
  nHits: u64;
  nFetchSlow: u64;
  lastAcc: u32;       // access descriptor of the last failed translation
}

@inline export function xOf(c: Cpu): X86 { return changetype<X86>(c.x86); }

@inline export function regPtr(x: X86, r: u32): usize {
  return changetype<usize>(x) + (<usize>r << 3);
}
@inline export function getR64(x: X86, r: u32): u64 { return load<u64>(regPtr(x, r)); }
@inline export function setR64(x: X86, r: u32, v: u64): void { store<u64>(regPtr(x, r), v); }

@inline export function maskOf(size: u32): u64 {
  return size == 8 ? 0xFFFF_FFFF_FFFF_FFFF : (<u64>1 << (<u64>size * 8)) - 1;
}
@inline export function signOf(size: u32): u64 { return <u64>1 << (<u64>size * 8 - 1); }
@inline export function sext(v: u64, size: u32): u64 {
  if (size == 8) return v;
  let s = 64 - <u64>size * 8;
  return <u64>((<i64>(v << s)) >> s);
}

// Register read of `size` bytes. Byte registers 4..7 are AH CH DH BH without REX and
// SPL BPL SIL DIL with any REX (SDM Vol. 2 §2.2.1).
@inline export function getReg(x: X86, r: u32, size: u32, rex: u32): u64 {
  if (size == 1 && rex == 0 && r >= 4 && r < 8) return (getR64(x, r - 4) >> 8) & 0xFF;
  return getR64(x, r) & maskOf(size);
}

// Register write: 32-bit writes zero bits 63:32, 8/16-bit writes keep the rest.
@inline export function setReg(x: X86, r: u32, size: u32, rex: u32, v: u64): void {
  if (size == 8) { setR64(x, r, v); return; }
  if (size == 4) { setR64(x, r, v & 0xFFFF_FFFF); return; }
  if (size == 1 && rex == 0 && r >= 4 && r < 8) {
    let o = getR64(x, r - 4);
    setR64(x, r - 4, (o & ~(<u64>0xFF00)) | ((v & 0xFF) << 8));
    return;
  }
  let m = maskOf(size);
  setR64(x, r, (getR64(x, r) & ~m) | (v & m));
}

// Raises a guest exception; the instruction stops with nothing more committed.
export function raise(x: X86, vector: u32, hasError: bool, error: u32): void {
  if (x.stop != STOP_NONE) return;
  x.stop = STOP_EXC;
  x.excVector = vector;
  x.excHasError = hasError ? 1 : 0;
  x.excError = error;
  x.excIsPf = 0;
  x.excTrap = 0;
  x.excSoft = 0;
  x.excIntN = 0;
}

@inline export function ud(x: X86): void { raise(x, V_UD, false, 0); }
@inline export function gp0(x: X86): void { raise(x, V_GP, true, 0); }

// Stops the instruction with an exit to the host (reason in c.exitReason).
export function exitTo(c: Cpu, x: X86, reason: u32): void {
  if (x.stop != STOP_NONE) return;
  x.stop = STOP_EXIT;
  c.exitReason = reason;
}
