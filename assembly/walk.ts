// Address translation: TLB lookup, the page walk (SDM §4.5) with the paging-structure
// caches (§4.10.3), access rights (§4.6), A/D updates (§4.8) and page faults (§4.7).

import { walkPath, WalkPath } from "./path";
import {
  ACC_FETCH, ACC_IMPLICIT, ACC_USER, ACC_WRITE, PF_P, PF_PK, PF_RSVD, PTE_A, PTE_D, PTE_G,
  PTE_P, PTE_PS, RSVD_1G, RSVD_2M, XLATE_GP, XLATE_OK, XLATE_PF, XLATE_UNSUPPORTED,
  CR4_PGE, levelShift, PKEY_SHIFT,
} from "./entry";
import { readPhys64, orPhys64, physBase, physBytes } from "./mem";
import { walkNested, walkNestedQuick, translateUnpaged } from "./nested";
import {
  Cpu, tlbOf, permFaults, canonical, MODE_NESTED, T_I4K, T_I2M, T_D4K, T_D2M, T_D1G, T_L2, T_PDE,
  MAX_EVENTS, EVENT_BYTES,
} from "./cpu";
import {
  Tlb, probe, probeMiss, fill, fillAt, fillMissOrdered, missVictim, touchEntry, invalidateVa, invalidatePscVa, A_V, A_W, A_U, A_NX, A_D, A_G, A_RIGHTS,
  A_SIZE_SHIFT, A_PKEY_SHIFT, A_PCID_SHIFT, A_REPORTED, A_EPT_NOX, entryAt } from "./tlb";
import {
  bump, C_L1_HIT_4K, C_L1_MISS, C_L2_HIT_4K, C_L2_MISS, C_WALKS, C_WALK_REFS, C_WALK_4K,
  C_PSC_HIT_PDE, C_PSC_MISS, C_PF_NOT_PRESENT, C_PF_PROTECTION, C_PF_RSVD, C_PF_PK, C_GP,
  C_DIRTY_REWALKS, C_AD_WRITES, C_STALE_USES,
} from "./counters";

// Index into the permission table for an access descriptor (see cpu.ts permByte).
@inline export function accIndex(c: Cpu, acc: u32): u32 {
  let a = ((acc >> 1) & 1) | ((acc >> 1) & 2) | ((acc >> 2) & 4);
  // SMAP exempts explicit supervisor data accesses while RFLAGS.AC=1.
  if (c.ac != 0 && (acc & (ACC_IMPLICIT | ACC_USER)) == 0) a |= 8;
  return a;
}

// Protection-key check (SDM §4.6.2): data accesses to user-mode addresses only.
@inline export function pkFaults(c: Cpu, acc: u32, rights: u32, pkey: u32): bool {
  if (c.pke == 0 || (acc & ACC_FETCH) != 0 || (rights & A_U) == 0) return false;
  let bits = c.pkru >> (pkey * 2);
  if ((bits & 1) != 0) return true; // AD: no data access
  return (bits & 2) != 0 && (acc & ACC_WRITE) != 0 && ((acc & ACC_USER) != 0 || c.wp != 0);
}

// The permission-table byte for access descriptor acc (bit r: rights r fault), which a
// loop whose accesses share the registers can read once and pass to quickWalk.
export const PERM_COMPUTE: u32 = 0xFFFF_FFFF;
@inline export function permFor(c: Cpu, acc: u32): u32 {
  let a = accIndex(c, acc);
  return <u32>(a < 8 ? c.perm >> (<u64>a * 8) : c.perm2 >> (<u64>(a - 8) * 8)) & 0xFF;
}

// Returns 0 if allowed, else the P|PK part of the error code.
@inline export function rightsFault(c: Cpu, acc: u32, rights: u32, pkey: u32): u32 {
  let f = permFaults(c, accIndex(c, acc), (rights & A_RIGHTS) >> 1) ? PF_P : 0;
  if (pkFaults(c, acc, rights, pkey)) f |= PF_P | PF_PK;
  return f;
}

