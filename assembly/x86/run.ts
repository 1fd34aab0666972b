// The interpreter's run loop (KVM_RUN in miniature): executes guest instructions until
// an exit, entirely inside Wasm. Between instructions it fires the APIC timer and
// delivers interrupts; exceptions go to the guest through its IDT, or exit when their
// vector is set in the exception bitmap (as VMX's exception bitmap does).
//
// Exit record (EXIT_REC_COUNT u64, read by the host after run returns):
//   0 reason (XEXIT_*)       1 addr: IO port / MMIO pa / shadow #PF CR2 / INVLPG address
//   2 access size            3 1 = write / OUT          4 value: OUT or MMIO-write data,
//   5 #PF error code (shadow) / IO: size | 0x100 for IN     CR3 value, INVPCID type|0x100
//   6 EPT gpa                7 EPT qualification        8 exception vector
//   9 has error code        10 exception error code    11 exception CR2 (#PF address)
//  12 instruction length    13 access of a shadow #PF (ACC_* bits: 2 W, 4 U, 16 fetch)
//  14 instructions retired by this run
// RIP at an exit: IO IN/INS, MMIO, EPT, shadow #PF: on the instruction (it re-executes or
// completes at the next run); OUT, HLT, CR3, INVLPG: past it; EXCEPTION: where the frame
// would point (the faulting instruction, or past a trap such as INT3); BUDGET: the next
// instruction; SHUTDOWN: the instruction whose fault escalated.

import { Cpu, tlbOf, T_I4K, refresh } from "../cpu";
import { alloc } from "../mem";
import { MICRO_ENTRIES, MICRO_BYTES, microFlush } from "../tlb";
import { C_SPLIT, bump, C_ACCESSES, C_LOADS, C_STORES, C_FETCHES, C_L1_HIT_4K, C_INSTRUCTIONS } from "../counters";
import {
  X86, xOf, STOP_NONE, STOP_EXC, STOP_EXIT, XEXIT_NONE, XEXIT_HLT, XEXIT_BUDGET, XEXIT_SHUTDOWN,
  XEXIT_EXCEPTION, XEXIT_IO, REG_COUNT,
} from "./state";
import { Insn, decode, effAddr } from "./decode";
import { lookup, slotFor, commit, forget, initCache } from "./icache";
import { classify, fastExec } from "./fast";
import { fetchPage } from "./vmem";
import { microSlot } from "../tlb";
import { physBase } from "../mem";
import { exec } from "./exec";
import { materialize } from "./flags";
import { completeIo } from "./io";
import { deliverEvent, EV_EXCEPTION, EV_SOFT, EV_EXTERNAL, DE_DELIVERED, DE_EXIT, DE_SHUTDOWN } from "./intr";
import { Apic, initApic, tickTimer, pendingVector, acknowledge, setBit, NEVER } from "./apic";
import { tscNow, apicOf } from "./msr";

export const EXIT_REC_COUNT: i32 = 16;

// Creates the interpreter state of a vCPU (once). Returns false on exhaustion.
export function x86Init(c: Cpu): bool {
  if (c.x86 != 0) return true;
  let p = alloc(offsetof<X86>());
  let insn = alloc(offsetof<Insn>());
  let apic = alloc(offsetof<Apic>());
  let rec = alloc(<u64>EXIT_REC_COUNT * 8);
  let micro = alloc(<u64>MICRO_ENTRIES * MICRO_BYTES);
  if (p == 0 || insn == 0 || apic == 0 || rec == 0 || micro == 0 || !initCache()) return false;
  let x = changetype<X86>(p);
  x.insnPtr = insn;
  x.apic = apic;
  x.exitRec = rec;
  x.insnCycles = 1;
  x.fVpn = ~(<u64>0);
  x.pat = 0x0007_0406_0007_0406;
  x.gdtrLimit = 0xFFFF;
  x.idtrLimit = 0xFFFF;
  initApic(changetype<Apic>(apic));
  microFlush(micro);
  x.microI = micro;
  c.microI = micro;
  tlbOf(c, T_I4K).micro = micro; // fills and invalidations keep it coherent
  c.x86 = p;
  c.rflags |= 2;
  return true;
}

