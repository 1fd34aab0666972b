// EPT: the second dimension of a nested walk (SDM Vol. 3C §28.2). Translates a
// guest-physical address through the EPT with its own TLB (the nested TLB, gpa → hpa)
// and paging-structure caches, in the manner of Bhargava et al. (ASPLOS'08).
//
// EPTP:   51..12 root | 11..7 0 | 6 A/D enable | 5..3 walk length − 1 | 2..0 memory type
//
// EPT entry (present iff bits 2:0 ≠ 0):
//    63     62..52    51..M   M-1..12   11  10   9   8   7    6     5..3   2   1   0
//  ┌─────┬─────────┬────────┬─────────┬───┬───┬───┬───┬────┬─────┬──────┬───┬───┬───┐
//  │ SVE │ ignored │reserved│ address │ i │ i │ D │ A │ PS │IPAT │  MT  │ X │ W │ R │
//  └─────┴─────────┴────────┴─────────┴───┴───┴───┴───┴────┴─────┴──────┴───┴───┴───┘
//   Non-leaf: bits 6:3 reserved (7:3 in PML4E/PML5E); D ignored. PS=1 in a PDE / PDPTE
//   maps 2 MiB / 1 GiB, whose address bits 20:12 / 29:12 are reserved. Leaf MT 2, 3, 7
//   and W without R are misconfigurations.

import { walkPath, WalkPath } from "./path";
import { readPhys64, orPhys64, physBase, physBytes } from "./mem";
import { levelShift } from "./entry";
import { Cpu, tlbOf, T_NTLB, T_EPDE } from "./cpu";
import { probe, fill, invalidateVa, A_V, A_SIZE_SHIFT, A_D, entryAt } from "./tlb";
import { bump, C_NTLB_HIT, C_NTLB_MISS, C_EPT_WALKS, C_EPT_REFS, C_WALK_REFS, C_EPT_PSC_HIT,
  C_EPT_VIOLATIONS, C_EPT_MISCONFIGS } from "./counters";

export const EPT_R: u64 = 1;
export const EPT_W: u64 = 2;
export const EPT_X: u64 = 4;
export const EPT_PS: u64 = 1 << 7;
export const EPT_A: u64 = 1 << 8;
export const EPT_D: u64 = 1 << 9;

// EPT access kinds (the exit-qualification bits 2:0).
export const EA_READ: u32 = 1;
export const EA_WRITE: u32 = 2;
export const EA_FETCH: u32 = 4;

export const EPT_OK: u32 = 0;
export const EPT_VIOLATION: u32 = 4; // = XLATE_EPT_VIOLATION
export const EPT_MISCONFIG: u32 = 5; // = XLATE_EPT_MISCONFIG

const QUAL_GLA_VALID: u32 = 1 << 7;
const QUAL_FINAL: u32 = 1 << 8;

// Leaf memory types 2, 3 and 7 are reserved: a misconfiguration.
@inline function badMemType(e: u64): bool {
  let mt = <u32>(e >> 3) & 7;
  return mt == 2 || mt == 3 || mt == 7;
}

function violation(c: Cpu, gpa: u64, gva: u64, eacc: u32, rights: u32, final: bool): u32 {
  c.exitGpa = gpa;
  c.exitAddr = gva;
  c.exitQual = eacc | (rights << 3) | QUAL_GLA_VALID | (final ? QUAL_FINAL : 0);
  bump(c.counters, C_EPT_VIOLATIONS);
  // An EPT violation drops the guest-physical mappings used for the gpa (SDM 28.3.3.1).
  invalidateVa(tlbOf(c, T_NTLB), gpa, 0, true, 0);
  return EPT_VIOLATION;
}

function misconfig(c: Cpu, gpa: u64, gva: u64): u32 {
  c.exitGpa = gpa;
  c.exitAddr = gva;
  c.exitQual = 0;
  bump(c.counters, C_EPT_MISCONFIGS);
  return EPT_MISCONFIG;
}

