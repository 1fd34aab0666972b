// Baselines for `npm run bench`, run over the same operation stream as the engine so
// the engine's figures can be read as ratios measured in one run.

import { physBase, physBytes, readPhys64 } from "./mem";
import { OP_BYTES } from "./access";

// Plain loads of host memory at (va mod the largest power of two ≤ memory size): what a
// load costs here with no translation at all.
export function rawLoads(ops: usize, count: u32): u64 {
  let pow2: u64 = 1;
  while (pow2 * 2 <= physBytes) pow2 *= 2;
  let mask = (pow2 - 1) & ~(<u64>7);
  let sum: u64 = 0;
  for (let i: u32 = 0; i < count; i++) {
    sum += load<u64>(physBase + <usize>(load<u64>(ops + <usize>i * OP_BYTES) & mask));
  }
  return sum;
}

// A naive 4-level walk per op (no checks, no caches, no A/D): the floor a full-fidelity
// walker is compared with.
export function naiveWalks(ops: usize, count: u32, cr3: u64): u64 {
  let sum: u64 = 0;
  const addr: u64 = 0x000F_FFFF_FFFF_F000;
  for (let i: u32 = 0; i < count; i++) {
    let va = load<u64>(ops + <usize>i * OP_BYTES);
    let t = cr3 & addr;
    t = readPhys64(t | ((va >> 36) & 0xFF8)) & addr;
    t = readPhys64(t | ((va >> 27) & 0xFF8)) & addr;
    t = readPhys64(t | ((va >> 18) & 0xFF8)) & addr;
    t = readPhys64(t | ((va >> 9) & 0xFF8)) & addr;
    sum += t | (va & 0xFFF);
  }
  return sum;
}

// A plain Wasm memory copy of frames src[i] → dst[i] (u32 frame numbers, 4 KiB each):
// the yardstick for page hashing and compare (memory.copy, no checks but the range).
export function copyFrames(src: usize, dst: usize, count: u32): u32 {
  for (let i: u32 = 0; i < count; i++) {
    let s = <u64>load<u32>(src + (<usize>i << 2)) << 12;
    let d = <u64>load<u32>(dst + (<usize>i << 2)) << 12;
    if (s + 4096 > physBytes || d + 4096 > physBytes) return i;
    memory.copy(physBase + <usize>d, physBase + <usize>s, 4096);
  }
  return count;
}
