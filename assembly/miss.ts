// The batch engine's miss path for native paging: consecutive loads, stores and
// translates that miss the L1 TLBs — and hit the L2's 4 KiB entries, or miss it too and
// walk quickly (walk.ts quickWalk: present, no reserved bit, A/D already set, access
// allowed) — run here in one loop, with none of the general path's call chain (step →
// translate → lookup → walk → commit) and the frequent counters kept in locals until the
// loop ends.
//
// It leaves every TLB, PSC, walk path, clock and counter exactly as the general path
// would (fills take the victim the general path's hint would give, missVictim); it does
// not fill the micro-TLB mirror after a walk (the page's next access does, on the
// general path), which changes no result. It stops, before any side effect the general
// path would not repeat identically, at the first op it cannot finish: an L1 hit, a walk
// that needs the careful walker (fault, A/D to set), an exit, another kind of op.
// runBatch then runs that op on the general path (access.ts step), which redoes its
// probes and walk from the start.

import { ACC_USER, ACC_WRITE, PTE_A, PTE_D, PKEY_SHIFT } from "./entry";
import { physInRange, physPtr, physBytes } from "./mem";
import { walkAhead4, walkAhead5, loopOpIn, ahead, AHEAD_MAX, AHEAD_BYTES } from "./walk-ahead";
import { Cpu, tlbOf, T_D4K, T_D2M, T_D1G, T_L2 } from "./cpu";
import { pscLookup, quickWalk, permFor, pkFaults, rightsFault, fillPscs, fillTlbs, fillTlbs4k, recordPath } from "./walk";
import { Tlb, probe, probeDirInline, fillAt, fillScan, missVictim, touchEntry, entryAt, A_V, A_W, A_U, A_NX, A_D, A_SIZE_SHIFT, A_PKEY_SHIFT, A_PCID_SHIFT, A_PCID } from "./tlb";
import { codeWrite } from "./x86/icache";
import {
  bump, C_L2_HIT_4K, C_ACCESSES, C_LOADS, C_STORES, C_L1_MISS, C_L2_MISS, C_WALKS, C_WALK_REFS, C_PSC_MISS, C_PSC_HIT_PDE, C_WALK_4K,
} from "./counters";
import { OP_BYTES, K_STORE, K_TRANSLATE, loadN, storeN, microSet } from "./access";

// Where va's translation is cached: 0 nowhere (a walk), else the L2's 4 KiB entry (the
// loop takes that hit itself), or HELD for anything else (an L1 hit, a large page in the
// L2: the general path takes it). The probes go in lookup's order (walk.ts), those of
// large pages out of line (most runs have none cached); no victim is noted: a 4 KiB fill
// takes missVictim's way, other fills scan (the same choice).
export const HELD: usize = 1;
@inline export function tlbWhere(c: Cpu, va: u64, pcidBits: u32, ctx: u32): usize {
  let t = tlbOf(c, T_D4K);
  if (t.sizes != 0 && probe(t, va >> 12, A_V, pcidBits, ctx) != 0) return HELD;
  if ((tlbOf(c, T_D2M).sizes | tlbOf(c, T_D1G).sizes) != 0 && l1LargeHit(c, va, pcidBits, ctx)) return HELD;
  let l2 = tlbOf(c, T_L2), sizes = l2.sizes;
  if ((sizes & 1) != 0) {
    let e = l2.dir != 0 ? probeDirInline(l2, va >> 12, A_V, pcidBits, ctx) : probe(l2, va >> 12, A_V, pcidBits, ctx);
    if (e != 0) return e;
  }
  return (sizes & 6) != 0 && l2LargeHit(l2, va, pcidBits, ctx) ? HELD : 0;
}

