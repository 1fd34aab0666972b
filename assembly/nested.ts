// The two-dimensional walk (SDM Vol. 3C §28.2.1): with EPT, CR3 and every guest
// paging-structure entry hold guest-physical addresses; each guest table is translated
// through the EPT before its entry is read, and the final gpa is translated through the
// EPT with the access's own kind. Uncached: (n+1)(m+1)−1 references (24 for 4×4).
//
// Combined paging-structure-cache entries map a va prefix to the host address of the
// next guest table (and keep its gpa in the leafPa field); combined TLB entries map the
// page to its host frame with the guest rights; D is cached only if the EPT allows the
// write too, and A_EPT_NOX makes fetches re-walk when the EPT forbids execution.

import { walkPath } from "./path";
import { ACC_FETCH, ACC_WRITE, PF_P, PF_RSVD, PTE_A, PTE_D, PTE_P, PTE_PS, PKEY_SHIFT, XLATE_OK,
  levelShift } from "./entry";
import { readPhys64 } from "./mem";
import { Cpu, tlbOf, T_PDE } from "./cpu";
import { fill, A_V, A_W, A_U, A_NX, A_PCID_SHIFT, A_EPT_NOX } from "./tlb";
import { eptTranslate, EPT_OK, EA_READ, EA_WRITE, EA_FETCH } from "./ept";
import { quickEptTranslate, quickPscLookup } from "./nested-quick";
import { pscLookup, carefulStep, STEP_FAULT, STEP_LEAF, STEP_VALUE, rightsFault, pageFault, dropVa, countWalk, setFlag, cacheTranslation } from "./walk";
import { bump, C_GUEST_REFS, C_WALK_4K } from "./counters";

@inline export function eaccOf(acc: u32): u32 {
  return (acc & ACC_WRITE) != 0 ? EA_WRITE : ((acc & ACC_FETCH) != 0 ? EA_FETCH : EA_READ);
}

// Guest paging off: linear addresses are guest-physical (32 bits), translated by EPT only.
export function translateUnpaged(c: Cpu, va: u64, acc: u32): u32 {
  let st = eptTranslate(c, va & 0xFFFF_FFFF, eaccOf(acc), true, va);
  if (st != EPT_OK) return st;
  c.resPa = c.eptHpa;
  c.resSize = 4096;
  return XLATE_OK;
}

export function exitFromEpt(c: Cpu, va: u64, st: u32, refs: u64, pscLevel: u32): u32 {
  countWalk(c, refs, pscLevel);
  bump(c.counters, C_GUEST_REFS, refs);
  dropVa(c, va); // an EPT violation drops the combined mappings (TLB and PSC) for va
  return st;
}

// The careful 2D walk: every EPT translation by eptTranslate.
export function walkNested(c: Cpu, va: u64, acc: u32): u32 {
  return walk2D(c, va, acc, false);
}

// The quick 2D walk (fast paths on): EPT translations inline (nested-quick.ts).
export function walkNestedQuick(c: Cpu, va: u64, acc: u32): u32 {
  return walk2D(c, va, acc, true);
}

// One EPT translation of the 2D walk: the careful one, or the quick one (`quick` is a
// constant after inlining), which gives the same results.
@inline function ept2D(c: Cpu, gpa: u64, eacc: u32, final: bool, va: u64, quick: bool): u32 {
  return quick ? quickEptTranslate(c, gpa, eacc, final, va) : eptTranslate(c, gpa, eacc, final, va);
}

// path slots (u64): [0..4] guest entry values by level, [5..9] their host addresses,
// [10..14] used by the EPT walker.
@inline function walk2D(c: Cpu, va: u64, acc: u32, quick: bool): u32 {
  let level = c.levels;
  let gtable = c.cr3 & c.addrMask;  // gpa of the current guest table
  let htable: u64 = 0;              // its host address, once translated
  let rights: u32 = A_W | A_U;
  let pscLevel = quick ? quickPscLookup(c, va) : pscLookup(c, va);
  let known = false;
  if (pscLevel != 0) {
    htable = c.resPa; gtable = c.pscGpa; rights = c.pscRights; level = pscLevel - 1; known = true;
  }
  let top = level, rights0 = rights;
  let path = walkPath(c.path);
  // Guest paging-structure accesses are reads, or writes when EPT A/D is on (SDM 28.2.4).
  let pagingAcc = c.eptAD != 0 ? EA_READ | EA_WRITE : EA_READ;
  let noWrite: u32 = 0; // bit l: the level-l table's page is not EPT-writable
  let pte: u64 = 0, refs: u64 = 0;
  while (true) {
    let offset = ((va >> levelShift(level)) & 511) << 3;
    if (!known) {
      // The access is to the 8-byte entry: an exit reports that gpa (SDM 27.2.1).
      let st = ept2D(c, gtable | offset, pagingAcc, false, va, quick);
      if (st != EPT_OK) return exitFromEpt(c, va, st, refs, pscLevel);
      htable = c.eptHpa & ~(<u64>0xFFF);
      if ((c.eptRights & <u32>EA_WRITE) == 0) noWrite |= 1 << level;
    }
    known = false;
    let epa = htable | offset;
    pte = readPhys64(epa);
    refs++;
    let st = carefulStep(c, path, level, pte, epa, rights);
    if ((st & STEP_FAULT) != 0) return guestFault(c, va, acc, st & STEP_VALUE, refs, pscLevel);
    rights = st & STEP_VALUE;
    if ((st & STEP_LEAF) != 0) break;
    gtable = pte & c.addrMask;
    level--;
  }
  let f = rightsFault(c, acc, rights, <u32>(pte >> PKEY_SHIFT) & 15);
  if (f != 0) return guestFault(c, va, acc, f, refs, pscLevel);

  // The final gpa through the EPT, with the access's own kind.
  let size = level - 1;
  let pageMask = (<u64>1 << (12 + 9 * <u64>size)) - 1;
  let gpa = (pte & c.addrMask & ~pageMask) | (va & pageMask);
  let st = ept2D(c, gpa, eaccOf(acc), true, va, quick);
  if (st != EPT_OK) return exitFromEpt(c, va, st, refs, pscLevel);
  return commitNested(c, va, acc, top, level, pscLevel, rights0, rights, pte, noWrite, refs);
}