// Raises #PF: error code, CR2, counters; drops cached state for va (SDM §4.10.4.4:
// a page fault invalidates the TLB and PSC entries that would be used for va).
export function pageFault(c: Cpu, va: u64, acc: u32, code: u32): u32 {
  let err = code | (acc & (ACC_WRITE | ACC_USER));
  if ((acc & ACC_FETCH) != 0) err |= c.idBit;
  c.errorCode = err;
  c.exitAddr = va;
  let k = (code & PF_RSVD) != 0 ? C_PF_RSVD : ((code & PF_PK) != 0 ? C_PF_PK
    : ((code & PF_P) != 0 ? C_PF_PROTECTION : C_PF_NOT_PRESENT));
  bump(c.counters, k);
  dropVa(c, va);
  return XLATE_PF;
}

export function dropVa(c: Cpu, va: u64): void {
  dropTlbVa(c, va);
  for (let l: u32 = 2; l <= 5; l++) {
    invalidatePscVa(tlbOf(c, T_PDE + <i32>l - 2), va >> levelShift(l), c.pcid, c.ctx);
  }
}

export function dropTlbVa(c: Cpu, va: u64): void {
  for (let i = 0; i < T_PDE; i++) invalidateVa(tlbOf(c, i), va, c.pcid, true, c.ctx);
}

// Coherence checker: reports a cached translation whose leaf entry changed in memory
// (other than A/D) without an invalidation — the missing-INVLPG bug.
function checkStale(c: Cpu, e: usize, va: u64): void {
  let a = entryAt(e).attr;
  if ((a & A_REPORTED) != 0) return;
  let leafPa = entryAt(e).leafPa;
  let was = entryAt(e).leafVal;
  let now = readPhys64(leafPa);
  if (((was ^ now) & ~(PTE_A | PTE_D)) == 0) return;
  entryAt(e).attr = a | A_REPORTED;
  let n = <u32>load<u64>(c.counters + (<usize>C_STALE_USES << 3));
  let ev = c.events + <usize>(n % MAX_EVENTS) * EVENT_BYTES;
  store<u64>(ev, va);
  store<u64>(ev, leafPa, 8);
  store<u64>(ev, was, 16);
  store<u64>(ev, now, 24);
  bump(c.counters, C_STALE_USES);
}

// Finishes a translation from a cached entry. Returns XLATE_* or 0xFF when the entry
// cannot serve a write (cached D=0): the caller then walks so that D gets set.
@inline function useEntry(c: Cpu, e: usize, va: u64, acc: u32, size: u32): u32 {
  let a = entryAt(e).attr;
  if (c.checker != 0) checkStale(c, e, va);
  let f = rightsFault(c, acc, a, (a >> A_PKEY_SHIFT) & 15);
  if (f != 0) return pageFault(c, va, acc, f);
  if ((acc & ACC_WRITE) != 0 && (a & A_D) == 0) {
    bump(c.counters, C_DIRTY_REWALKS);
    return 0xFF;
  }
  if ((acc & ACC_FETCH) != 0 && (a & A_EPT_NOX) != 0) return 0xFF; // the walk reports it
  entryAt(e).stamp = c.clock;
  if (c.hitTlb != 0) touchEntry(changetype<Tlb>(c.hitTlb), e); // keeps an ordered cache's LRU order
  let mask = (<u64>1 << (12 + 9 * <u64>size)) - 1;
  c.resPa = entryAt(e).frame | (va & mask);
  c.resSize = mask + 1;
  return XLATE_OK;
}

@inline function want(size: u32): u32 {
  return A_V | (size << A_SIZE_SHIFT);
}