// Whether the L1 2 MiB or 1 GiB data TLB holds va (lookup's second and third probes).
function l1LargeHit(c: Cpu, va: u64, pcidBits: u32, ctx: u32): bool {
  let t = tlbOf(c, T_D2M);
  if (t.sizes != 0 && probe(t, va >> 21, A_V | (1 << A_SIZE_SHIFT), pcidBits, ctx) != 0) return true;
  t = tlbOf(c, T_D1G);
  return t.sizes != 0 && probe(t, va >> 30, A_V | (2 << A_SIZE_SHIFT), pcidBits, ctx) != 0;
}

// Whether the L2 holds va in a 2 MiB or 1 GiB entry.
function l2LargeHit(l2: Tlb, va: u64, pcidBits: u32, ctx: u32): bool {
  let sizes = l2.sizes;
  if ((sizes & 2) != 0 && probe(l2, va >> 21, A_V | (1 << A_SIZE_SHIFT), pcidBits, ctx) != 0) return true;
  return (sizes & 4) != 0 && probe(l2, va >> 30, A_V | (2 << A_SIZE_SHIFT), pcidBits, ctx) != 0;
}

// An L2 hit as the general path takes it (walk.ts lookup and useEntry, access.ts step):
// the L1 refilled from the L2 entry e, e's LRU time and order, the micro-TLB mirror.
// The caller has checked that the access may use e (rights, D for a store, memory).
// The refill's victim is lookup's: the L1 probe's noted one (missVictim), unless e is a
// global entry filled under another PCID, which fill does not trust the note for: it
// scans, and may replace a stale entry of e's tag and PCID that the probe did not match.
@inline export function takeL2Hit(c: Cpu, e: usize, va: u64, acc: u32, clk: u32, permRead: u32, permWrite: u32): void {
  let tag = va >> 12;
  let l1 = tlbOf(c, T_D4K), f: usize = 0;
  if (l1.ways != 0) {
    let attr = entryAt(e).attr, frame = entryAt(e).frame, leafPa = entryAt(e).leafPa, leafVal = entryAt(e).leafVal;
    f = (attr & A_PCID) == c.pcid << A_PCID_SHIFT ? fillAt(l1, missVictim(l1, tag), tag, attr, frame, leafPa, leafVal, c.ctx, clk)
      : fillScan(l1, tag, attr, frame, leafPa, leafVal, c.ctx, clk);
  }
  c.l1Entry = f;
  let l2 = tlbOf(c, T_L2);
  c.hitTlb = l2.dir != 0 ? changetype<usize>(l2) : 0;
  entryAt(e).stamp = clk;
  if (l2.dir != 0) touchEntry(l2, e);
  if (f != 0 && c.micro != 0) microSet(c, f, tag, acc, permRead, permWrite);
}

// Whether the miss loops run this op (walk-ahead.ts loopOpIn, with c's canonical shift).
@inline function loopOp(c: Cpu, va: u64, ctl: u32): bool {
  return loopOpIn(va, ctl, <u64>c.canonShift);
}

// The data access of a load or store op once its translation pa is known.
@inline function dataAccess(p: usize, pa: u64, isStore: bool, size: u32): void {
  let q = physPtr(pa);
  if (isStore) {
    codeWrite(pa, <u64>size);
    storeN(q, load<u64>(p, 8), size);
  } else {
    store<u64>(p, loadN(q, size), 8);
  }
}

// Whether an op's walk, read ahead (walk-ahead.ts: the leaf entry and the walk's AND with
// XD ORed in), completes as quickWalk would complete it: A set at every level (0 marks an
// uncommon walk), D too in the leaf for a store, and the access allowed by the
// permission bytes (read | write << 8) and by the protection keys.
@inline function commonWalk(c: Cpu, pte: u64, walk: u64, perms: u32, isStore: bool, user: u32, pk: bool): bool {
  let rights = (<u32>walk & (A_W | A_U)) | (<u32>(walk >> 60) & A_NX);
  let leafBits = isStore ? PTE_A | PTE_D : PTE_A;
  let ok = (walk & PTE_A) != 0 && (pte & leafBits) == leafBits && (((perms >> (isStore ? 8 : 0)) >> (rights >> 1)) & 1) == 0;
  if (pk && ok) ok = !pkFaults(c, (isStore ? ACC_WRITE : 0) | user, rights, <u32>(pte >> PKEY_SHIFT) & 15);
  return ok;
}

