// Walking ahead: the bare miss loop (miss.ts bareLoop) first walks a block of ops in a
// tight loop of loads and bit operations with no branch per level, then takes the ops
// one by one with what it read. The first pass has few live values and nothing in it
// depends on an earlier op, so the host CPU overlaps several ops' walks (their leaf loads
// miss its L1 cache); the second pass has no long load left.
//
// The pass only reads memory. It checks the walk's shape: every level present with no
// reserved bit, and a 4 KiB leaf. An op whose walk has another shape, or that the loops
// do not run at all (loopOpIn), is marked; the second pass checks the rest as quickWalk
// (walk.ts) does (A everywhere, D for a store, rights, protection keys) and takes every
// marked or failing op exactly as before, with quickWalk or a stop. The results are the
// same bit for bit. Ops must not change memory between the pass and their use, so a block
// ends at its first store (that store's own walk comes before its write).
//
// Per op of a block (AHEAD_BYTES = 16):
//   +0  leaf  u64  the level-1 entry read
//   +8  walk  u64  the whole word 0 if the op is marked, else:
//          63   62 ......................................... 0
//        ┌────┬────────────────────────────────────────────────┐
//        │ XD │ AND of every level's entry (P, W, U, A, ...)    │
//        └────┴────────────────────────────────────────────────┘
//        XD: the OR of every level's XD bit (reserved without NXE, so set only with it)
//
// The records are read only in the same missRun call, for the ops just walked.

import { physBase, physBytes } from "./mem";
import { PTE_P, PTE_PS } from "./entry";
import { OP_BYTES, K_LOAD, K_STORE, K_TRANSLATE, CTL_USER, CTL_IMPLICIT } from "./access";

export const AHEAD_MAX: u32 = 32;
export const AHEAD_BYTES: usize = 16;
export const ahead: usize = memory.data(<i32>(AHEAD_MAX * <u32>AHEAD_BYTES), 16);
const XD: u64 = <u64>1 << 63;

// Whether the miss loops run this op: a plain load, store or translate (not user-forced,
// not implicit) inside one page, at a canonical address (cpu.ts canonical, whose shift
// the caller holds). One branch.
@inline export function loopOpIn(va: u64, ctl: u32, canonShift: u64): bool {
  const kinds: u32 = (1 << K_LOAD) | (1 << K_STORE) | (1 << K_TRANSLATE);
  let size = (ctl >> 4) & 15;
  return (<u32>((ctl & (CTL_USER | CTL_IMPLICIT)) == 0) & ((kinds >> (ctl & 15)) & 1) &
    <u32>((va & 0xFFF) + <u64>size <= 4096) & <u32>(<u64>(<i64>(va << canonShift) >> canonShift) == va)) != 0;
}

// The entry at `table` (page-aligned, inside memory) for va's index at `level`.
@inline function aheadEntry(base: usize, table: u64, va: u64, level: u32): u64 {
  return load<u64>(base + <usize>(table | ((va >> (9 * <u64>level)) & 0xFF8)));
}

// Walks ops [i, i + n) from `root` (inside memory), 4 or 5 levels. Returns how many it
// walked: n, or fewer if a store ended the block. Per level only the load and two running
// values, the AND and the OR of the entries: P is checked on the AND, reserved bits on the
// OR, PS on the OR of the upper levels. A table address is cut to the largest
// power-of-two window inside memory, so every load is in bounds; an address bit beyond the
// window, in any entry, counts as reserved (the op is marked: with memory that is not a
// power of two, walks that reach above the window take the careful way). An op the loops
// do not run is marked too (its walk is garbage but harmless). Out of line, one function
// per level count, so the pass has registers of its own.
export function walkAhead4(ops: usize, i: u32, n: u32, root: u64, mask: u64, high: u64, canonShift: u64): u32 {
  return walkAheadIn(ops, i, n, root, mask, high, canonShift, 4);
}
export function walkAhead5(ops: usize, i: u32, n: u32, root: u64, mask: u64, high: u64, canonShift: u64): u32 {
  return walkAheadIn(ops, i, n, root, mask, high, canonShift, 5);
}

@inline function walkAheadIn(ops: usize, i: u32, n: u32, root: u64, mask: u64, high: u64, canonShift: u64,
                             levels: u32): u32 {
  let base = physBase;
  let window: u64 = 1;
  while (window * 2 <= physBytes) window *= 2;
  let inMask = mask & (window - 1);
  let rsvd = high | (mask & ~(window - 1));
  let p = ops + <usize>i * OP_BYTES, at = ahead, end = ahead + <usize>n * AHEAD_BYTES;
  while (at < end) {
    let va = load<u64>(p);
    let table = root, pte: u64, andv: u64 = ~(<u64>0), orUp: u64 = 0;
    if (levels == 5) {
      pte = aheadEntry(base, table, va, 5);
      andv &= pte; orUp |= pte; table = pte & inMask;
    }
    pte = aheadEntry(base, table, va, 4);
    andv &= pte; orUp |= pte; table = pte & inMask;
    pte = aheadEntry(base, table, va, 3);
    andv &= pte; orUp |= pte; table = pte & inMask;
    pte = aheadEntry(base, table, va, 2);
    andv &= pte; orUp |= pte; table = pte & inMask;
    pte = aheadEntry(base, table, va, 1);
    andv &= pte;
    let orv = orUp | pte;
    let ctl = load<u32>(p, 16);
    let bad = ((andv & PTE_P) ^ PTE_P) | (orUp & PTE_PS) | (orv & rsvd);
    store<u64>(at, pte);
    store<u64>(at, select<u64>((andv & ~XD) | (orv & XD), 0, bad == 0 && loopOpIn(va, ctl, canonShift)), 8);
    at += AHEAD_BYTES;
    if ((ctl & 15) == K_STORE) break;
    p += OP_BYTES;
  }
  return <u32>((at - ahead) / AHEAD_BYTES);
}