// Adds this run's event counts to the vCPU counters and advances the virtual TSC.
function flushCounts(c: Cpu, x: X86): void {
  let cnt = c.counters;
  bump(cnt, C_INSTRUCTIONS, x.nInsns);
  bump(cnt, C_LOADS, x.nLoads);
  bump(cnt, C_STORES, x.nStores);
  // One fetch per instruction; those not served by the fast path counted their own
  // TLB events in translate().
  let fetches = x.nInsns;
  let fastFetches = fetches > x.nFetchSlow ? fetches - x.nFetchSlow : 0;
  bump(cnt, C_FETCHES, fetches);
  bump(cnt, C_ACCESSES, x.nLoads + x.nStores + fetches);
  bump(cnt, C_L1_HIT_4K, x.nHits + fastFetches);
  x.tsc += x.nInsns * x.insnCycles;
  x.nInsns = 0; x.nLoads = 0; x.nStores = 0; x.nFetches = 0; x.nHits = 0; x.nFetchSlow = 0;
}

function finish(c: Cpu, x: X86, reason: u32, retired: u64): u32 {
  materialize(c, x);
  let r = x.exitRec;
  store<u64>(r, <u64>reason);
  store<u64>(r, c.exitAddr, 8);
  store<u64>(r, <u64>x.exitSize, 16);
  store<u64>(r, <u64>x.exitWrite, 24);
  store<u64>(r, reason == 9 ? c.exitValue : x.exitValue, 32);
  store<u64>(r, <u64>c.errorCode, 40);
  store<u64>(r, c.exitGpa, 48);
  store<u64>(r, <u64>c.exitQual, 56);
  store<u64>(r, <u64>x.excVector, 64);
  store<u64>(r, <u64>x.excHasError, 72);
  store<u64>(r, <u64>x.excError, 80);
  store<u64>(r, x.excCr2, 88);
  store<u64>(r, <u64>x.exitLen, 96);
  store<u64>(r, <u64>x.lastAcc, 104);
  store<u64>(r, x.nInsns, 112);
  c.exitReason = reason;
  flushCounts(c, x);
  return reason;
}

// Handles a stopped instruction. Returns XEXIT_NONE to keep running, else the exit.
function stopped(c: Cpu, x: X86, d: Insn): u32 {
  if (x.stop == STOP_EXIT) {
    x.exitLen = d.len;
    return c.exitReason;
  }
  let vec = x.excVector;
  let retRip = x.excTrap != 0 ? x.nextRip : x.rip;
  if (x.excIntN == 0 && vec < 32 && ((x.excBitmap >> vec) & 1) != 0) {
    if (x.excTrap != 0) { x.rip = retRip; x.nInsns++; }
    x.exitLen = d.len;
    return XEXIT_EXCEPTION;
  }
  if (x.excTrap != 0) x.nInsns++;
  let kind = x.excSoft != 0 ? EV_SOFT : EV_EXCEPTION;
  return event(c, x, vec, x.excHasError != 0, x.excError, retRip, kind, 0, x.excCr2, x.excIsPf != 0);
}

function event(c: Cpu, x: X86, vec: u32, hasErr: bool, err: u32, retRip: u64, kind: u32, ext: u32,
               cr2: u64, isPf: bool): u32 {
  let r = deliverEvent(c, x, vec, hasErr, err, retRip, kind, ext, cr2, isPf);
  if (r == DE_DELIVERED) { x.stop = STOP_NONE; x.evCheck = 1; return XEXIT_NONE; }
  if (r == DE_EXIT) return c.exitReason;
  if (r == DE_SHUTDOWN) return XEXIT_SHUTDOWN;
  return XEXIT_EXCEPTION; // a fault during delivery whose vector is in the bitmap
}

// Instructions until the timer's next expiry (at least 1), or `left`.
function untilTimer(x: X86, a: Apic, left: u64): u64 {
  if (a.expiry == NEVER) return left;
  let now = tscNow(x);
  if (a.expiry <= now) return 1;
  let n = (a.expiry - now + x.insnCycles - 1) / (x.insnCycles == 0 ? 1 : x.insnCycles);
  return n < left ? n : left;
}

