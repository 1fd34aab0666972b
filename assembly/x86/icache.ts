// The decoded-instruction cache: instructions are decoded once and kept, keyed by the
// physical address of their first byte (so every address space, alias and vCPU of the
// machine shares them), and dropped when their page is written.
//
// Per-frame generation words (GEN_BYTES = 4 per 4 KiB frame of host memory, allocated at
// init, read by the host through genPtr to invalidate on its own writes):
//    31    30 ............ 0
//   ┌────┬──────────────────┐
//   │CODE│   generation     │   CODE: some cached instruction was decoded from the frame
//   └────┴──────────────────┘
// A cached entry is valid only while its frame's word equals the one it was decoded
// under (CODE set). Any write to a CODE frame — by the interpreter, the batch engine, the
// host (PhysicalMemory, physFill/physCopy: DMA, loaders, COW copies) — bumps the
// generation and clears CODE, so every entry of that frame is stale at once.
// Fast-path (micro) write entries are never made for CODE frames, so guest stores to
// them take the slow path, which calls codeWrite; marking a frame CODE drops the write
// entries already mirrored for it in every registered vCPU.
//
// Entry (IC_BYTES): the Insn record (decode.ts) followed by
//   +IC_PA   pa   u64   physical address of the first byte (~0 = empty)
//   +IC_GEN  gen  u32   the frame's generation word when decoded
// Instructions that cross a page boundary are not cached.

import { alloc, physBytes, physBase } from "../mem";
import { MICRO_ENTRIES } from "../tlb";
import { Insn } from "./decode";

export const CODE_BIT: u32 = 0x8000_0000;
export const IC_ENTRIES: u32 = 16384;
export const IC_PA: usize = (offsetof<Insn>() + 7) & ~(<usize>7);
export const IC_GEN: usize = IC_PA + 8;
export const IC_BYTES: usize = (IC_GEN + 4 + 15) & ~(<usize>15);
const MAX_MICROS: u32 = 4096;

export let genBase: usize = 0;
let cache: usize = 0;
let micros: usize = 0;
let nMicros: u32 = 0;

// Allocates the generation words (at init, right after physical memory).
export function initGens(): bool {
  genBase = alloc((physBytes >> 12) * 4);
  micros = alloc(<u64>MAX_MICROS * 4);
  return genBase != 0 && micros != 0;
}

// The decoded cache itself, on first use by an interpreter.
export function initCache(): bool {
  if (cache != 0) return true;
  cache = alloc(<u64>IC_ENTRIES * IC_BYTES);
  if (cache == 0) return false;
  for (let i: u32 = 0; i < IC_ENTRIES; i++) store<u64>(cache + <usize>i * IC_BYTES + IC_PA, ~(<u64>0));
  return true;
}

// Registers a vCPU's fast-path array, whose write entries must never cover a CODE frame.
export function registerMicro(m: usize): void {
  if (m == 0 || micros == 0 || nMicros >= MAX_MICROS) return;
  store<u32>(micros + <usize>nMicros * 4, <u32>m);
  nMicros++;
}

@inline export function genOf(pa: u64): u32 {
  return load<u32>(genBase + <usize>(pa >> 12) * 4);
}

@inline export function isCodeFrame(pa: u64): bool {
  return genBase != 0 && (genOf(pa) & CODE_BIT) != 0;
}

// A write to [pa, pa+len): drops the cached instructions of every CODE frame it touches.
@inline export function codeWrite(pa: u64, len: u64): void {
  if (genBase == 0 || len == 0) return;
  let f = pa >> 12, last = (pa + len - 1) >> 12;
  for (; f <= last; f++) {
    let p = genBase + <usize>f * 4;
    let g = load<u32>(p);
    if ((g & CODE_BIT) != 0) store<u32>(p, (g + 1) & ~CODE_BIT);
  }
}

// Marks the frame of pa as holding cached code; returns its generation word.
function markCode(pa: u64): u32 {
  let p = genBase + <usize>(pa >> 12) * 4;
  let g = load<u32>(p) | CODE_BIT;
  store<u32>(p, g);
  let host = <u32>(physBase + <usize>(pa & ~(<u64>0xFFF)));
  for (let i: u32 = 0; i < nMicros; i++) {
    let m = <usize>load<u32>(micros + <usize>i * 4);
    for (let j: u32 = 0; j < MICRO_ENTRIES; j++) {
      let s = m + (<usize>j << 5);
      if (load<u32>(s, 16) == host) store<u64>(s, ~(<u64>0), 8);
    }
  }
  return g;
}

// The cache entry for an instruction at pa: a valid decoded record, or 0 (miss; the
// caller decodes into slotFor(pa) and calls commit).
@inline export function lookup(pa: u64): usize {
  let e = cache + <usize>((<u32>(pa ^ (pa >> 12)) & (IC_ENTRIES - 1))) * IC_BYTES;
  if (load<u64>(e + IC_PA) == pa && load<u32>(e + IC_GEN) == genOf(pa)) return e;
  return 0;
}

@inline export function slotFor(pa: u64): usize {
  return cache + <usize>((<u32>(pa ^ (pa >> 12)) & (IC_ENTRIES - 1))) * IC_BYTES;
}

// Keeps the record decoded in slot e for pa (it must not cross a page).
export function commit(e: usize, pa: u64): void {
  let g = genOf(pa);
  if ((g & CODE_BIT) == 0) g = markCode(pa);
  store<u64>(e + IC_PA, pa);
  store<u32>(e + IC_GEN, g);
}

export function forget(e: usize): void {
  store<u64>(e + IC_PA, ~(<u64>0));
}

@inline export function cacheReady(): bool { return cache != 0; }
