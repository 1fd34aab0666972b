// The quick two-dimensional walk: the careful 2D walk of nested.ts (walkNested) with
// each EPT translation done inline by a quick EPT walk in the common case — nested-TLB
// hit with the rights needed, or a walk through entries that are present, readable,
// free of reserved bits, of a valid memory type, already accessed (and the leaf dirty
// for a write) with EPT A/D on, and that allow the access. Anything else hands that one
// EPT translation to the careful one (ept.ts eptTranslate), from its start: the quick
// EPT walk changes nothing a careful redo would not do identically (its path writes are
// redone, the LRU stamps it sets are the same clock), so results, counters and every
// cache entry (LRU stamps included) are those of walkNested. The guest dimension is
// walkNested's own (carefulStep), as are the A/D checks and fills after the walk.
// Used by walkNestedQuick (nested.ts; translate with the fast paths on) and the nested
// miss loop (miss-nested.ts), which takes the packed result (quickEpt) and keeps the
// counters in locals. Taken only with the fast paths on (Cpu.noFast = 0);
// test/core/nested/fastpath2d.property.test.ts checks both against walkNested.

import { walkPath, WalkPath } from "./path";
import { levelShift } from "./entry";
import { physBase, physBytes, readPhys64 } from "./mem";
import { Cpu, tlbOf, T_NTLB, T_EPDE, T_PDE } from "./cpu";
import { probeNoting, notedVictim } from "./tlb-flat";
import { entryAt, probe, fillScan, fillAt, missVictim, A_V, A_D, A_SIZE_SHIFT, A_PCID_SHIFT, A_RIGHTS } from "./tlb";

import { eptTranslate, EPT_OK, EPT_A, EPT_D, EPT_PS, EA_WRITE } from "./ept";
import { bump, C_NTLB_HIT, C_NTLB_MISS, C_EPT_WALKS, C_EPT_REFS, C_WALK_REFS, C_EPT_PSC_HIT } from "./counters";

const EPT_ADDR: u64 = 0x000F_FFFF_FFFF_F000;

// Bit mt set: a valid leaf memory type (0, 1, 4, 5, 6).
const MT_OK: u32 = 0b0111_0011;

// One level of the quick EPT walk (level a constant after inlining): the entry if it is
// inside memory, present, not W-without-R, free of reserved bits, (as a leaf) of a valid
// memory type and (not a leaf) has the bits `must` (A with EPT A/D on); with its address
// and the rights through it in the walk path; else 0. `upper` / `mid`: the reserved bits
// of a non-leaf entry at levels 4-5 / 2-3, with `must`; `high`: bits 51:M.
@inline function quickEptEntry(path: WalkPath, table: u64, gpa: u64, level: u32, rights: u32, high: u64,
                               must: u64, upper: u64, mid: u64): u64 {
  let epa = table | ((gpa >> (9 * <u64>level)) & 0xFF8);
  if (epa >= physBytes) return 0;
  let e = load<u64>(physBase + <usize>epa);
  // present and not W without R: R set, or execute-only
  if ((e & 1) == 0 && (<u32>e & 7) != 4) return 0;
  let leaf = level == 1 || (level <= 3 && (e & EPT_PS) != 0);
  if (leaf) {
    let rsvd = high | (level == 3 ? 0x3FFFF000 : (level == 2 ? 0x1FF000 : 0));
    if ((e & rsvd) != 0 || ((MT_OK >> (<u32>(e >> 3) & 7)) & 1) == 0) return 0;
  } else if (((e ^ must) & (level >= 4 ? upper : mid)) != 0) {
    return 0; // a reserved bit set or a `must` bit clear
  }
  path.setEptEntryPa(level, epa);
  path.setEptRights(level, rights & <u32>e & 7);
  return e;
}