// Translates gpa for an access of kind eacc (EA_*; both READ and WRITE for a guest
// paging-structure access with EPT A/D on). `final` says whether gpa is the translation
// of gva (1) or a guest paging-structure entry (0). On EPT_OK: c.eptHpa, c.eptSize,
// c.eptRights, c.eptD; otherwise the exit fields.
export function eptTranslate(c: Cpu, gpa: u64, eacc: u32, final: bool, gva: u64): u32 {
  let need = <u32>eacc & 7;
  // Nested TLB: gpa page → hpa frame with its EPT rights.
  if (c.ntlbOn != 0) {
    let t = tlbOf(c, T_NTLB);
    for (let size: u32 = 0; size < 3; size++) {
      if ((t.sizes & (1 << size)) == 0) continue;
      let e = probe(t, gpa >> (12 + 9 * <u64>size), A_V | (size << A_SIZE_SHIFT), 0, 0);
      if (e == 0) continue;
      let a = entryAt(e).attr;
      let rights = (a >> 1) & 7;
      // A cached entry serves only accesses it allows outright; otherwise the walk
      // reports (or, after a change, no longer reports) the violation from memory.
      let needD = c.eptAD != 0 && (need & EA_WRITE) != 0 && (a & A_D) == 0;
      if ((rights & need) != need || needD) break;
      entryAt(e).stamp = c.clock;
      bump(c.counters, C_NTLB_HIT);
      let mask = (<u64>1 << (12 + 9 * <u64>size)) - 1;
      c.eptHpa = entryAt(e).frame | (gpa & mask);
      c.eptSize = mask + 1;
      c.eptRights = rights;
      c.eptD = (a & A_D) != 0 ? 1 : 0;
      return EPT_OK;
    }
    bump(c.counters, C_NTLB_MISS);
  }
  return eptWalk(c, gpa, need, final, gva);
}

// One level of the quick EPT walk (level a constant after inlining): the entry if it is
// inside memory, present, not W-without-R, free of reserved bits and (as a leaf) of a
// valid memory type, with its address and the rights through it in the walk path; else 0.
@inline function eptQuickEntry(c: Cpu, path: WalkPath, table: u64, gpa: u64, level: u32, rights: u32): u64 {
  let epa = table | (((gpa >> levelShift(level)) & 511) << 3);
  if (epa >= physBytes) return 0;
  let e = load<u64>(physBase + <usize>epa);
  let xwr = <u32>e & 7;
  if (xwr == 0 || (xwr & 3) == 2) return 0;
  let leaf = level == 1 || (level <= 3 && (e & EPT_PS) != 0);
  let rsvd = c.eptRsvd | (level >= 4 ? 0xF8 : (!leaf ? 0x78 : (level == 3 ? 0x3FFFF000 : (level == 2 ? 0x1FF000 : 0))));
  if ((e & rsvd) != 0 || (leaf && badMemType(e))) return 0;
  path.setEptEntryPa(level, epa);
  path.setEptRights(level, rights & xwr);
  return e;
}

// The EPT walk's common case, unrolled from `level` down with the rights so far (see
// walk.ts quickWalk): the leaf entry, its level in c.qLeaf and the rights through it in c.qRights; 0 when the walk
// loop must decide (a violation or misconfiguration), having changed only the path.
@inline function eptQuick(c: Cpu, path: WalkPath, table: u64, gpa: u64, level: u32, rights: u32): u64 {
  let e: u64 = 0, r = rights, leaf: u32 = 1;
  do {
    if (level >= 5) {
      e = eptQuickEntry(c, path, table, gpa, 5, r); if (e == 0) return 0;
      r &= <u32>e & 7; table = e & 0x000F_FFFF_FFFF_F000;
    }
    if (level >= 4) {
      e = eptQuickEntry(c, path, table, gpa, 4, r); if (e == 0) return 0;
      r &= <u32>e & 7; table = e & 0x000F_FFFF_FFFF_F000;
    }
    if (level >= 3) {
      e = eptQuickEntry(c, path, table, gpa, 3, r); if (e == 0) return 0;
      r &= <u32>e & 7;
      if ((e & EPT_PS) != 0) { leaf = 3; break; }
      table = e & 0x000F_FFFF_FFFF_F000;
    }
    if (level >= 2) {
      e = eptQuickEntry(c, path, table, gpa, 2, r); if (e == 0) return 0;
      r &= <u32>e & 7;
      if ((e & EPT_PS) != 0) { leaf = 2; break; }
      table = e & 0x000F_FFFF_FFFF_F000;
    }
    e = eptQuickEntry(c, path, table, gpa, 1, r); if (e == 0) return 0;
    r &= <u32>e & 7;
  } while (false);
  c.qLeaf = leaf;
  c.qRights = r;
  return e;
}

