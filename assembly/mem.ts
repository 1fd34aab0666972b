// Host physical memory and the core's own allocations, both in Wasm linear memory.
//
//   0 ─────────── __heap_base ─── physBase ──────────── physBase+physBytes ───── brk
//   │ static data │  (align 64K)  │ host physical memory  │ vCPUs, TLB arrays,   │
//   │             │               │ (pa 0 .. physBytes)   │ batch buffers (bump) │
//
// Host physical memory is fixed at init; core structures are bump-allocated after it
// and never freed (a machine lives as long as its Wasm instance).

export let physBase: usize = 0;
export let physBytes: u64 = 0;
let brk: usize = 0;

import { codeWrite } from "./x86/icache";

const PAGE64K: u64 = 65536;

function growTo(end: u64): bool {
  let have = <u64>memory.size() * PAGE64K;
  if (end <= have) return true;
  let pages = (end - have + PAGE64K - 1) / PAGE64K;
  return memory.grow(<i32>pages) >= 0;
}

// Sets up host physical memory; returns false if Wasm memory cannot grow that far.
export function initPhys(bytes: u64): bool {
  let base = (<u64>__heap_base + PAGE64K - 1) & ~(PAGE64K - 1);
  if (!growTo(base + bytes)) return false;
  physBase = <usize>base;
  physBytes = bytes;
  brk = <usize>(base + bytes);
  return true;
}

// Zeroed, 64-byte-aligned bytes after physical memory; 0 if memory is exhausted.
export function alloc(bytes: u64): usize {
  let p = (<u64>brk + 63) & ~(<u64>63);
  let end = p + bytes;
  if (end > 0xFFFF_FFFF || !growTo(end)) return 0;
  memory.fill(<usize>p, 0, <usize>bytes);
  brk = <usize>end;
  return <usize>p;
}

// Reads of physical addresses outside memory return all ones and writes are dropped,
// as a PC's bus returns for a master abort; a page table pointing outside memory thus
// yields entries with reserved bits set rather than a crash.
@inline export function readPhys64(pa: u64): u64 {
  return pa < physBytes ? load<u64>(physBase + <usize>pa) : 0xFFFF_FFFF_FFFF_FFFF;
}

@inline export function writePhys64(pa: u64, v: u64): void {
  if (pa < physBytes) { codeWrite(pa, 8); store<u64>(physBase + <usize>pa, v); }
}

// Sets `bits` in the 8-byte entry at pa, as the processor's locked OR does.
@inline export function orPhys64(pa: u64, bits: u64): void {
  if (pa < physBytes) {
    let p = physBase + <usize>pa;
    codeWrite(pa, 8); // an A/D update in a page holding cached code
    store<u64>(p, load<u64>(p) | bits);
  }
}

@inline export function physInRange(pa: u64, len: u64): bool {
  return pa < physBytes && len <= physBytes - pa;
}

@inline export function physPtr(pa: u64): usize {
  return physBase + <usize>pa;
}
