// The batched access engine: executes a buffer of memory operations for one vCPU
// until the buffer ends or an access exits, so the host crosses into Wasm once per
// batch, not once per access. Four paths run an op: the hit streak below (8-byte ops
// that hit the micro-TLB), the miss loops (miss.ts: L1 misses taken from the L2 or by
// quick walks; miss-nested.ts: the same under nested paging, with 2D walks), and the
// general path (step: everything, and the reference the others must match exactly,
// checked with Cpu.setFastPaths(false) by test/core/fastpath.property.test.ts and
// test/core/nested/fastpath2d.property.test.ts).
//
// Operation record (OP_BYTES = 24):
//   +0  va     u64   linear address
//   +8  value  u64   store data in; load/fetch data out (little-endian, zero-extended);
//                    for TRANSLATE, the physical address out
//   +16 ctl    u32
//   +20 (pad)  u32
//
// ctl:
//    31 ........ 10    9      8       7..4     3..0
//   ┌──────────────┬──────┬────────┬───────┬────────┐
//   │      0       │ USER │IMPLICIT│ size  │  kind  │
//   └──────────────┴──────┴────────┴───────┴────────┘
//   kind: 0 load, 1 store, 2 fetch, 3 translate (value ← pa), 4 OUT (port = va, data =
//   value), 5 IN (port = va; the host fills value), 6 HLT, 7 MOV to CR3 (value),
//   8 INVLPG (va). OUT, IN and HLT always exit; MOV CR3 and INVLPG run in the core,
//   except in shadow mode, where they exit for the hypervisor to emulate.
//   size: 1..8 bytes. USER forces a user-mode access; otherwise CPL=3 means user.
//   IMPLICIT: an implicit supervisor access (never user, never SMAP-exempt).

import {
  ACC_FETCH, ACC_IMPLICIT, ACC_USER, ACC_WRITE, EXIT_GP, EXIT_MMIO, EXIT_NONE, EXIT_PF,
  EXIT_UNSUPPORTED, EXIT_EPT_VIOLATION, EXIT_EPT_MISCONFIG, EXIT_IO, EXIT_HLT, EXIT_CR3,
  EXIT_INVLPG, XLATE_OK, XLATE_PF, XLATE_GP, XLATE_EPT_VIOLATION, XLATE_EPT_MISCONFIG,
} from "./entry";
import { physInRange, physPtr, physBytes, physBase } from "./mem";
import { Cpu, tlbOf, T_D4K, MODE_SHADOW, MODE_NESTED, writeCr3, invlpg } from "./cpu";
import { missRun } from "./miss";
import { missRunNested } from "./miss-nested";
import { translate, rightsFault, PERM_COMPUTE } from "./walk";
import { Tlb, ENTRY, probe, isEntryFor, entryMatches, microSlot, MICRO_ENTRIES, A_V, A_D, A_RIGHTS, A_PKEY_SHIFT, A_PCID_SHIFT, entryAt } from "./tlb";
import { isCodeFrame, codeWrite } from "./x86/icache";
import {
  bump, C_ACCESSES, C_LOADS, C_STORES, C_FETCHES, C_L1_HIT_4K, C_MMIO, C_SPLIT,
} from "./counters";

export const OP_BYTES: usize = 24;
export const K_LOAD: u32 = 0;
export const K_STORE: u32 = 1;
export const K_FETCH: u32 = 2;
export const K_TRANSLATE: u32 = 3;
export const K_OUT: u32 = 4;
export const K_IN: u32 = 5;
export const K_HLT: u32 = 6;
export const K_MOVCR3: u32 = 7;
export const K_INVLPG: u32 = 8;
export const CTL_IMPLICIT: u32 = 1 << 8;
export const CTL_USER: u32 = 1 << 9;
const CTL_LOAD8: u32 = K_LOAD | (8 << 4);
const CTL_STORE8: u32 = K_STORE | (8 << 4);