// A quick EPT translation's result, packed (Q_NONE: the careful translation must run):
//    63 ........ 12   11     10     9..7   6      5   4..3   2..0
//   ┌──────────────┬──────┬──────┬──────┬──────┬───┬──────┬──────┐
//   │ hpa page     │WALKED│PSCHIT│ refs │ NTLB │ D │ size │ RWX  │
//   └──────────────┴──────┴──────┴──────┴──────┴───┴──────┴──────┘
//   hpa page: the host address of gpa's 4 KiB page (so the next table of a walk is one
//   AND away); size 0/1/2: the EPT page is 4K/2M/1G; NTLB: a nested-TLB hit;
//   WALKED: a walk of `refs` references, PSCHIT: from below an EPT-PSC hit. Neither
//   flag: the careful translation's result, its counters already bumped (packCareful).
export const Q_NONE: u64 = ~(<u64>0);
export const Q_NTLB: u64 = 1 << 6;
export const Q_PSC: u64 = 1 << 10;
export const Q_WALKED: u64 = 1 << 11;
@inline export function qRights(r: u64): u32 { return <u32>r & 7; }
@inline export function qSize(r: u64): u32 { return (<u32>r >> 3) & 3; }
@inline export function qD(r: u64): u32 { return (<u32>r >> 5) & 1; }
@inline export function qRefs(r: u64): u64 { return (r >> 7) & 7; }
@inline export function qMask(r: u64): u64 { return (<u64>1 << (12 + 9 * <u64>qSize(r))) - 1; }
// The host address of gpa under the translation r, and of its 4 KiB page.
@inline export function qHpa(r: u64, gpa: u64): u64 { return (r & ~(<u64>0xFFF)) | (gpa & 0xFFF); }
@inline export function qPage(r: u64): u64 { return r & ~(<u64>0xFFF); }

// The careful translation's results (c.eptHpa ...) in the packed form.
@inline export function packCareful(c: Cpu): u64 {
  let size: u64 = c.eptSize == 4096 ? 0 : (c.eptSize == 0x20_0000 ? 1 : 2);
  return (c.eptHpa & ~(<u64>0xFFF)) | <u64>c.eptRights | (size << 3) | (<u64>c.eptD << 5);
}

// The common case of eptTranslate (ept.ts) for gpa and access kind `need` (EA_*), with
// its cache effects (LRU stamps, fills) but not its counters, which the packed result
// gives (see countQuick); Q_NONE when eptTranslate must run (nothing changed that it
// would not redo identically).
// high, must, upper, mid: the entry checks' masks (eptRsvd, eptMust, eptUpper, eptMid),
// loop-invariant for callers.
@inline export function quickEpt(c: Cpu, gpa: u64, need: u32, high: u64, must: u64, upper: u64, mid: u64): u64 {
  return quickEptIn(c, gpa, need, high, must, upper, mid, c.ntlbOn != 0, c.epscOn != 0, c.eptLevels, c.eptAD != 0);
}