@inline function isStoreAt(ops: usize, i: u32): bool {
  return (load<u32>(ops + <usize>i * OP_BYTES, 16) & 15) == K_STORE;
}

// Loads and stores of a run, counted at its end (translates are not accesses).
@inline function countAccesses(cnt: usize, accesses: u32, stores: u32): void {
  if (accesses == 0) return;
  bump(cnt, C_ACCESSES, <u64>accesses);
  bump(cnt, C_LOADS, <u64>(accesses - stores));
  bump(cnt, C_STORES, <u64>stores);
}

// Runs ops from i while they take the miss path; returns the index of the first op it
// does not complete. Callers check the mode (not nested), levels (4/5) and checker (off).
// Stores per op are what limits a walk loop, so the walk path is written once, for the
// last walk (recordPath; before a data store too, which could change a table), unless PSC
// fills need it at once; the clock and the frequent counters are written at the end.
export function missRun(c: Cpu, ops: usize, i: u32, count: u32): u32 {
  if (c.tlbOn == 0 && c.pscOn == 0) return bareRun(c, ops, i, count);
  return cachedRun(c, ops, i, count);
}

// missLoop with every TLB and PSC off (the configuration that measures walks). Every op
// it completes walks from the top (CR3, all levels) and misses every PSC, so most
// counters follow from the number of ops, and only large leaves, stores and translates
// are counted as they go; a walk without caches does not read the clock, which is
// advanced at the end. One copy of the loop per level count and protection-key setting.
function bareRun(c: Cpu, ops: usize, i: u32, count: u32): u32 {
  let pk = c.pke != 0; // protection keys: a check per op
  if (c.levels == 4) return pk ? bareLoop(c, ops, i, count, 4, true) : bareLoop(c, ops, i, count, 4, false);
  return pk ? bareLoop(c, ops, i, count, 5, true) : bareLoop(c, ops, i, count, 5, false);
}