@inline export function loadN(p: usize, size: u32): u64 {
  if (size == 8) return load<u64>(p);
  if (size == 4) return <u64>load<u32>(p);
  if (size == 1) return <u64>load<u8>(p);
  if (size == 2) return <u64>load<u16>(p);
  let v: u64 = 0;
  for (let i: u32 = 0; i < size; i++) v |= <u64>load<u8>(p + i) << (8 * <u64>i);
  return v;
}

@inline export function storeN(p: usize, v: u64, size: u32): void {
  if (size == 8) store<u64>(p, v);
  else if (size == 4) store<u32>(p, <u32>v);
  else if (size == 1) store<u8>(p, <u8>v);
  else if (size == 2) store<u16>(p, <u16>v);
  else for (let i: u32 = 0; i < size; i++) store<u8>(p + i, <u8>(v >> (8 * <u64>i)));
}

function setExit(c: Cpu, reason: u32, index: u32): void {
  c.exitReason = reason;
  c.exitIndex = index;
}

// Access descriptor for an operation.
@inline function accFor(c: Cpu, ctl: u32): u32 {
  let kind = ctl & 15;
  let acc = kind == K_STORE ? ACC_WRITE : (kind == K_FETCH ? ACC_FETCH : 0);
  if ((ctl & CTL_IMPLICIT) != 0) acc |= ACC_IMPLICIT;
  else if (c.cpl == 3 || (ctl & CTL_USER) != 0) acc |= ACC_USER;
  return acc;
}

function xlateExit(c: Cpu, st: u32, i: u32): u32 {
  if (st == XLATE_PF) return EXIT_PF;
  if (st == XLATE_GP) return EXIT_GP;
  if (st == XLATE_EPT_VIOLATION) return EXIT_EPT_VIOLATION;
  if (st == XLATE_EPT_MISCONFIG) return EXIT_EPT_MISCONFIG;
  return EXIT_UNSUPPORTED;
}

// Non-memory operations. Returns false when the op exits.
function special(c: Cpu, p: usize, kind: u32, size: u32, i: u32): bool {
  let va = load<u64>(p);
  let v = load<u64>(p, 8);
  if (kind == K_OUT || kind == K_IN) {
    c.exitAddr = va & 0xFFFF;
    c.exitValue = v;
    c.errorCode = size | (kind == K_IN ? 0x100 : 0);
    setExit(c, EXIT_IO, i);
    return false;
  }
  if (kind == K_HLT) { setExit(c, EXIT_HLT, i); return false; }
  if (c.mode == MODE_SHADOW) { // the hypervisor emulates these against the guest's tables
    c.exitAddr = va;
    c.exitValue = v;
    setExit(c, kind == K_MOVCR3 ? EXIT_CR3 : EXIT_INVLPG, i);
    return false;
  }
  if (kind == K_MOVCR3) {
    if (!writeCr3(c, v)) { c.exitAddr = v; setExit(c, EXIT_GP, i); return false; }
  } else {
    invlpg(c, va);
  }
  return true;
}

// An access that crosses a page boundary: both pages are translated before any byte
// moves, so a fault on the second page leaves memory untouched (CR2 = its first byte).
function splitAccess(c: Cpu, p: usize, va: u64, acc: u32, size: u32, kind: u32, i: u32): bool {
  bump(c.counters, C_SPLIT);
  let st = translate(c, va, acc);
  if (st != XLATE_OK) { setExit(c, xlateExit(c, st, i), i); return false; }
  let pa1 = c.resPa;
  let va2 = (va | 0xFFF) + 1;
  st = translate(c, va2, acc);
  if (st != XLATE_OK) { setExit(c, xlateExit(c, st, i), i); return false; }
  let pa2 = c.resPa;
  let n1 = <u32>(4096 - (va & 0xFFF));
  if (!physInRange(pa1, <u64>n1) || !physInRange(pa2, <u64>(size - n1))) {
    c.exitAddr = physInRange(pa1, <u64>n1) ? pa2 : pa1;
    bump(c.counters, C_MMIO);
    setExit(c, EXIT_MMIO, i);
    return false;
  }
  if (kind == K_TRANSLATE) { store<u64>(p, pa1, 8); return true; }
  let v = load<u64>(p, 8);
  if (kind == K_STORE) { codeWrite(pa1, <u64>n1); codeWrite(pa2, <u64>(size - n1)); }
  let out: u64 = 0;
  for (let b: u32 = 0; b < size; b++) {
    let q = b < n1 ? physPtr(pa1) + b : physPtr(pa2) + (b - n1);
    if (kind == K_STORE) store<u8>(q, <u8>(v >> (8 * <u64>b)));
    else out |= <u64>load<u8>(q) << (8 * <u64>b);
  }
  if (kind != K_STORE) store<u64>(p, out, 8);
  return true;
}

