// The local APIC in x2APIC mode (SDM Vol. 3 §10.12): MSR registers, the timer on the
// virtual clock, IRR/ISR/TPR/PPR and EOI, self-IPIs, and host-injected interrupts.
//
// Timer clock: the virtual TSC divided by the divide configuration (the "bus clock" is
// the TSC here). Modes (LVT timer bits 18:17): 0 one-shot, 1 periodic, 2 TSC-deadline.
//   one-shot/periodic: writing the initial count arms (0 stops); expiry at
//     armTsc + count × divisor; periodic re-arms by one period.
//   TSC-deadline: MSR 0x6E0 arms at an absolute TSC (0 disarms), clears when it fires;
//     initial-count writes are ignored and the current count reads 0.
// An expiry with the LVT unmasked (bit 16) and the APIC software-enabled (SVR bit 8)
// sets IRR[vector]. At an instruction boundary with IF=1 and no STI/MOV-SS shadow the
// highest IRR vector whose class (v >> 4) exceeds PPR's is moved to ISR and delivered as
// an external interrupt. EOI clears the highest ISR bit.

import { Cpu } from "../cpu";
import { X86, F_IF } from "./state";

// LVT timer layout: 7:0 vector | 12 delivery status | 16 mask | 18:17 mode.
export const LVT_MASK: u32 = 1 << 16;
export const TIMER_ONESHOT: u32 = 0;
export const TIMER_PERIODIC: u32 = 1;
export const TIMER_DEADLINE: u32 = 2;
export const NEVER: u64 = 0xFFFF_FFFF_FFFF_FFFF;

@unmanaged export class Apic {
  irr0: u64; irr1: u64; irr2: u64; irr3: u64;
  isr0: u64; isr1: u64; isr2: u64; isr3: u64;
  base: u64;       // IA32_APIC_BASE
  tpr: u32;
  svr: u32;
  lvtTimer: u32;
  divide: u32;     // divide configuration register (bits 3, 1, 0)
  initial: u32;
  expiry: u64;     // TSC of the next expiry, or NEVER
  period: u64;     // periodic mode: TSC cycles per period
  deadline: u64;   // IA32_TSC_DEADLINE
  icr: u64;
}

export function initApic(a: Apic): void {
  a.base = 0xFEE0_0000 | (1 << 8) | (1 << 10) | (1 << 11); // BSP, x2APIC, enabled
  a.svr = 0xFF;
  a.lvtTimer = LVT_MASK;
  a.expiry = NEVER;
  a.deadline = 0;
}

@inline function bitsPtr(a: Apic, isr: bool): usize {
  return changetype<usize>(a) + (isr ? 32 : 0);
}

export function setBit(a: Apic, isr: bool, v: u32): void {
  let p = bitsPtr(a, isr) + <usize>(v >> 6) * 8;
  store<u64>(p, load<u64>(p) | (<u64>1 << <u64>(v & 63)));
}

function clearBit(a: Apic, isr: bool, v: u32): void {
  let p = bitsPtr(a, isr) + <usize>(v >> 6) * 8;
  store<u64>(p, load<u64>(p) & ~(<u64>1 << <u64>(v & 63)));
}

// Highest set vector, or -1.
export function highest(a: Apic, isr: bool): i32 {
  let p = bitsPtr(a, isr);
  for (let i = 3; i >= 0; i--) {
    let w = load<u64>(p + <usize>i * 8);
    if (w != 0) return i * 64 + 63 - <i32>clz<u64>(w);
  }
  return -1;
}

export function ppr(a: Apic): u32 {
  let isrv = highest(a, true);
  let iv: u32 = isrv < 0 ? 0 : <u32>isrv & 0xF0;
  return (a.tpr & 0xF0) >= iv ? a.tpr & 0xFF : iv;
}

// Divisor of the divide configuration register.
export function divisor(a: Apic): u64 {
  let d = (a.divide & 3) | ((a.divide >> 1) & 4);
  return d == 7 ? 1 : <u64>2 << <u64>d;
}

@inline export function timerMode(a: Apic): u32 { return (a.lvtTimer >> 17) & 3; }

// Fires the timer if its expiry has passed (called at instruction boundaries the run
// loop schedules, see nextEvent).
export function tickTimer(a: Apic, now: u64): void {
  if (a.expiry == NEVER || now < a.expiry) return;
  if ((a.lvtTimer & LVT_MASK) == 0 && (a.svr & 0x100) != 0) setBit(a, false, a.lvtTimer & 0xFF);
  if (timerMode(a) == TIMER_PERIODIC && a.period != 0) {
    let behind = (now - a.expiry) / a.period + 1;
    a.expiry += behind * a.period;
  } else {
    a.expiry = NEVER;
    if (timerMode(a) == TIMER_DEADLINE) a.deadline = 0;
  }
}

// The vector to deliver now, or -1 (IF, shadow and PPR checked by the caller's state).
export function pendingVector(c: Cpu, x: X86, a: Apic): i32 {
  if ((c.rflags & F_IF) == 0 || x.intShadow != 0) return -1;
  let v = highest(a, false);
  if (v < 0) return -1;
  if ((<u32>v >> 4) <= (ppr(a) >> 4)) return -1;
  return v;
}

export function acknowledge(a: Apic, v: u32): void {
  clearBit(a, false, v);
  setBit(a, true, v);
}

export function eoi(a: Apic): void {
  let v = highest(a, true);
  if (v >= 0) clearBit(a, true, <u32>v);
}

// Current count register (0x839).
export function currentCount(a: Apic, now: u64): u64 {
  if (timerMode(a) == TIMER_DEADLINE || a.expiry == NEVER || now >= a.expiry) return 0;
  let d = divisor(a);
  return (a.expiry - now + d - 1) / d;
}

export function writeInitial(a: Apic, v: u32, now: u64): void {
  if (timerMode(a) == TIMER_DEADLINE) return;
  a.initial = v;
  if (v == 0) { a.expiry = NEVER; a.period = 0; return; }
  a.period = <u64>v * divisor(a);
  a.expiry = now + a.period;
}

export function writeLvtTimer(a: Apic, v: u32): bool {
  if ((v & ~(<u32>0x700FF)) != 0 || ((v >> 17) & 3) == 3) return false;
  let oldMode = timerMode(a);
  a.lvtTimer = v;
  if (timerMode(a) != oldMode) { a.expiry = NEVER; a.deadline = 0; a.initial = 0; }
  return true;
}

export function writeDeadline(a: Apic, v: u64): void {
  if (timerMode(a) != TIMER_DEADLINE) return;
  a.deadline = v;
  a.expiry = v == 0 ? NEVER : v;
}