// quickEpt with the configuration as arguments (c's, or constants in a specialised loop).
@inline export function quickEptIn(c: Cpu, gpa: u64, need: u32, high: u64, must: u64, upper: u64, mid: u64,
                                   ntlbOn: bool, epscOn: bool, levels: u32, ad: bool): u64 {
  let clk = c.clock;
  let noted: usize = 0; // the nested TLB's victim for a 4 KiB fill, from its missed probe
  if (ntlbOn) {
    let t = tlbOf(c, T_NTLB);
    let sizes = t.sizes;
    // By size, 4K first (a miss notes the victim of a 4 KiB fill, the common one).
    let e: usize = 0, size: u32 = 0;
    if ((sizes & 1) != 0) {
      notedVictim = 0;
      e = probeNoting(t, gpa >> 12, A_V, 0, 0);
      noted = notedVictim;
    }
    if (e == 0 && (sizes & 2) != 0) { size = 1; e = probe(t, gpa >> 21, A_V | (1 << A_SIZE_SHIFT), 0, 0); }
    if (e == 0 && (sizes & 4) != 0) { size = 2; e = probe(t, gpa >> 30, A_V | (2 << A_SIZE_SHIFT), 0, 0); }
    if (e != 0) {
      let a = entryAt(e).attr;
      let rights = (a >> 1) & 7;
      if ((rights & need) != need || (ad && (need & EA_WRITE) != 0 && (a & A_D) == 0)) return Q_NONE; // the walk decides
      entryAt(e).stamp = clk;
      let page = entryAt(e).frame | (gpa & ((<u64>1 << (12 + 9 * <u64>size)) - 1) & ~(<u64>0xFFF));
      return page | <u64>rights | (<u64>size << 3) | ((a & A_D) != 0 ? 1 << 5 : 0) | Q_NTLB;
    }
  }
  if ((gpa >> (12 + 9 * <u64>levels)) != 0) return Q_NONE;
  let level = levels, table = c.eptRoot, rights: u32 = 7, pscHit: u64 = 0;
  if (epscOn) { // longest prefix first, unrolled
    let l: u32 = 2;
    let e = probe(tlbOf(c, T_EPDE), gpa >> levelShift(2), A_V, 0, 0);
    if (e == 0) { l = 3; e = probe(tlbOf(c, T_EPDE + 1), gpa >> levelShift(3), A_V, 0, 0); }
    if (e == 0) { l = 4; e = probe(tlbOf(c, T_EPDE + 2), gpa >> levelShift(4), A_V, 0, 0); }
    if (e == 0 && levels == 5) { l = 5; e = probe(tlbOf(c, T_EPDE + 3), gpa >> levelShift(5), A_V, 0, 0); }
    if (e != 0) {
      table = entryAt(e).frame;
      rights = (entryAt(e).attr >> 1) & 7;
      level = l - 1;
      entryAt(e).stamp = clk; // the careful walk stamps it again, with the same clock
      pscHit = Q_PSC;
    }
  }
  // The walk from `level` (below an EPT-PSC hit, or the top), unrolled (each level a
  // constant in quickEptEntry); anything unusual goes to the careful walk.
  let path = walkPath(c.path);
  let e: u64 = 0, leaf: u32 = 1, t = table;
  do {
    if (level >= 5) {
      e = quickEptEntry(path, t, gpa, 5, rights, high, must, upper, mid); if (e == 0) return Q_NONE;
      rights &= <u32>e & 7; t = e & EPT_ADDR;
    }
    if (level >= 4) {
      e = quickEptEntry(path, t, gpa, 4, rights, high, must, upper, mid); if (e == 0) return Q_NONE;
      rights &= <u32>e & 7; t = e & EPT_ADDR;
    }
    if (level >= 3) {
      e = quickEptEntry(path, t, gpa, 3, rights, high, must, upper, mid); if (e == 0) return Q_NONE;
      rights &= <u32>e & 7;
      if ((e & EPT_PS) != 0) { leaf = 3; break; }
      t = e & EPT_ADDR;
    }
    if (level >= 2) {
      e = quickEptEntry(path, t, gpa, 2, rights, high, must, upper, mid); if (e == 0) return Q_NONE;
      rights &= <u32>e & 7;
      if ((e & EPT_PS) != 0) { leaf = 2; break; }
      t = e & EPT_ADDR;
    }
    e = quickEptEntry(path, t, gpa, 1, rights, high, must, upper, mid); if (e == 0) return Q_NONE;
    rights &= <u32>e & 7;
  } while (false);
  let leafBits = ad ? EPT_A | ((need & EA_WRITE) != 0 ? EPT_D : 0) : 0;
  if ((rights & need) != need || (e & leafBits) != leafBits) return Q_NONE;
  // Commit: what eptWalk does after such a walk (no A/D to write).
  if (epscOn) {
    for (let l = level; l > leaf; l--) {
      fillScan(tlbOf(c, T_EPDE + <i32>l - 2), gpa >> levelShift(l), A_V | (path.eptRights(l) << 1),
        readPhys64(path.eptEntryPa(l)) & EPT_ADDR, 0, 0, 0, clk);
    }
  }
  let size = leaf - 1;
  let mask = (<u64>1 << (12 + 9 * <u64>size)) - 1;
  let frame = e & EPT_ADDR & ~mask;
  let d: u32 = !ad || (e & EPT_D) != 0 ? 1 : 0;
  if (ntlbOn) {
    let t = tlbOf(c, T_NTLB), tag = gpa >> (12 + 9 * <u64>size);
    let attr = A_V | (rights << 1) | (d != 0 ? A_D : 0) | (size << A_SIZE_SHIFT);
    // Nothing changed the nested TLB since its probe: a noted 4 KiB victim is the fill's.
    if (size == 0 && noted != 0) fillAt(t, noted, tag, attr, frame, path.eptEntryPa(leaf), e, 0, clk);
    else fillScan(t, tag, attr, frame, path.eptEntryPa(leaf), e, 0, clk);
  }
  let page = frame | (gpa & mask & ~(<u64>0xFFF));
  return page | <u64>rights | (<u64>size << 3) | (<u64>d << 5) | (<u64>(level - leaf + 1) << 7) | pscHit | Q_WALKED;
}