// After a slow-path translation of a plain 4 KiB data access, mirrors the L1 entry
// into the fast path with the rights the current register state gives it.
// The translation hands over the L1 entry it used or filled (c.l1Entry); it is checked
// to be the data TLB's valid 4 KiB entry for this page, PCID and context, as a probe
// would find, and probed for only when it is not.
export function microFill(c: Cpu, va: u64, acc: u32): void {
  let t = tlbOf(c, T_D4K);
  let tag = va >> 12;
  let pcidBits = c.pcid << A_PCID_SHIFT;
  let e = c.l1Entry;
  if (!isEntryFor(t, e, tag, pcidBits, c.ctx)) e = probe(t, tag, A_V, pcidBits, c.ctx);
  if (e != 0) microSet(c, e, tag, acc);
}

// Mirrors L1 4 KiB entry e (valid, for page `tag`) into its micro-TLB slot.
// permRead / permWrite: permFor(c, acc & ACC_USER [| ACC_WRITE]) if the caller has them.
@inline export function microSet(c: Cpu, e: usize, tag: u64, acc: u32,
                                 permRead: u32 = PERM_COMPUTE, permWrite: u32 = PERM_COMPUTE): void {
  let frame = entryAt(e).frame;
  if (!physInRange(frame, 4096)) return;
  let a = entryAt(e).attr;
  let pkey = (a >> A_PKEY_SHIFT) & 15;
  let base = acc & ACC_USER;
  let s = microSlot(c.micro, tag);
  let r: bool, w: bool;
  if (permRead != PERM_COMPUTE) {
    let rights = (a & A_RIGHTS) >> 1;
    let pk = c.pke != 0;
    r = ((permRead >> rights) & 1) == 0 && !(pk && rightsFault(c, base, a, pkey) != 0);
    w = ((permWrite >> rights) & 1) == 0 && !(pk && rightsFault(c, base | ACC_WRITE, a, pkey) != 0);
  } else {
    r = rightsFault(c, base, a, pkey) == 0;
    w = rightsFault(c, base | ACC_WRITE, a, pkey) == 0;
  }
  store<u64>(s, r ? tag : ~(<u64>0));
  w = w && (a & A_D) != 0 && !isCodeFrame(frame);
  store<u64>(s, w ? tag : ~(<u64>0), 8);
  store<u32>(s, <u32>physPtr(frame), 16);
  store<u32>(s, <u32>e, 20);
  store<u32>(s, <u32>physPtr(frame) - (<u32>tag << 12), 24);
}


