// Exports of the MMU core. Every function takes plain numbers (i64 crosses as BigInt);
// pointers are byte offsets into this instance's linear memory. See src/core/ for the
// typed host API built on these.

import { initPhys, alloc, physBase, physBytes, physInRange, physPtr } from "./mem";
import {
  Cpu, newCpu, setReg, getReg, writeCr0, writeCr3, writeCr4, invlpg, invpcid, flushAll,
  setVmcs, invept, invvpid, tlbOf,
  NUM_TLBS, MAX_EVENTS,
} from "./cpu";
import { translate } from "./walk";
import { runBatch as run } from "./access";
import { rawLoads, naiveWalks, copyFrames } from "./baseline";
import { COUNTER_NAMES, NUM_COUNTERS } from "./counters";
import { initGens, genBase, codeWrite } from "./x86/icache";

export { rawLoads, naiveWalks, copyFrames };

export function init(bytes: u64): bool { return initPhys(bytes) && initGens(); }
// Per-frame code generation words (assembly/x86/icache.ts), for host-side invalidation.
export function codeGenBase(): usize { return genBase; }
export function allocBytes(bytes: u64): usize { return alloc(bytes); }
export function physBaseAddr(): usize { return physBase; }
export function physSize(): u64 { return physBytes; }

// Layout constants the host needs.
export function numTlbs(): i32 { return NUM_TLBS; }
export function numCounters(): i32 { return NUM_COUNTERS; }
export function maxEvents(): u32 { return MAX_EVENTS; }
export function counterNamesPtr(): usize { return changetype<usize>(COUNTER_NAMES); }
export function counterNamesLen(): i32 { return COUNTER_NAMES.length; }

export function cpuNew(geo: usize, maxPhysAddr: u32): usize { return newCpu(geo, maxPhysAddr); }
@inline function cpu(p: usize): Cpu { return changetype<Cpu>(p); }
export function cpuSetReg(c: usize, reg: u32, v: u64): void { setReg(cpu(c), reg, v); }
export function cpuGetReg(c: usize, reg: u32): u64 { return getReg(cpu(c), reg); }
export function cpuWriteCr0(c: usize, v: u64): bool { return writeCr0(cpu(c), v); }
export function cpuWriteCr3(c: usize, v: u64): bool { return writeCr3(cpu(c), v); }
export function cpuWriteCr4(c: usize, v: u64): bool { return writeCr4(cpu(c), v); }
export function cpuInvlpg(c: usize, va: u64): void { invlpg(cpu(c), va); }
export function cpuInvpcid(c: usize, type: u32, pcid: u64, va: u64): bool {
  return invpcid(cpu(c), type, pcid, va);
}
export function cpuFlush(c: usize): void { flushAll(cpu(c)); }
export function cpuSetVmcs(c: usize, mode: u32, eptp: u64, vpid: u32): bool {
  return setVmcs(cpu(c), mode, eptp, vpid);
}
export function cpuInvept(c: usize, type: u32): bool { return invept(cpu(c), type); }
export function cpuInvvpid(c: usize, type: u32, vpid: u32, va: u64): bool {
  return invvpid(cpu(c), type, vpid, va);
}
export function cpuPath(c: usize): usize { return cpu(c).path; }
// The descriptor of cache i (CACHE_ORDER in src/core/cpu.ts): entries ptr, sets, ways (read by src/core/tlb-view.ts).
export function cpuTlbDesc(c: usize, i: i32): usize { return i >= 0 && i < NUM_TLBS ? changetype<usize>(tlbOf(cpu(c), i)) : 0; }
export function cpuExitGpa(c: usize): u64 { return cpu(c).exitGpa; }
export function cpuExitQual(c: usize): u32 { return cpu(c).exitQual; }
export function cpuExitValue(c: usize): u64 { return cpu(c).exitValue; }
export function cpuTranslate(c: usize, va: u64, acc: u32): u32 { return translate(cpu(c), va, acc); }
export function cpuResPa(c: usize): u64 { return cpu(c).resPa; }
export function cpuResSize(c: usize): u64 { return cpu(c).resSize; }
export function cpuErrorCode(c: usize): u32 { return cpu(c).errorCode; }
export function cpuExitAddr(c: usize): u64 { return cpu(c).exitAddr; }
export function cpuExitReason(c: usize): u32 { return cpu(c).exitReason; }
export function cpuExitIndex(c: usize): u32 { return cpu(c).exitIndex; }
export function cpuCounters(c: usize): usize { return cpu(c).counters; }
export function cpuEvents(c: usize): usize { return cpu(c).events; }
export function runBatch(c: usize, ops: usize, count: u32): u32 { return run(cpu(c), ops, count); }
export function cpuSetChecker(c: usize, on: bool): void { cpu(c).checker = on ? 1 : 0; }
// Off: the batch engine runs every op on its general path (the fast paths' reference).
export function cpuSetFastPaths(c: usize, on: bool): void { cpu(c).noFast = on ? 0 : 1; }