// The quick EPT entry checks' masks: bits a non-leaf entry must have (A with EPT A/D on);
// reserved bits (with those) of a non-leaf entry at levels 4-5 (7:3) and 2-3 (6:3).
@inline export function eptMust(c: Cpu): u64 { return c.eptAD != 0 ? EPT_A : 0; }
@inline export function eptUpper(high: u64, must: u64): u64 { return high | 0xF8 | must; }
@inline export function eptMid(high: u64, must: u64): u64 { return high | 0x78 | must; }

// The counters eptTranslate bumps for a quick translation r, bumped.
@inline function countQuick(c: Cpu, r: u64): void {
  let cnt = c.counters;
  if ((r & Q_NTLB) != 0) { bump(cnt, C_NTLB_HIT); return; }
  let refs = qRefs(r);
  if (c.ntlbOn != 0) bump(cnt, C_NTLB_MISS);
  bump(cnt, C_EPT_WALKS);
  bump(cnt, C_EPT_PSC_HIT, (r >> 10) & 1);
  bump(cnt, C_EPT_REFS, refs);
  bump(cnt, C_WALK_REFS, refs);
}

// eptTranslate's contract (results in c.eptHpa / eptSize / eptRights / eptD, or an exit),
// the common case inline.
@inline export function quickEptTranslate(c: Cpu, gpa: u64, need: u32, final: bool, gva: u64): u32 {
  let high = c.eptRsvd, must = eptMust(c);
  let r = quickEpt(c, gpa, need, high, must, eptUpper(high, must), eptMid(high, must));
  if (r == Q_NONE) return eptTranslate(c, gpa, need, final, gva);
  countQuick(c, r);
  c.eptHpa = qHpa(r, gpa);
  c.eptSize = qMask(r) + 1;
  c.eptRights = qRights(r);
  c.eptD = qD(r);
  return EPT_OK;
}

// walk.ts pscLookup with the unrolled probes: the level (2..5) of the longest-prefix
// guest PSC hit, or 0; on a hit c.resPa = next table, c.pscGpa its gpa, c.pscRights.
@inline export function quickPscLookup(c: Cpu, va: u64): u32 {
  return quickPscLookupIn(c, va, c.pscOn != 0, c.levels);
}

@inline export function quickPscLookupIn(c: Cpu, va: u64, pscOn: bool, levels: u32): u32 {
  if (!pscOn) return 0;
  let pcidBits = c.pcid << A_PCID_SHIFT, ctx = c.ctx;
  // longest prefix first, unrolled
  let l: u32 = 2;
  let e = probe(tlbOf(c, T_PDE), va >> levelShift(2), A_V, pcidBits, ctx);
  if (e == 0) { l = 3; e = probe(tlbOf(c, T_PDE + 1), va >> levelShift(3), A_V, pcidBits, ctx); }
  if (e == 0) { l = 4; e = probe(tlbOf(c, T_PDE + 2), va >> levelShift(4), A_V, pcidBits, ctx); }
  if (e == 0 && levels == 5) { l = 5; e = probe(tlbOf(c, T_PDE + 3), va >> levelShift(5), A_V, pcidBits, ctx); }
  if (e == 0) return 0;
  entryAt(e).stamp = c.clock;
  c.resPa = entryAt(e).frame;
  c.pscGpa = entryAt(e).leafPa;
  c.pscRights = entryAt(e).attr & A_RIGHTS;
  return l;
}