// Looks va up in the L1 TLB for the access kind, then in the L2; returns the entry.
// Misses note their victims (probeMiss), so the fills after the walk need no scan.
function lookup(c: Cpu, va: u64, acc: u32): usize {
  let pcidBits = c.pcid << A_PCID_SHIFT, ctx = c.ctx, clk = c.clock;
  let fetch = (acc & ACC_FETCH) != 0;
  c.hitTlb = 0;
  // Caches record which page sizes they may hold, so probes that must miss are skipped.
  let t = tlbOf(c, fetch ? T_I4K : T_D4K);
  let e = t.sizes != 0 ? probeMiss(t, va >> 12, want(0), pcidBits, ctx, clk) : 0;
  if (e != 0) { bump(c.counters, C_L1_HIT_4K); c.l1Entry = e; return e; }
  t = tlbOf(c, fetch ? T_I2M : T_D2M);
  e = t.sizes != 0 ? probeMiss(t, va >> 21, want(1), pcidBits, ctx, clk) : 0;
  if (e != 0) { bump(c.counters, C_L1_HIT_4K + 1); return e; }
  if (!fetch) {
    t = tlbOf(c, T_D1G);
    e = t.sizes != 0 ? probeMiss(t, va >> 30, want(2), pcidBits, ctx, clk) : 0;
    if (e != 0) { bump(c.counters, C_L1_HIT_4K + 2); return e; }
  }
  bump(c.counters, C_L1_MISS);
  let l2 = tlbOf(c, T_L2);
  for (let size: u32 = 0; size < 3; size++) {
    if ((l2.sizes & (1 << size)) == 0) continue;
    e = probeMiss(l2, va >> (12 + 9 * <u64>size), want(size), pcidBits, ctx, clk);
    if (e != 0) {
      bump(c.counters, C_L2_HIT_4K + <i32>size);
      if (l2.dir != 0) c.hitTlb = changetype<usize>(l2);
      // Check before the copy so the L1 copy carries the reported mark.
      if (c.checker != 0) checkStale(c, e, va);
      // Refill the L1 from the L2 so the next access hits there.
      let l1 = l1For(c, fetch, size);
      if (l1 != null) {
        let f = fill(changetype<Tlb>(l1), entryAt(e).tag, entryAt(e).attr, entryAt(e).frame,
          entryAt(e).leafPa, entryAt(e).leafVal, ctx, clk);
        if (size == 0) c.l1Entry = f;
      }
      return e;
    }
  }
  bump(c.counters, C_L2_MISS);
  return 0;
}

@inline export function l1For(c: Cpu, fetch: bool, size: u32): Tlb | null {
  if (fetch) return size == 0 ? tlbOf(c, T_I4K) : (size == 1 ? tlbOf(c, T_I2M) : null);
  return tlbOf(c, T_D4K + <i32>size);
}

// Translates va for one access, using and filling the TLBs. On XLATE_OK the result is
// in c.resPa / c.resSize; on XLATE_PF in c.errorCode / c.exitAddr.
export function translate(c: Cpu, va: u64, acc: u32): u32 {
  c.clock++;
  let levels = c.levels;
  if (levels == 0) { // paging off: linear = (guest-)physical, 32 bits
    if (c.mode == MODE_NESTED) return translateUnpaged(c, va, acc);
    c.resPa = va & 0xFFFF_FFFF;
    c.resSize = 4096;
    return XLATE_OK;
  }
  if (levels == 1) return XLATE_UNSUPPORTED;
  if (!canonical(c, va)) {
    bump(c.counters, C_GP);
    c.exitAddr = va;
    return XLATE_GP;
  }
  let e = c.tlbOn != 0 ? lookup(c, va, acc) : 0;
  if (e != 0) {
    let size = (entryAt(e).attr >> A_SIZE_SHIFT) & 3;
    let r = useEntry(c, e, va, acc, size);
    if (r != 0xFF) return r;
    dropTlbVa(c, va); // the walk refills it with D set; the PSC entries stay valid
  }
  if (c.mode == MODE_NESTED) return c.noFast == 0 ? walkNestedQuick(c, va, acc) : walkNested(c, va, acc);
  return walk(c, va, acc);
}

// Reserved bits set in a present entry (SDM §4.5: bits 51:M, XD without NXE, PS in a
// PML5E/PML4E, 29:13 of a 1 GiB leaf, 20:13 of a 2 MiB leaf).
@inline export function reservedBits(c: Cpu, pte: u64, level: u32, leaf: bool): u64 {
  let rsvd = pte & c.rsvdHigh;
  if (level >= 4) rsvd |= pte & PTE_PS;
  else if (leaf && level == 3) rsvd |= pte & RSVD_1G;
  else if (leaf && level == 2) rsvd |= pte & RSVD_2M;
  return rsvd;
}