// The hottest loop: consecutive 8-byte loads that hit, in a function of its own so that
// its few values stay in registers; four ops per iteration, written out (a quarter of
// the loop overhead and of V8's per-iteration stack check; a helper returning a bool
// compiled to slower code). The slot's l1Entry and addend are read as two u32 loads (no
// shifts: the loop is instruction-bound, not load-bound). Op k of the run has LRU time
// t + k. Returns the first op it does not complete.
function loadHits(micro: usize, p: usize, end: usize, t: u32): usize {
  while (p + 3 * OP_BYTES < end) { // four ops per iteration (s0..s3: their micro slots)
    let v0 = load<u64>(p);
    if (load<u32>(p, 16) != CTL_LOAD8) return p;
    let s0 = micro + ((<usize>v0 >> 7) & ((MICRO_ENTRIES - 1) << 5));
    if (load<u64>(s0) != (v0 + 7) >> 12) return p;
    store<u64>(p, load<u64>(<usize>v0 + load<u32>(s0, 24)), 8);
    store<u32>(load<u32>(s0, 20), t, 36);
    let v1 = load<u64>(p, 24);
    if (load<u32>(p, 40) != CTL_LOAD8) return p + 1 * OP_BYTES;
    let s1 = micro + ((<usize>v1 >> 7) & ((MICRO_ENTRIES - 1) << 5));
    if (load<u64>(s1) != (v1 + 7) >> 12) return p + 1 * OP_BYTES;
    store<u64>(p, load<u64>(<usize>v1 + load<u32>(s1, 24)), 32);
    store<u32>(load<u32>(s1, 20), t + 1, 36);
    let v2 = load<u64>(p, 48);
    if (load<u32>(p, 64) != CTL_LOAD8) return p + 2 * OP_BYTES;
    let s2 = micro + ((<usize>v2 >> 7) & ((MICRO_ENTRIES - 1) << 5));
    if (load<u64>(s2) != (v2 + 7) >> 12) return p + 2 * OP_BYTES;
    store<u64>(p, load<u64>(<usize>v2 + load<u32>(s2, 24)), 56);
    store<u32>(load<u32>(s2, 20), t + 2, 36);
    let v3 = load<u64>(p, 72);
    if (load<u32>(p, 88) != CTL_LOAD8) return p + 3 * OP_BYTES;
    let s3 = micro + ((<usize>v3 >> 7) & ((MICRO_ENTRIES - 1) << 5));
    if (load<u64>(s3) != (v3 + 7) >> 12) return p + 3 * OP_BYTES;
    store<u64>(p, load<u64>(<usize>v3 + load<u32>(s3, 24)), 80);
    store<u32>(load<u32>(s3, 20), t + 3, 36);
    p += 4 * OP_BYTES;
    t += 4;
  }
  for (; p < end; p += OP_BYTES, t++) { // the batch's last ops, one at a time
    let v0 = load<u64>(p);
    if (load<u32>(p, 16) != CTL_LOAD8) return p;
    let s0 = micro + ((<usize>v0 >> 7) & ((MICRO_ENTRIES - 1) << 5));
    if (load<u64>(s0) != (v0 + 7) >> 12) return p;
    store<u64>(p, load<u64>(<usize>v0 + load<u32>(s0, 24)), 8);
    store<u32>(load<u32>(s0, 20), t, 36);
  }
  return p;
}

// Streak loop: consecutive 8-byte loads/stores and translates that hit the fast path,
// run in a small function of their own so that everything stays in registers. Returns
// the index of the first op it cannot complete (the caller takes the general path).
// Every op of the streak is a hit, so the LRU time advances by one per op and the hit
// count is the number of ops run: only stores and translates are counted as they go.
// Loads are what limits it (the loop is load-port bound), hence one u64 read for the
// slot's l1Entry and addend.
// An 8-byte access stays in its page iff (va + 7) >> 12 is its page number, so one
// compare of the slot's tag with that checks the hit and the page bound together.
function streak(c: Cpu, ops: usize, i: u32, count: u32): u32 {
  let micro = c.micro;
  let t = c.clock + 1; // the LRU time of the current op
  let t0 = t;
  let stores: u32 = 0, xlates: u32 = 0;
  let p = ops + <usize>i * OP_BYTES, end = ops + <usize>count * OP_BYTES;
  while (p < end) {
    let q = loadHits(micro, p, end, t);
    t += <u32>((q - p) / OP_BYTES);
    p = q;
    if (p >= end) break;
    let va = load<u64>(p);
    let ctl = load<u32>(p, 16);
    let lo = <usize>va;
    let s = micro + ((lo >> 7) & ((MICRO_ENTRIES - 1) << 5)); // microSlot(micro, va >> 12)
    let ea = load<u64>(s, 20); // l1Entry | addend << 32
    if (ctl == CTL_STORE8) {
      if (load<u64>(s, 8) != (va + 7) >> 12) break;
      store<u64>(lo + <usize>(ea >> 32), load<u64>(p, 8));
      stores++;
    } else if ((ctl & ~(<u32>0xF0)) == K_TRANSLATE) {
      if (load<u64>(s) != va >> 12 || (lo & 0xFFF) + <usize>((ctl >> 4) & 15) > 4096) break;
      store<u64>(p, <u64>(lo + <usize>(ea >> 32) - physBase), 8);
      xlates++;
    } else break; // a load that missed, or another kind
    store<u32>(<usize>ea, t, 36);
    p += OP_BYTES;
    t++;
  }
  let hits = t - t0;
  i += hits;
  if (hits == 0) return i; // a miss-heavy stream comes here once per op: keep it cheap
  c.clock = t - 1;
  let cnt = c.counters;
  let loads = hits - stores - xlates;
  bump(cnt, C_ACCESSES, <u64>(loads + stores));
  bump(cnt, C_LOADS, <u64>loads);
  bump(cnt, C_STORES, <u64>stores);
  bump(cnt, C_L1_HIT_4K, <u64>hits);
  return i;
}

