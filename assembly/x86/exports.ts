// Wasm exports of the interpreter (re-exported by assembly/index.ts). Pointers are byte
// offsets in linear memory; the register file and exit record are read and written by
// the host in place (src/core/x86.ts).

import { Cpu } from "../cpu";
import { X86, xOf, REG_NAMES, REG_COUNT, EXIT_NAMES } from "./state";
import { x86Init, x86Run, x86SyncOut, x86SyncIn, x86Inject, x86InjectException, EXIT_REC_COUNT } from "./run";
import { NEVER } from "./apic";
import { apicOf } from "./msr";

@inline function cpu(p: usize): Cpu { return changetype<Cpu>(p); }

export function x86Create(c: usize): bool { return x86Init(cpu(c)); }
export function x86RunExport(c: usize, maxInsns: u64): u32 { return x86Run(cpu(c), maxInsns); }
export function x86Regs(c: usize): usize { return cpu(c).x86; }
export function x86RegCount(): i32 { return REG_COUNT; }
export function x86RegNamesPtr(): usize { return changetype<usize>(REG_NAMES); }
export function x86RegNamesLen(): i32 { return REG_NAMES.length; }
export function x86ExitNamesPtr(): usize { return changetype<usize>(EXIT_NAMES); }
export function x86ExitNamesLen(): i32 { return EXIT_NAMES.length; }
export function x86ExitRec(c: usize): usize { return xOf(cpu(c)).exitRec; }
export function x86ExitRecCount(): i32 { return EXIT_REC_COUNT; }
export function x86SyncOutExport(c: usize): void { x86SyncOut(cpu(c)); }
export function x86SyncInExport(c: usize): void { x86SyncIn(cpu(c)); }
export function x86SetIoData(c: usize, v: u64): void { xOf(cpu(c)).ioData = v; }
export function x86CompleteMmio(c: usize, v: u64): void { let x = xOf(cpu(c)); x.mmioData = v; x.mmioReady = 1; }
export function x86SetExcBitmap(c: usize, bits: u32): void { xOf(cpu(c)).excBitmap = bits; }
export function x86InjectExport(c: usize, vector: u32): bool { return x86Inject(cpu(c), vector); }
export function x86InjectExceptionExport(c: usize, vec: u32, hasErr: bool, err: u32, cr2: u64): void {
  x86InjectException(cpu(c), vec, hasErr, err, cr2);
}
export function x86SetInsnCycles(c: usize, n: u64): void { xOf(cpu(c)).insnCycles = n; }
export function x86SetTscHz(c: usize, hz: u64): void { xOf(cpu(c)).tscHz = hz; }
export function x86AdvanceTsc(c: usize, cycles: u64): void { xOf(cpu(c)).tsc += cycles; }
// TSC of the APIC timer's next expiry, or all ones.
export function x86NextTimer(c: usize): u64 {
  let a = apicOf(xOf(cpu(c)));
  return a.expiry;
}
export function x86SetNoIrq(c: usize, on: bool): void { xOf(cpu(c)).noIrq = on ? 1 : 0; }
export function x86SetGuestCr3(c: usize, v: u64): void { xOf(cpu(c)).guestCr3 = v; }
export function x86SetGuestCr0(c: usize, v: u64): void { xOf(cpu(c)).guestCr0 = v; }
export function x86Halted(c: usize): bool { return xOf(cpu(c)).halted != 0; }
export function x86SetHalted(c: usize, h: bool): void { xOf(cpu(c)).halted = h ? 1 : 0; }
export { NEVER, X86 };

// Live migration: the vCPU's state beyond the register file (assembly/x86/migrate.ts).
import { x86SaveState, x86LoadState, XSTATE_COUNT } from "./migrate";
export function x86StateCount(): i32 { return XSTATE_COUNT; }
export function x86SaveStateExport(c: usize, p: usize): void { x86SaveState(cpu(c), p); }
export function x86LoadStateExport(c: usize, p: usize): void { x86LoadState(cpu(c), p); }