// Longest-prefix paging-structure-cache match (PDE cache first). Returns the level
// of the cached entry (2..5) or 0; on a hit c.resPa = next table, c.pscRights = rights.
@inline export function pscLookup(c: Cpu, va: u64): u32 {
  if (c.pscOn == 0) return 0;
  let pcidBits = c.pcid << A_PCID_SHIFT;
  // The PDE cache first and on its own (where most walks of a large working set end).
  let e = probe(tlbOf(c, T_PDE), va >> levelShift(2), A_V, pcidBits, c.ctx);
  if (e != 0) return pscHit(c, e, 2);
  for (let l: u32 = 3; l <= c.levels; l++) {
    e = probe(tlbOf(c, T_PDE + <i32>l - 2), va >> levelShift(l), A_V, pcidBits, c.ctx);
    if (e != 0) return pscHit(c, e, l);
  }
  return 0;
}

@inline function pscHit(c: Cpu, e: usize, l: u32): u32 {
  entryAt(e).stamp = c.clock;
  c.resPa = entryAt(e).frame;
  c.pscGpa = entryAt(e).leafPa; // nested mode: the next table's gpa
  c.pscRights = entryAt(e).attr & A_RIGHTS;
  return l;
}

// The page walk. The quick walk below handles the common case — every entry present,
// no reserved bit, A already set everywhere (and D in the leaf for a write), access
// allowed — with one combined test per level and no side effects until it commits.
// Anything else (a fault, or A/D to write) re-walks carefully; since the quick walk
// changed nothing, both paths give identical results, counters included.
// The levels are unrolled (each a constant, so shifts and reserved masks fold): the walk
// starts at the top level or below the paging-structure-cache hit and falls through.
export function walk(c: Cpu, va: u64, acc: u32): u32 {
  let pscLevel = pscLookup(c, va);
  let pte = quickWalk(c, va, acc, pscLevel, true);
  if (pte == 0) return walkCareful(c, va, acc);
  let top = pscLevel != 0 ? pscLevel - 1 : c.levels, leaf = c.qLeaf;
  return commit(c, va, acc, top, leaf, pscLevel, pscLevel != 0 ? c.pscRights : A_W | A_U,
    c.qLeafPa, pte, c.qRights, <u64>(top - leaf + 1));
}