// Runs `count` operations at `ops`; returns how many completed. If fewer than count,
// c.exitReason / exitIndex / errorCode / exitAddr describe the exit.
export function runBatch(c: Cpu, ops: usize, count: u32): u32 {
  c.exitReason = EXIT_NONE;
  let i: u32 = 0;
  while (i < count) {
    if (c.levels >= 4 && c.checker == 0 && c.noFast == 0) {
      if (c.micro != 0) {
        i = streak(c, ops, i, count);
        if (i >= count) break;
      }
      if (c.mode != MODE_NESTED) { // TLB misses with quick walks (miss.ts)
        let j = missRun(c, ops, i, count);
        if (j != i) { i = j; continue; }
      } else { // TLB misses with 2D walks (miss-nested.ts)
        let j = missRunNested(c, ops, i, count);
        if (c.exitReason != EXIT_NONE) return j;
        if (j != i) { i = j; continue; }
      }
    }
    if (!step(c, ops + <usize>i * OP_BYTES, i)) break;
    i++;
  }
  return i;
}

@inline function countAccess(c: Cpu, kind: u32): void {
  bump(c.counters, C_ACCESSES);
  bump(c.counters, kind == K_LOAD ? C_LOADS : (kind == K_STORE ? C_STORES : C_FETCHES));
}

// One operation on the general path (any kind, size, mode; TLB lookups, walks, exits).
// Returns false if it exits.
function step(c: Cpu, p: usize, i: u32): bool {
  let va = load<u64>(p);
  let ctl = load<u32>(p, 16);
  let kind = ctl & 15;
  let size = (ctl >> 4) & 15;
  if (kind > K_TRANSLATE) return special(c, p, kind, size, i);
  let acc = accFor(c, ctl);
  if ((va & 0xFFF) + <u64>size > 4096) {
    if (!splitAccess(c, p, va, acc, size, kind, i)) return false;
    if (kind != K_TRANSLATE) countAccess(c, kind);
    return true;
  }
  let st = translate(c, va, acc);
  if (st != XLATE_OK) { setExit(c, xlateExit(c, st, i), i); return false; }
  let pa = c.resPa;
  // Mirror a plain 4 KiB data translation into the fast path for the next accesses.
  if ((ctl & (CTL_USER | CTL_IMPLICIT)) == 0 && kind != K_FETCH && c.resSize == 4096 &&
      c.micro != 0 && c.checker == 0 && c.levels >= 4) microFill(c, va, acc);
  if (kind == K_TRANSLATE) { store<u64>(p, pa, 8); return true; }
  if (!physInRange(pa, <u64>size)) {
    c.exitAddr = pa;
    bump(c.counters, C_MMIO);
    setExit(c, EXIT_MMIO, i);
    return false;
  }
  let q = physPtr(pa);
  if (kind == K_STORE) { codeWrite(pa, <u64>size); storeN(q, load<u64>(p, 8), size); }
  else store<u64>(p, loadN(q, size), 8);
  countAccess(c, kind);
  return true;
}