// The walks are read ahead a block at a time (walk-ahead.ts); an op whose walk took the
// common shape (a 4 KiB leaf, everything present, A/D set, access allowed) completes from
// what was read, any other walks again with quickWalk. Loads and translates of the common
// shape run in an inner loop with no call in it (calls make the JIT keep the loop's
// values on the stack); a store (the last op of a block read ahead: it may rewrite a
// table) and any other op are taken one at a time after it. Blocks start small and grow
// while ops keep completing, so a run that stops early reads little ahead.
@inline function bareLoop(c: Cpu, ops: usize, i: u32, count: u32, levels: u32, pk: bool): u32 {
  let user = c.cpl == 3 ? ACC_USER : 0;
  let perms = permFor(c, user) | (permFor(c, ACC_WRITE | user) << 8); // read, write
  let mask = c.addrMask, canonShift = <u64>c.canonShift, frameMask = mask & ~(<u64>0xFFF);
  let root = c.cr3 & mask;
  if (root >= physBytes) return i; // every walk would stop at its first level
  let i0 = i;
  let stores: u32 = 0, xlates: u32 = 0, walks2m: u32 = 0, walks1g: u32 = 0;
  // The leaf level of op i − 1's walk while its path is not written yet (0: none).
  let pendLeaf: u32 = 0;
  let resPa: u64 = 0, resLeaf: u32 = 1;
  // Reading ahead pays only while most walks take the common shape: after a block where
  // most did not (large pages, say), the run takes every op with quickWalk instead.
  let blk: u32 = 4, stop = false, readAhead = true, uncommon: u32 = 0;
  while (i < count && !stop) {
    let n = min<u32>(blk, count - i), start = i;
    // A block ends at its first store, so one that starts with a store is the run of
    // stores there, taken with quickWalk (a run of stores does not pay for a pass per op).
    let walked = readAhead && !isStoreAt(ops, i);
    let end = i + n;
    if (walked) end = i + (levels == 4 ? walkAhead4(ops, i, n, root, mask, c.rsvdHigh, canonShift)
      : walkAhead5(ops, i, n, root, mask, c.rsvdHigh, canonShift));
    else if (readAhead) for (end = i + 1; end < i + n && isStoreAt(ops, end); end++);
    if (blk < AHEAD_MAX) blk <<= 1;
    let at = ahead;
    while (i < end) {
      if (walked) for (; i < end; i++, at += AHEAD_BYTES) {
        let p = ops + <usize>i * OP_BYTES;
        let ctl = load<u32>(p, 16);
        let kind = ctl & 15, size = (ctl >> 4) & 15;
        let pte = load<u64>(at), walk = load<u64>(at, 8);
        if (kind == K_STORE || !commonWalk(c, pte, walk, perms, false, user, pk)) break;
        let pa = (pte & frameMask) | (load<u64>(p) & 0xFFF);
        if (kind == K_TRANSLATE) {
          store<u64>(p, pa, 8);
          xlates++;
        } else {
          if (!physInRange(pa, <u64>size)) break;
          store<u64>(p, loadN(physPtr(pa), size), 8);
        }
        pendLeaf = 1;
        resPa = pa; resLeaf = 1;
      }
      if (i == end) break;
      // Op i: a store, or a walk to take again, or an op that stops the loop.
      let p = ops + <usize>i * OP_BYTES;
      let va = load<u64>(p);
      let ctl = load<u32>(p, 16);
      let kind = ctl & 15, size = (ctl >> 4) & 15;
      let isStore = kind == K_STORE;
      let pte = load<u64>(at), leaf: u32 = 1, pa: u64;
      if (walked && commonWalk(c, pte, load<u64>(at, 8), perms, isStore, user, pk)) {
        pa = (pte & frameMask) | (va & 0xFFF);
      } else {
        if (!loopOpIn(va, ctl, canonShift)) { stop = true; break; }
        uncommon++;
        pte = quickWalk(c, va, (isStore ? ACC_WRITE : 0) | user, 0, false, levels, (perms >> (isStore ? 8 : 0)) & 0xFF);
        if (pte == 0) { stop = true; break; }
        leaf = c.qLeaf;
        let pageMask = (<u64>1 << (12 + 9 * <u64>(leaf - 1))) - 1;
        pa = (pte & mask & ~pageMask) | (va & pageMask);
      }
      if (kind != K_TRANSLATE && !physInRange(pa, <u64>size)) { stop = true; break; }
      if (leaf != 1) {
        // A walk to a larger leaf leaves the earlier walk's lower levels in the path.
        if (pendLeaf != 0 && leaf > pendLeaf) recordPath(c, load<u64>(p - OP_BYTES), root, levels, pendLeaf);
        if (leaf == 2) walks2m++; else walks1g++;
      }
      pendLeaf = leaf;
      resPa = pa; resLeaf = leaf;
      if (kind == K_TRANSLATE) {
        store<u64>(p, pa, 8);
        xlates++;
      } else {
        if (isStore) {
          recordPath(c, va, root, levels, leaf); // a store may change a table
          pendLeaf = 0;
          stores++;
        }
        dataAccess(p, pa, isStore, size);
      }
      i++;
      at += AHEAD_BYTES;
    }
    if (walked && uncommon * 2 > i - start) readAhead = false;
    uncommon = 0;
  }
  if (pendLeaf != 0) recordPath(c, load<u64>(ops + <usize>(i - 1) * OP_BYTES), root, levels, pendLeaf);
  let n = i - i0;
  if (n == 0) return i;
  c.resPa = resPa; c.resSize = <u64>1 << (12 + 9 * <u64>(resLeaf - 1));
  c.clock += n;
  let cnt = c.counters;
  let walks = <u64>n, large = <u64>(walks2m + walks1g);
  bump(cnt, C_WALKS, walks);
  bump(cnt, C_WALK_REFS, walks * <u64>levels - <u64>walks2m - 2 * <u64>walks1g);
  bump(cnt, C_PSC_MISS, walks);
  bump(cnt, C_WALK_4K, walks - large);
  if (large != 0) { bump(cnt, C_WALK_4K + 1, <u64>walks2m); bump(cnt, C_WALK_4K + 2, <u64>walks1g); }
  countAccesses(cnt, n - xlates, stores);
  return i;
}