// The quick walk from the top (pscLevel 0) or below a PSC hit (pscLookup's results in
// c.resPa / c.pscRights): returns the leaf entry, its level in c.qLeaf, its address in
// c.qLeafPa and the walk's rights in c.qRights; or 0 when the careful walk must decide
// (nothing changed yet). `record` (a constant) writes the walk path; the batch engine's
// miss path leaves it to recordPath. `levels`, if given, is c.levels as a constant.
@inline export function quickWalk(c: Cpu, va: u64, acc: u32, pscLevel: u32, record: bool, levels: u32 = 0,
                                  perm: u32 = PERM_COMPUTE): u64 {
  let level = levels != 0 ? levels : c.levels; // a constant `levels` (4, 5) drops the level tests
  let table = c.cr3 & c.addrMask;
  let rights0: u32 = A_W | A_U;
  if (pscLevel != 0) { table = c.resPa; rights0 = c.pscRights; level = pscLevel - 1; }
  let high = c.rsvdHigh, mask = c.addrMask;
  let path = walkPath(c.path);
  let andv: u64 = ~(<u64>0), orv: u64 = 0, pte: u64 = 0;
  let leaf: u32 = 1;
  do {
    if (level >= 5) {
      pte = quickEntry(path, table, va, 5, high | PTE_PS, record); // PS is reserved in PML5E/PML4E
      if (pte == 0) return 0;
      andv &= pte; orv |= pte; table = pte & mask;
    }
    if (level >= 4) {
      pte = quickEntry(path, table, va, 4, high | PTE_PS, record);
      if (pte == 0) return 0;
      andv &= pte; orv |= pte; table = pte & mask;
    }
    if (level >= 3) {
      pte = quickEntry(path, table, va, 3, high, record);
      if (pte == 0) return 0;
      andv &= pte; orv |= pte;
      if ((pte & PTE_PS) != 0) {
        if ((pte & RSVD_1G) != 0) return 0;
        leaf = 3;
        break;
      }
      table = pte & mask;
    }
    if (level >= 2) {
      pte = quickEntry(path, table, va, 2, high, record);
      if (pte == 0) return 0;
      andv &= pte; orv |= pte;
      if ((pte & PTE_PS) != 0) {
        if ((pte & RSVD_2M) != 0) return 0;
        leaf = 2;
        break;
      }
      table = pte & mask;
    }
    pte = quickEntry(path, table, va, 1, high, record);
    if (pte == 0) return 0;
    andv &= pte; orv |= pte;
  } while (false);
  // The leaf's address, from the table it was read in (`table` still holds it).
  let leafPa = table | ((va >> (9 * <u64>leaf)) & 0xFF8);
  let leafBits = PTE_A | ((acc & ACC_WRITE) != 0 ? PTE_D : 0);
  if ((andv & PTE_A) == 0 || (pte & leafBits) != leafBits) return 0;
  let rights = (rights0 & (<u32>andv | A_NX)) | (c.nxe != 0 ? <u32>(orv >> 60) & A_NX : 0);
  let pkey = <u32>(pte >> PKEY_SHIFT) & 15;
  if (perm != PERM_COMPUTE) { // the caller's permByte for acc (see permFor)
    if (((perm >> ((rights & A_RIGHTS) >> 1)) & 1) != 0 || pkFaults(c, acc, rights, pkey)) return 0;
  } else if (rightsFault(c, acc, rights, pkey) != 0) return 0;
  c.qLeaf = leaf;
  c.qRights = rights;
  c.qLeafPa = leafPa;
  return pte;
}

// One level of the quick walk: the entry at `level` (a constant after inlining) if it is
// present, inside memory and free of the reserved bits `rsvd`, recorded in the walk path;
// else 0 (P=0), which sends the caller to the careful walk.
@inline function quickEntry(path: WalkPath, table: u64, va: u64, level: u32, rsvd: u64, record: bool): u64 {
  let epa = table | ((va >> (9 * <u64>level)) & 0xFF8);
  if (epa >= physBytes) return 0;
  let pte = load<u64>(physBase + <usize>epa);
  if (((pte ^ PTE_P) & (rsvd | PTE_P)) != 0) return 0; // P must be 1 and every reserved bit 0
  if (record) {
    path.setEntry(level, pte);
    path.setEntryPa(level, epa);
  }
  return pte;
}

// Writes the walk path of a quick walk of va from `table` at `level` down to `leaf`
// again (the same reads: memory has not changed since it was walked).
export function recordPath(c: Cpu, va: u64, table: u64, level: u32, leaf: u32): void {
  let path = walkPath(c.path);
  for (let l = level; l >= leaf; l--) {
    let epa = table | ((va >> (9 * <u64>l)) & 0xFF8);
    let pte = load<u64>(physBase + <usize>epa);
    path.setEntry(l, pte);
    path.setEntryPa(l, epa);
    table = pte & c.addrMask;
  }
}

// One level of the careful walk, shared by the native walker (walkCareful) and the 2D
// walker (walkNested): records the entry read in the walk path, checks P, then the
// reserved bits, and folds the entry's rights into `rights`:
//   W and U (bits 1, 2) are ANDed over the walk; XD (bit 63) is ORed into NX with EFER.NXE.
// Returns STEP_FAULT | the #PF error code, or the new rights, with STEP_LEAF at the leaf.
export const STEP_FAULT: u32 = 1 << 31;
export const STEP_LEAF: u32 = 1 << 30;
export const STEP_VALUE: u32 = 0xFFFF;
@inline export function carefulStep(c: Cpu, path: WalkPath, level: u32, pte: u64, epa: u64, rights: u32): u32 {
  path.setEntry(level, pte);
  path.setEntryPa(level, epa);
  if ((pte & PTE_P) == 0) return STEP_FAULT;
  let leaf = level == 1 || (level <= 3 && (pte & PTE_PS) != 0);
  if (reservedBits(c, pte, level, leaf) != 0) return STEP_FAULT | PF_P | PF_RSVD;
  rights &= <u32>pte | A_NX;
  if (c.nxe != 0) rights |= <u32>(pte >> 60) & A_NX;
  assert((rights & ~A_RIGHTS) == 0, "walk rights hold only W, U and NX");
  return leaf ? STEP_LEAF | rights : rights;
}