function eptWalk(c: Cpu, gpa: u64, need: u32, final: bool, gva: u64): u32 {
  bump(c.counters, C_EPT_WALKS);
  let levels = c.eptLevels;
  if ((gpa >> (12 + 9 * <u64>levels)) != 0) return violation(c, gpa, gva, need, 0, final);
  let level = levels;
  let table = c.eptRoot;
  let rights: u32 = 7;
  // Longest-prefix EPT paging-structure-cache match.
  if (c.epscOn != 0) {
    for (let l: u32 = 2; l <= levels; l++) {
      let e = probe(tlbOf(c, T_EPDE + <i32>l - 2), gpa >> levelShift(l), A_V, 0, 0);
      if (e != 0) {
        table = entryAt(e).frame;
        rights = (entryAt(e).attr >> 1) & 7;
        level = l - 1;
        entryAt(e).stamp = c.clock;
        bump(c.counters, C_EPT_PSC_HIT);
        break;
      }
    }
  }
  let top = level;
  // EPT entry addresses and the rights through each level go in the walk path (path.ts).
  let path = walkPath(c.path);
  let e: u64 = 0, epa: u64 = 0, refs: u64 = 0;
  let q = eptQuick(c, path, table, gpa, level, rights);
  if (q != 0) { // the common case, unrolled; anything else takes the loop below
    e = q; level = c.qLeaf; rights = c.qRights; refs = <u64>(top - level + 1); epa = path.eptEntryPa(level);
  } else while (true) {
    epa = table | (((gpa >> levelShift(level)) & 511) << 3);
    e = readPhys64(epa);
    refs++;
    path.setEptEntryPa(level, epa);
    let xwr = <u32>e & 7;
    if (xwr == 0) { countRefs(c, refs); return violation(c, gpa, gva, need, 0, final); }
    if ((xwr & 3) == 2) { countRefs(c, refs); return misconfig(c, gpa, gva); } // W without R
    let leaf = level == 1 || (level <= 3 && (e & EPT_PS) != 0);
    let rsvd = e & c.eptRsvd;
    if (level >= 4) rsvd |= e & 0xF8;                 // bits 7:3
    else if (!leaf) rsvd |= e & 0x78;                 // bits 6:3
    else if (level == 3) rsvd |= e & 0x3FFFF000;      // 1 GiB: bits 29:12
    else if (level == 2) rsvd |= e & 0x1FF000;        // 2 MiB: bits 20:12
    if (rsvd != 0 || (leaf && badMemType(e))) { countRefs(c, refs); return misconfig(c, gpa, gva); }
    rights &= xwr;
    path.setEptRights(level, rights); // rights through this level
    if (leaf) break;
    table = e & 0x000F_FFFF_FFFF_F000;
    level--;
  }
  countRefs(c, refs);
  if ((rights & need) != need) return violation(c, gpa, gva, need, rights, final);
  let shift = 12 + 9 * <u64>(level - 1);
  let mask = (<u64>1 << shift) - 1;
  let d: u32 = 1;
  // Cache the non-leaf entries only now: an entry is cached only with A set (SDM 28.3.2).
  for (let l = top; l > level; l--) {
    let at = path.eptEntryPa(l);
    if (c.eptAD != 0) setEptFlags(at, EPT_A);
    if (c.epscOn != 0) {
      let r = path.eptRights(l);
      fill(tlbOf(c, T_EPDE + <i32>l - 2), gpa >> levelShift(l), A_V | (r << 1),
        readPhys64(at) & 0x000F_FFFF_FFFF_F000, 0, 0, 0, c.clock);
    }
  }
  if (c.eptAD != 0) {
    let bits = EPT_A | ((need & EA_WRITE) != 0 ? EPT_D : 0);
    if ((e & bits) != bits) setEptFlags(epa, bits);
    e |= bits;
    d = (e & EPT_D) != 0 ? 1 : 0;
  }
  let frame = e & 0x000F_FFFF_FFFF_F000 & ~mask;
  if (c.ntlbOn != 0) {
    fill(tlbOf(c, T_NTLB), gpa >> shift, A_V | (rights << 1) | (d != 0 ? A_D : 0) |
      ((level - 1) << A_SIZE_SHIFT), frame, epa, e, 0, c.clock);
  }
  c.eptHpa = frame | (gpa & mask);
  c.eptSize = mask + 1;
  c.eptRights = rights;
  c.eptD = d;
  return EPT_OK;
}

// Sets EPT A/D flags as the processor does: a locked write only when one is still clear
// (an entry whose flags are set is not written, so no cached code is dropped for it).
@inline function setEptFlags(pa: u64, bits: u64): void {
  if ((readPhys64(pa) & bits) != bits) orPhys64(pa, bits);
}

@inline function countRefs(c: Cpu, refs: u64): void {
  bump(c.counters, C_EPT_REFS, refs);
  bump(c.counters, C_WALK_REFS, refs);
}