// Bulk physical-memory operations; false if the range is outside memory.
export function physFill(pa: u64, byte: u32, len: u64): bool {
  if (!physInRange(pa, len)) return false;
  codeWrite(pa, len);
  memory.fill(physPtr(pa), <u8>byte, <usize>len);
  return true;
}
// Zeroes [pa, pa+len) (len a multiple of 8) unless it already reads as zero: a frame
// never written since boot stays untouched, so the OS never has to back it (host frames
// handed out are zeroed this way).
export function physZero(pa: u64, len: u64): bool {
  if (!physInRange(pa, len)) return false;
  let p = physPtr(pa), end = p + <usize>len;
  for (let q = p; q < end; q += 32) {
    if ((load<u64>(q) | load<u64>(q, 8) | load<u64>(q, 16) | load<u64>(q, 24)) != 0) {
      codeWrite(pa + <u64>(q - p), <u64>(end - q)); // cached code there is stale now
      memory.fill(q, 0, end - q);
      break;
    }
  }
  return true;
}
export function physCopy(dst: u64, src: u64, len: u64): bool {
  if (!physInRange(dst, len) || !physInRange(src, len)) return false;
  codeWrite(dst, len);
  memory.copy(physPtr(dst), physPtr(src), <usize>len);
  return true;
}

// Batched page hashing, comparison and zero tests for content-based page sharing.
export { hashFrames, framesEqual, zeroFrames, physXxh64 } from "./hash";

// The table of every number shared with the host (assembly/abi.ts), checked at load.
import { ABI } from "./abi";
export function abiPtr(): usize { return changetype<usize>(ABI); }
export function abiLen(): i32 { return ABI.length; }
// The x86-64 instruction interpreter (assembly/x86/).
export {
  x86Create, x86RunExport as x86Run, x86Regs, x86RegCount, x86RegNamesPtr, x86RegNamesLen,
  x86ExitNamesPtr, x86ExitNamesLen, x86ExitRec, x86ExitRecCount, x86SyncOutExport as x86SyncOut,
  x86SyncInExport as x86SyncIn, x86SetIoData, x86CompleteMmio, x86SetExcBitmap, x86InjectExport as x86Inject,
  x86InjectExceptionExport as x86InjectException, x86SetInsnCycles, x86SetTscHz, x86AdvanceTsc, x86NextTimer,
  x86Halted, x86SetHalted, x86SetNoIrq, x86SetGuestCr3, x86SetGuestCr0,
  x86StateCount, x86SaveStateExport as x86SaveState, x86LoadStateExport as x86LoadState,
} from "./x86/exports";

// The shadow MMU's common hidden-fault fill (assembly/shadow-fill.ts).
import { shadowFillLeaf } from "./shadow-fill";
export { shadowTagsInit, shadowTag, shadowTagOf, shadowFillCommit, shadowFillGfn } from "./shadow-fill";
export function shadowFill(c: usize, walker: usize, va: u64, rootGfn: f64, levels: u32, nxe: bool, write: bool): u32 {
  return shadowFillLeaf(cpu(c), cpu(walker), va, rootGfn, levels, nxe, write);
}