// The full walk, level by level as the SDM describes it: P, then reserved bits, then
// rights at the leaf; A set in every entry used and D in the leaf for a write, only when
// the translation succeeds (as KVM's walker does).
function walkCareful(c: Cpu, va: u64, acc: u32): u32 {
  let level = c.levels;
  let table = c.cr3 & c.addrMask;
  let rights0: u32 = A_W | A_U;
  let pscLevel = pscLookup(c, va);
  if (pscLevel != 0) { table = c.resPa; rights0 = c.pscRights; level = pscLevel - 1; }
  let top = level;
  let rights = rights0;
  let path = walkPath(c.path);
  let pte: u64 = 0, epa: u64 = 0, refs: u64 = 0;
  while (true) {
    epa = table | (((va >> levelShift(level)) & 511) << 3);
    pte = readPhys64(epa);
    refs++;
    let st = carefulStep(c, path, level, pte, epa, rights);
    if ((st & STEP_FAULT) != 0) return walkFault(c, va, acc, st & STEP_VALUE, refs, pscLevel);
    rights = st & STEP_VALUE;
    if ((st & STEP_LEAF) != 0) break;
    table = pte & c.addrMask;
    level--;
  }
  let f = rightsFault(c, acc, rights, <u32>(pte >> PKEY_SHIFT) & 15);
  if (f != 0) return walkFault(c, va, acc, f, refs, pscLevel);
  for (let l = top; l > level; l--) setFlag(c, path.entryPa(l), PTE_A);
  let leafBits = PTE_A | ((acc & ACC_WRITE) != 0 ? PTE_D : 0);
  setFlag(c, epa, leafBits);
  return commit(c, va, acc, top, level, pscLevel, rights0, epa, pte | leafBits, rights, refs);
}

// Counts a completed walk, caches the non-leaf entries walked in the paging-structure
// caches and the translation in the TLBs, and produces the result.
// path[l-1] holds the entry read at level l.
@inline export function commit(c: Cpu, va: u64, acc: u32, top: u32, level: u32, pscLevel: u32, rights0: u32,
                leafPa: u64, leafVal: u64, rights: u32, refs: u64): u32 {
  countWalk(c, refs, pscLevel);
  fillPscs(c, va, top, level, rights0);
  let size = level - 1; // 0 = 4K, 1 = 2M, 2 = 1G
  let frame = leafVal & c.addrMask & ~((<u64>1 << (12 + 9 * <u64>size)) - 1);
  return cacheTranslation(c, va, acc, size, frame, leafPa, leafVal, rights, 0);
}

// Caches the non-leaf entries walked (levels top..level+1, read from the walk path) in
// the paging-structure caches, each with the rights through it.
@inline export function fillPscs(c: Cpu, va: u64, top: u32, level: u32, rights0: u32): void {
  if (c.pscOn == 0) return;
  let pcidBits = c.pcid << A_PCID_SHIFT;
  let r = rights0;
  for (let l = top; l > level; l--) {
    let v = walkPath(c.path).entry(l);
    r = (r & (<u32>v | A_NX)) | (c.nxe != 0 ? <u32>(v >> 60) & A_NX : 0);
    fill(tlbOf(c, T_PDE + <i32>l - 2), va >> levelShift(l), A_V | r | pcidBits, v & c.addrMask,
      0, 0, c.ctx, c.clock);
  }
}