// Translates RIP (fast path: the instruction-TLB mirror) and returns the decoded
// instruction there: from the decoded cache, or decoded now (and cached unless it
// crosses a page). On a fetch or decode fault x.stop is set.
@inline function fetchDecoded(c: Cpu, x: X86): Insn {
  let rip = x.rip;
  let vpn = rip >> 12;
  // The page of the last fetch, while its fast-path entry still maps it (an
  // invalidation drops the entry), needs no new translation.
  if (vpn != x.fVpn || x.fSlot == 0 || load<u64>(x.fSlot) != vpn) {
    let s = microSlot(x.microI, vpn);
    if (load<u64>(s) == vpn) {
      store<u32>(<usize>load<u32>(s, 20), ++c.clock, 36);
      x.fVpn = vpn;
      x.fHost = <usize>load<u32>(s, 16);
      x.fSlot = s;
    } else {
      x.fVpn = ~(<u64>0);
      x.fSlot = 0;
      if (!fetchPage(c, x, rip)) return changetype<Insn>(x.insnPtr);
    }
  }
  let pa = <u64>(x.fHost - physBase) | (rip & 0xFFF);
  let e = lookup(pa);
  if (e != 0) return changetype<Insn>(e);
  e = slotFor(pa);
  let d = changetype<Insn>(e);
  decode(c, x, d);
  if (x.stop == STOP_NONE) d.fast = classify(d);
  if (x.stop == STOP_NONE && (rip & 0xFFF) + <u64>d.len <= 4096) commit(e, pa);
  else forget(e);
  return d;
}

// At most this many instructions per slice call: the engine tiers a function up between
// calls, so the hot loop must return now and then.
const SLICE: u64 = 1 << 16;

// Runs up to `chunk` instructions without boundary checks (the caller bounded chunk by
// the next timer event). Returns how many count against the budget; x.sliceExit is set
// when the run must end.
function slice(c: Cpu, x: X86, chunk: u64): u64 {
  let n: u64 = 0;
  let start = x.nInsns;
  while (n < chunk) {
    let d = fetchDecoded(c, x);
    if (x.stop == STOP_NONE) {
      x.nextRip = x.rip + <u64>d.len;
      if (d.fast == 0 || !fastExec(c, x, d)) {
        if (d.mem != 0) x.ea = effAddr(x, d);
        exec(c, x, d);
      }
    }
    if (x.stop != STOP_NONE) {
      let isIo = x.stop == STOP_EXIT && c.exitReason == XEXIT_IO && x.exitWrite != 0;
      x.nInsns = start + n;
      x.sliceExit = stopped(c, x, d);
      if (isIo) x.nInsns++;
      return n + 1; // an exit, or an event delivered: back to the boundary checks
    }
    x.rip = x.nextRip;
    n++;
    if (x.evCheck != 0) break; // STI, MOV SS, HLT, IRET, POPF, WRMSR...: boundary checks
  }
  x.nInsns = start + n;
  return n;
}

// Runs up to maxInsns instructions. Returns the exit reason (also in the exit record).
export function x86Run(c: Cpu, maxInsns: u64): u32 {
  let x = xOf(c);
  let d = changetype<Insn>(x.insnPtr);
  let a = apicOf(x);
  c.exitReason = XEXIT_NONE;
  x.stop = STOP_NONE;
  x.nInsns = 0;
  if (c.checker != 0) { if (c.micro != 0) microFlush(c.micro); microFlush(x.microI); }
  let retired: u64 = 0;
  if (x.ioPending != 0) {
    if (!completeIo(c, x)) {
      let r = stopped(c, x, d);
      if (r != XEXIT_NONE) return finish(c, x, r, 0);
    } else x.nInsns++;
  }
  if (x.shutdownPending != 0) { x.shutdownPending = 0; return finish(c, x, XEXIT_SHUTDOWN, 0); }
  if (x.evPending != 0) {
    let r = event(c, x, x.evVec, x.evHasErr != 0, x.evErr, x.evRip, x.evKind, x.evExt, x.evCr2, x.evIsPf != 0);
    if (r != XEXIT_NONE) return finish(c, x, r, 0);
  }
  let left = maxInsns;
  while (true) {
    // Instruction boundary: timer, then interrupts.
    x.evCheck = 0;
    tickTimer(a, tscNow(x));
    if (x.noIrq == 0 && (a.irr0 | a.irr1 | a.irr2 | a.irr3) != 0) {
      let v = pendingVector(c, x, a);
      if (v >= 0) {
        acknowledge(a, <u32>v);
        x.halted = 0;
        let r = event(c, x, <u32>v, false, 0, x.rip, EV_EXTERNAL, 1, 0, false);
        if (r != XEXIT_NONE) return finish(c, x, r, retired);
      }
    }
    if (x.halted != 0) return finish(c, x, XEXIT_HLT, retired);
    if (left == 0) return finish(c, x, XEXIT_BUDGET, retired);
    let chunk = untilTimer(x, a, left);
    if (chunk > SLICE) chunk = SLICE;
    let shadowed = x.intShadow != 0;
    if (shadowed) chunk = 1; // the instruction after STI / MOV SS runs alone
    x.sliceExit = XEXIT_NONE;
    let n = slice(c, x, chunk);
    left -= n < left ? n : left;
    retired += n;
    if (x.intShadow != 0 && (shadowed || x.intShadow == 2)) x.intShadow--;
    if (x.sliceExit != XEXIT_NONE) return finish(c, x, x.sliceExit, retired);
  }
  return 0;
}

