// A vCPU's state beyond its register file, saved and loaded as one flat record so a vCPU
// can move to another core instance (live migration: the source and destination hosts
// are separate Machines). The register file travels through the host's register API
// (src/core/x86.ts); this record carries what the host cannot otherwise see: a pending
// IN or MMIO completion, the interrupt shadow, HLT, an event whose delivery exited, and
// the local APIC (IRR/ISR, TPR, SVR, the timer and its expiry on the virtual TSC).
// TLBs, caches, the fetch window and counters are not state: the destination starts empty.
//
// Record: XSTATE_COUNT u64 slots, in this order.
//
//   0 ioPending  1 ioSize   2 ioPort   3 ioData   4 ioAddr32   5 ioRep
//   6 mmioPa     7 mmioData 8 mmioReady 9 mmioHit
//  10 intShadow 11 halted  12 guestCr3 13 guestCr0 14 noIrq 15 excBitmap 16 insnCycles
//  17 evPending 18 evVec   19 evHasErr 20 evErr 21 evRip 22 evKind 23 evExt 24 evCr2
//  25 evIsPf    26 shutdownPending
//  27..30 APIC IRR[0..3]   31..34 APIC ISR[0..3]
//  35 apicBase 36 tpr 37 svr 38 lvtTimer 39 divide 40 initial 41 expiry 42 period
//  43 deadline 44 icr

import { Cpu } from "../cpu";
import { X86, xOf } from "./state";
import { Apic } from "./apic";
import { apicOf } from "./msr";

export const XSTATE_COUNT: i32 = 45;

@inline function put(p: usize, i: i32, v: u64): void { store<u64>(p + (<usize>i << 3), v); }
@inline function get(p: usize, i: i32): u64 { return load<u64>(p + (<usize>i << 3)); }

export function x86SaveState(c: Cpu, p: usize): void {
  let x = xOf(c);
  put(p, 0, x.ioPending); put(p, 1, x.ioSize); put(p, 2, x.ioPort); put(p, 3, x.ioData);
  put(p, 4, x.ioAddr32); put(p, 5, x.ioRep);
  put(p, 6, x.mmioPa); put(p, 7, x.mmioData); put(p, 8, x.mmioReady); put(p, 9, x.mmioHit);
  put(p, 10, x.intShadow); put(p, 11, x.halted); put(p, 12, x.guestCr3); put(p, 13, x.guestCr0);
  put(p, 14, x.noIrq); put(p, 15, x.excBitmap); put(p, 16, x.insnCycles);
  put(p, 17, x.evPending); put(p, 18, x.evVec); put(p, 19, x.evHasErr); put(p, 20, x.evErr);
  put(p, 21, x.evRip); put(p, 22, x.evKind); put(p, 23, x.evExt); put(p, 24, x.evCr2);
  put(p, 25, x.evIsPf); put(p, 26, x.shutdownPending);
  saveApic(apicOf(x), p);
}

function saveApic(a: Apic, p: usize): void {
  put(p, 27, a.irr0); put(p, 28, a.irr1); put(p, 29, a.irr2); put(p, 30, a.irr3);
  put(p, 31, a.isr0); put(p, 32, a.isr1); put(p, 33, a.isr2); put(p, 34, a.isr3);
  put(p, 35, a.base); put(p, 36, a.tpr); put(p, 37, a.svr); put(p, 38, a.lvtTimer);
  put(p, 39, a.divide); put(p, 40, a.initial); put(p, 41, a.expiry); put(p, 42, a.period);
  put(p, 43, a.deadline); put(p, 44, a.icr);
}

// Loads a record saved by x86SaveState. Call after the register file is loaded: RIP as
// loaded counts as the host's last read, so the loaded HLT state stands.
export function x86LoadState(c: Cpu, p: usize): void {
  let x = xOf(c);
  x.ioPending = <u32>get(p, 0); x.ioSize = <u32>get(p, 1); x.ioPort = <u32>get(p, 2); x.ioData = get(p, 3);
  x.ioAddr32 = <u32>get(p, 4); x.ioRep = <u32>get(p, 5);
  x.mmioPa = get(p, 6); x.mmioData = get(p, 7); x.mmioReady = <u32>get(p, 8); x.mmioHit = <u32>get(p, 9);
  x.intShadow = <u32>get(p, 10); x.halted = <u32>get(p, 11); x.guestCr3 = get(p, 12); x.guestCr0 = get(p, 13);
  x.noIrq = <u32>get(p, 14); x.excBitmap = <u32>get(p, 15); x.insnCycles = get(p, 16);
  x.evPending = <u32>get(p, 17); x.evVec = <u32>get(p, 18); x.evHasErr = <u32>get(p, 19); x.evErr = <u32>get(p, 20);
  x.evRip = get(p, 21); x.evKind = <u32>get(p, 22); x.evExt = <u32>get(p, 23); x.evCr2 = get(p, 24);
  x.evIsPf = <u32>get(p, 25); x.shutdownPending = <u32>get(p, 26);
  loadApic(apicOf(x), p);
  x.ripAtSync = x.rip;
  x.evCheck = 1; // pending IRR bits may be deliverable on the new host
}

function loadApic(a: Apic, p: usize): void {
  a.irr0 = get(p, 27); a.irr1 = get(p, 28); a.irr2 = get(p, 29); a.irr3 = get(p, 30);
  a.isr0 = get(p, 31); a.isr1 = get(p, 32); a.isr2 = get(p, 33); a.isr3 = get(p, 34);
  a.base = get(p, 35); a.tpr = <u32>get(p, 36); a.svr = <u32>get(p, 37); a.lvtTimer = <u32>get(p, 38);
  a.divide = <u32>get(p, 39); a.initial = <u32>get(p, 40); a.expiry = get(p, 41); a.period = get(p, 42);
  a.deadline = get(p, 43); a.icr = get(p, 44);
}

export { X86 };