// Caches a completed translation in the L1 and L2 TLBs and produces the result.
// attr D comes from leafVal's D; `extra` adds attr flags (A_EPT_NOX) or clears D (~A_D
// is not needed: the caller passes leafVal without D).
export function cacheTranslation(c: Cpu, va: u64, acc: u32, size: u32, frame: u64,
                                 leafPa: u64, leafVal: u64, rights: u32, extra: u32): u32 {
  let shift = 12 + 9 * <u64>size;
  if (c.tlbOn != 0) fillTlbs(c, va, acc, size, frame, leafPa, leafVal, rights, extra);
  bump(c.counters, C_WALK_4K + <i32>size);
  c.resPa = frame | (va & ((<u64>1 << shift) - 1));
  c.resSize = <u64>1 << shift;
  return XLATE_OK;
}

// The fills of cacheTranslation: the L1 TLB for the access kind and size, and the L2.
export function fillTlbs(c: Cpu, va: u64, acc: u32, size: u32, frame: u64,
                         leafPa: u64, leafVal: u64, rights: u32, extra: u32): void {
  let pkey = <u32>(leafVal >> PKEY_SHIFT) & 15;
  let attr = A_V | rights | (size << A_SIZE_SHIFT) | (pkey << A_PKEY_SHIFT) |
    (c.pcid << A_PCID_SHIFT) | extra;
  if ((leafVal & PTE_D) != 0) attr |= A_D;
  if ((leafVal & PTE_G) != 0 && (c.cr4 & CR4_PGE) != 0) attr |= A_G;
  let tag = va >> (12 + 9 * <u64>size);
  let l1 = l1For(c, (acc & ACC_FETCH) != 0, size);
  if (l1 != null) c.l1Entry = fill(changetype<Tlb>(l1), tag, attr, frame, leafPa, leafVal, c.ctx, c.clock);
  fill(tlbOf(c, T_L2), tag, attr, frame, leafPa, leafVal, c.ctx, c.clock);
}

// fillTlbs for a 4 KiB data translation that every TLB just missed (the batch engine's
// miss loop): each fill takes missVictim's way, no second scan. Returns the L1 entry.
@inline export function fillTlbs4k(c: Cpu, va: u64, frame: u64, leafPa: u64, leafVal: u64, rights: u32): usize {
  let pkey = <u32>(leafVal >> PKEY_SHIFT) & 15;
  let attr = A_V | rights | (pkey << A_PKEY_SHIFT) | (c.pcid << A_PCID_SHIFT);
  if ((leafVal & PTE_D) != 0) attr |= A_D;
  if ((leafVal & PTE_G) != 0 && (c.cr4 & CR4_PGE) != 0) attr |= A_G;
  let tag = va >> 12;
  let l1 = tlbOf(c, T_D4K), e1: usize = 0;
  if (l1.ways != 0) e1 = fillAt(l1, missVictim(l1, tag), tag, attr, frame, leafPa, leafVal, c.ctx, c.clock);
  c.l1Entry = e1;
  let l2 = tlbOf(c, T_L2);
  if (l2.dir != 0) fillMissOrdered(l2, tag, attr, frame, leafPa, leafVal, c.ctx, c.clock);
  else if (l2.ways != 0) fillAt(l2, missVictim(l2, tag), tag, attr, frame, leafPa, leafVal, c.ctx, c.clock);
  return e1;
}

@inline export function countWalk(c: Cpu, refs: u64, pscLevel: u32): void {
  let cnt = c.counters;
  bump(cnt, C_WALKS);
  bump(cnt, C_WALK_REFS, refs);
  bump(cnt, pscLevel != 0 ? C_PSC_HIT_PDE + <i32>pscLevel - 2 : C_PSC_MISS);
}

@inline export function setFlag(c: Cpu, pa: u64, bits: u64): void {
  if ((readPhys64(pa) & bits) != bits) {
    orPhys64(pa, bits);
    bump(c.counters, C_AD_WRITES);
  }
}

function walkFault(c: Cpu, va: u64, acc: u32, code: u32, refs: u64, pscLevel: u32): u32 {
  countWalk(c, refs, pscLevel);
  return pageFault(c, va, acc, code);
}