// ---- host interface ----

// Copies the state kept in Cpu into the register file (the host then reads it).
export function x86SyncOut(c: Cpu): void {
  let x = xOf(c);
  materialize(c, x);
  x.rflagsMirror = c.rflags | 2;
  x.cr0Mirror = c.cr0;
  x.cr3Mirror = c.cr3;
  x.cr4Mirror = c.cr4;
  x.eferMirror = c.efer;
  x.cplMirror = <u64>c.cpl;
  x.cr8 = <u64>(apicOf(x).tpr >> 4);
  x.ripAtSync = x.rip;
}

// Applies a register file the host wrote: a plain state load (no TLB flush, no checks,
// like a VMCS load). CR3/CR4/CR0/EFER/RFLAGS/CPL go to the shared Cpu.
export function x86SyncIn(c: Cpu): void {
  let x = xOf(c);
  x.lfKind = 0;
  c.rflags = x.rflagsMirror | 2;
  c.cr0 = x.cr0Mirror;
  c.cr3 = x.cr3Mirror & ~(<u64>1 << 63);
  c.cr4 = x.cr4Mirror;
  c.efer = x.eferMirror;
  c.cpl = <u32>x.cplMirror & 3;
  apicOf(x).tpr = (<u32>x.cr8 & 15) << 4;
  if (x.rip != x.ripAtSync) x.halted = 0; // the host moved RIP: the vCPU runs from there
  refresh(c);
}

export function x86Inject(c: Cpu, vector: u32): bool {
  if (vector < 16 || vector > 255) return false;
  setBit(apicOf(xOf(c)), false, vector);
  return true;
}

// Queues an exception for delivery at the next run (the hypervisor reflecting a guest
// #PF under shadow paging). The RIP pushed is the current one (a fault).
export function x86InjectException(c: Cpu, vec: u32, hasErr: bool, err: u32, cr2: u64): void {
  let x = xOf(c);
  if (x.evPending != 0 && x.evKind == EV_EXCEPTION) {
    // The fault happened while delivering the pending exception: the double-fault rules.
    let first = x.evVec;
    let contributory = (v: u32): bool => v == 0 || (v >= 10 && v <= 13);
    if (first == 8 && (contributory(vec) || vec == 14)) { x.evPending = 0; x.shutdownPending = 1; return; }
    if ((contributory(first) && contributory(vec)) || (first == 14 && (contributory(vec) || vec == 14))) {
      if (vec == 14) x.cr2 = cr2; // written even though the #PF escalates
      vec = 8; hasErr = true; err = 0; cr2 = 0;
    }
  }
  x.evPending = 1; x.evVec = vec; x.evHasErr = hasErr ? 1 : 0; x.evErr = err;
  x.evRip = x.rip;
  x.evKind = EV_EXCEPTION; x.evExt = 0; x.evCr2 = cr2; x.evIsPf = vec == 14 ? 1 : 0;
}

export { REG_COUNT, STOP_EXC };