// The end of a 2D walk whose final gpa translated (c.eptHpa ...): the EPT checks of the
// guest A/D writes (without EPT A/D), the A/D writes, counters, combined PSC and TLB fills.
@inline function commitNested(c: Cpu, va: u64, acc: u32, top: u32, level: u32, pscLevel: u32, rights0: u32,
                      rights: u32, pte: u64, noWrite: u32, refs: u64): u32 {
  let path = walkPath(c.path);
  let size = level - 1;
  let pageMask = (<u64>1 << (12 + 9 * <u64>size)) - 1;
  let hpa = c.eptHpa, eptSize = c.eptSize, eptRights = c.eptRights, eptD = c.eptD;

  let leafBits = PTE_A | ((acc & ACC_WRITE) != 0 ? PTE_D : 0);
  if (c.eptAD == 0) {
    let s2 = adWritesAllowed(c, va, top, level, pscLevel, noWrite, leafBits, refs);
    if (s2 != EPT_OK) return s2;
  }
  for (let l = top; l > level; l--) setFlag(c, path.entryPa(l), PTE_A);
  let leafPa = path.entryPa(level);
  setFlag(c, leafPa, leafBits);
  let leafVal = pte | leafBits;

  countWalk(c, refs, pscLevel);
  bump(c.counters, C_GUEST_REFS, refs);
  // Combined PSC entries: va prefix → next guest table's host address (and gpa).
  if (c.pscOn != 0) fillGuestPscs(c, va, top, level, rights0);
  // The combined page is the smaller of the guest and EPT pages.
  let csize = size;
  if (eptSize < pageMask + 1) csize = eptSize == 4096 ? 0 : 1;
  let cmask = (<u64>1 << (12 + 9 * <u64>csize)) - 1;
  if ((eptRights & <u32>EA_READ) == 0) { // execute-only: not cached as a data mapping
    bump(c.counters, C_WALK_4K + <i32>csize);
    c.resPa = hpa;
    c.resSize = cmask + 1;
    return XLATE_OK;
  }
  // D is cached only when a write could complete without the EPT (W, and D if A/D on).
  let cacheVal = (eptRights & <u32>EA_WRITE) != 0 && eptD != 0 ? leafVal : leafVal & ~PTE_D;
  let extra = (eptRights & <u32>EA_FETCH) == 0 ? A_EPT_NOX : 0;
  return cacheTranslation(c, va, acc, csize, hpa & ~cmask, leafPa, cacheVal, rights, extra);
}

// Guest A/D updates are EPT writes: without EPT A/D the pages must be EPT-writable.
// EPT_OK, or the exit (taken: exitFromEpt) of the first A/D write the EPT forbids.
export function adWritesAllowed(c: Cpu, va: u64, top: u32, level: u32, pscLevel: u32, noWrite: u32,
                                leafBits: u64, refs: u64): u32 {
  let path = walkPath(c.path);
  for (let l = top; l >= level; l--) {
    let v = path.entry(l);
    let needs = l == level ? (v & leafBits) != leafBits : (v & PTE_A) == 0;
    if (!needs) continue;
    let tgpa = l == top ? (pscLevel != 0 ? c.pscGpa : c.cr3 & c.addrMask)
                        : path.entry(l + 1) & c.addrMask;
    tgpa |= ((va >> levelShift(l)) & 511) << 3; // the entry the A/D write goes to
    if (l == top && pscLevel != 0) {
      // The table came from a combined PSC entry: check its EPT rights now.
      let s2 = eptTranslate(c, tgpa, EA_READ | EA_WRITE, false, va);
      if (s2 != EPT_OK) return exitFromEpt(c, va, s2, refs, pscLevel);
    } else if ((noWrite & (1 << l)) != 0) {
      let s2 = eptTranslate(c, tgpa, EA_READ | EA_WRITE, false, va);
      if (s2 != EPT_OK) return exitFromEpt(c, va, s2, refs, pscLevel);
    }
  }
  return EPT_OK;
}

export function guestFault(c: Cpu, va: u64, acc: u32, code: u32, refs: u64, pscLevel: u32): u32 {
  countWalk(c, refs, pscLevel);
  bump(c.counters, C_GUEST_REFS, refs);
  return pageFault(c, va, acc, code);
}

// The combined PSC entries of a 2D walk (commitNested, and the nested miss loop): va
// prefix → the next guest table's host address (and its gpa), each with the rights through it.
export function fillGuestPscs(c: Cpu, va: u64, top: u32, level: u32, rights0: u32): void {
  let path = walkPath(c.path);
  let r = rights0;
  let pcidBits = c.pcid << A_PCID_SHIFT;
  for (let l = top; l > level; l--) {
    let v = path.entry(l);
    r = (r & (<u32>v | A_NX)) | (c.nxe != 0 ? <u32>(v >> 60) & A_NX : 0);
    let nextH = path.entryPa(l - 1) & ~(<u64>0xFFF);
    fill(tlbOf(c, T_PDE + <i32>l - 2), va >> levelShift(l), A_V | r | pcidBits, nextH,
      v & c.addrMask, 0, c.ctx, c.clock);
  }
}