function cachedRun(c: Cpu, ops: usize, i: u32, count: u32): u32 {
  let tlbOn = c.tlbOn != 0, pscOn = c.pscOn != 0;
  return c.levels == 4 ? missLoop(c, ops, i, count, tlbOn, pscOn, 4) : missLoop(c, ops, i, count, tlbOn, pscOn, 5);
}

// Every op the loop completes walks once (and misses the TLBs once, with TLBs on), so
// those counts follow from the number of ops, n; the clock is the start clock + n.
@inline function missLoop(c: Cpu, ops: usize, i: u32, count: u32, tlbOn: bool, pscOn: bool, levels: u32): u32 {
  let user = c.cpl == 3 ? ACC_USER : 0;
  let permRead = permFor(c, user), permWrite = permFor(c, ACC_WRITE | user);
  let pcidBits = c.pcid << A_PCID_SHIFT, ctx = c.ctx;
  let clk0 = c.clock, i0 = i;
  let stores: u32 = 0, xlates: u32 = 0, pscMisses: u32 = 0, pdeHits: u32 = 0, large: u32 = 0, l2Hits: u32 = 0;
  let refs: u64 = 0;
  // The last walk whose path is not written yet: va, start table and level, leaf level.
  let pendVa: u64 = 0, pendTable: u64 = 0, pendLevel: u32 = 0, pendLeaf: u32 = 0;
  let resPa: u64 = 0, resSize: u64 = 0;
  for (; i < count; i++) {
    let p = ops + <usize>i * OP_BYTES;
    let va = load<u64>(p);
    let ctl = load<u32>(p, 16);
    if (!loopOp(c, va, ctl)) break;
    let kind = ctl & 15, size = (ctl >> 4) & 15;
    let acc = (kind == K_STORE ? ACC_WRITE : 0) | user;
    let clk = clk0 + (i - i0);
    if (tlbOn) {
      let e = tlbWhere(c, va, pcidBits, ctx);
      if (e == HELD) break;
      if (e != 0) { // an L2 hit: no walk
        let a = entryAt(e).attr;
        let pa = entryAt(e).frame | (va & 0xFFF);
        if (rightsFault(c, acc, a, (a >> A_PKEY_SHIFT) & 15) != 0 || (kind == K_STORE && (a & A_D) == 0) ||
            (kind != K_TRANSLATE && !physInRange(pa, <u64>size))) break;
        c.clock = clk + 1;
        takeL2Hit(c, e, va, acc, clk + 1, permRead, permWrite);
        l2Hits++;
        resPa = pa; resSize = 4096;
        if (kind == K_TRANSLATE) { store<u64>(p, pa, 8); xlates++; continue; }
        if (kind == K_STORE) {
          if (pendLevel != 0) { recordPath(c, pendVa, pendTable, pendLevel, pendLeaf); pendLevel = 0; }
          stores++;
        }
        dataAccess(p, pa, kind == K_STORE, size);
        continue;
      }
    }
    c.clock = clk + 1; // PSC stamps and fills read it; put back if the op stops below
    let pscLevel = pscLookup(c, va);
    let top = pscLevel != 0 ? pscLevel - 1 : levels;
    let table = pscLevel != 0 ? c.resPa : c.cr3 & c.addrMask;
    let record = pscOn && top > 1; // PSC fills read the path
    let perm = kind == K_STORE ? permWrite : permRead;
    // A PDE-cache hit (most walks of a large working set) reads one level: its own copy.
    let pte = pscLevel == 2 ? quickWalk(c, va, acc, 2, false, levels, perm)
      : record ? quickWalk(c, va, acc, pscLevel, true, levels, perm) : quickWalk(c, va, acc, pscLevel, false, levels, perm);
    let leaf = c.qLeaf;
    let pageMask = (<u64>1 << (12 + 9 * <u64>(leaf - 1))) - 1;
    let pa = (pte & c.addrMask & ~pageMask) | (va & pageMask);
    if (pte == 0 || (kind != K_TRANSLATE && !physInRange(pa, <u64>size))) { c.clock = clk; break; }
    // The commit (walk.ts commit, with the counters in locals).
    refs += <u64>(top - leaf + 1);
    if (pscLevel == 2) pdeHits++;
    else if (pscLevel != 0) bump(c.counters, C_PSC_HIT_PDE + <i32>pscLevel - 2);
    else pscMisses++;
    if (record) {
      // quickWalk wrote this walk's path; a pending one with levels outside it goes first.
      if (pendLevel != 0 && (top < pendLevel || leaf > pendLeaf)) {
        recordPath(c, pendVa, pendTable, pendLevel, pendLeaf);
        recordPath(c, va, table, top, leaf);
      }
      fillPscs(c, va, top, leaf, pscLevel != 0 ? c.pscRights : A_W | A_U);
      pendLevel = 0;
    } else {
      // The path keeps the levels a walk does not reach from earlier walks: write the
      // pending one first unless this walk's levels cover it.
      if (pendLevel != 0 && (top < pendLevel || leaf > pendLeaf)) recordPath(c, pendVa, pendTable, pendLevel, pendLeaf);
      pendVa = va; pendTable = table; pendLevel = top; pendLeaf = leaf;
    }
    let frame = pte & c.addrMask & ~pageMask;
    if (tlbOn) {
      // The micro-TLB mirror is not filled here but on the page's next access, which hits
      // the L1 on the general path (step → microFill): a miss-heavy stream, whose pages
      // are rarely touched again before they are evicted, does not pay for it.
      if (leaf == 1) {
        fillTlbs4k(c, va, frame, c.qLeafPa, pte, c.qRights);
      } else {
        fillTlbs(c, va, acc, leaf - 1, frame, c.qLeafPa, pte, c.qRights, 0);
      }
    }
    if (leaf != 1) { large++; bump(c.counters, C_WALK_4K + <i32>leaf - 1); }
    resPa = pa; resSize = pageMask + 1;
    if (kind == K_TRANSLATE) { store<u64>(p, pa, 8); xlates++; continue; }
    if (kind == K_STORE) {
      if (pendLevel != 0) { recordPath(c, pendVa, pendTable, pendLevel, pendLeaf); pendLevel = 0; }
      stores++;
    }
    dataAccess(p, pa, kind == K_STORE, size);
  }
  if (pendLevel != 0) recordPath(c, pendVa, pendTable, pendLevel, pendLeaf);
  let n = i - i0;
  if (n == 0) return i;
  c.resPa = resPa; c.resSize = resSize;
  let cnt = c.counters;
  let walks = n - l2Hits;
  if (tlbOn) { bump(cnt, C_L1_MISS, <u64>n); bump(cnt, C_L2_HIT_4K, <u64>l2Hits); bump(cnt, C_L2_MISS, <u64>walks); }
  if (walks != 0) {
    bump(cnt, C_WALKS, <u64>walks);
    bump(cnt, C_WALK_REFS, refs);
    bump(cnt, C_PSC_MISS, <u64>pscMisses);
    bump(cnt, C_PSC_HIT_PDE, <u64>pdeHits);
    bump(cnt, C_WALK_4K, <u64>(walks - large));
  }
  countAccesses(cnt, n - xlates, stores);
  return i;
}
