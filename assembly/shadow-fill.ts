// The shadow MMU's common hidden-fault fill in one call (the host's ShadowMmu.fill in
// src/hypervisor/monitor/shadow.ts is the reference and handles everything else).
//
// The case: the guest walker (a nested-mode vCPU without TLBs) has just walked the guest's
// tables successfully down to a 4 KiB guest leaf, and every shadow table on the path
// already exists and is linked exactly as the host's fill would link it. Then the host's
// fill creates nothing and writes nothing but the shadow leaf; this does the same checks
// and writes the same leaf. Anything else (a guest large page, a missing or different
// link, a root that is not the shadow page of the guest's CR3) returns FILL_NO with no
// side effect and the host runs its own fill.
//
// Which shadow table is which: the host tags every non-direct shadow page's frame with
// its key (guest table gfn, level) in a per-host-frame word, written when the page is
// made and cleared when it is freed:
//
//   tag (u32)   bits 31..3        2..0
//              ┌───────────────┬───────┐
//              │ gfn (< 2^29)  │ level │   0 = not a (non-direct) shadow page
//              └───────────────┴───────┘
//
// Shadow pages are keyed uniquely by (level, gfn, direct), so a link whose target frame
// carries tag (gfn, level) points at the very page the host's fill would look up.

import { Cpu } from "./cpu";
import { alloc, physBytes, physPtr } from "./mem";
import { codeWrite } from "./x86/icache";
import { walkPath } from "./path";

const ADDR: u64 = 0x000F_FFFF_FFFF_F000; // the host fill's address mask (bits 51:12)
const P: u64 = 1, W: u64 = 2, U: u64 = 4, A: u64 = 0x20, D: u64 = 0x40, PS: u64 = 0x80;
const XD: u64 = 0x8000_0000_0000_0000;
const PK: u64 = <u64>0xF << 59; // protection key, bits 62:59
const MAX_TAGGED_GFN: u64 = (1 << 29) - 1;

// Results (low bits of the returned spte address, which is 8-aligned; in the ABI table).
export const FILL_NO: u32 = 0;         // not the common case: the host fills
export const FILL_DONE: u32 = 1;       // leaf written (read-only, or W not asked for)
export const FILL_PENDING: u32 = 2;    // guest leaf is W and D: the host decides W, then commits

let tags: usize = 0;                // u32 per host frame, allocated on first use
let lastGfn: u64 = 0;
let pendAt: u64 = 0, pendSpte: u64 = 0;

// Allocates the tag words (once per host); false if memory is exhausted.
export function shadowTagsInit(): bool {
  if (tags == 0) tags = alloc((physBytes >> 12) << 2);
  return tags != 0;
}

// Tags host frame hfn as the non-direct shadow page of guest table gfn at `level`; level 0
// clears it. Frame 0 and gfns beyond the tag's range stay untagged (the host path serves them).
export function shadowTag(hfn: u32, gfn: f64, level: u32): void {
  if (tags == 0 || <u64>hfn >= (physBytes >> 12) || hfn == 0) return;
  let g = <u64>gfn;
  store<u32>(tags + (<usize>hfn << 2), level == 0 || g > MAX_TAGGED_GFN || level > 5 ? 0 : <u32>(g << 3) | level);
}

// The tag of host frame hfn (0 if none): for tests and inspection.
export function shadowTagOf(hfn: u32): u32 {
  return tags == 0 || <u64>hfn >= (physBytes >> 12) ? 0 : load<u32>(tags + (<usize>hfn << 2));
}

@inline function tagged(hpa: u64, gfn: u64, level: u32): bool {
  let hfn = hpa >> 12;
  return hfn != 0 && hfn < (physBytes >> 12) && gfn <= MAX_TAGGED_GFN &&
    load<u32>(tags + (<usize>hfn << 2)) == ((<u32>gfn << 3) | level);
}

// The rights bits a link carries for guest entry ge (the host fill's link bits).
@inline function linkBits(ge: u64, nxe: bool): u64 {
  return P | A | (ge & (W | U)) | (nxe ? ge & XD : 0);
}

// The fill for va after walker's successful walk; vcpu runs on the shadow. Returns the
// spte's hpa | FILL_DONE or | FILL_PENDING, or FILL_NO. `levels`, `nxe` and `rootGfn`
// (the guest CR3's table) are the guest's as the host's fill reads them.
export function shadowFillLeaf(vcpu: Cpu, walker: Cpu, va: u64, rootGfn: f64, levels: u32, nxe: bool, write: bool): u32 {
  if (tags == 0 || (levels != 4 && levels != 5)) return FILL_NO;
  let path = walkPath(walker.path);
  if ((path.entry(3) & PS) != 0 || (path.entry(2) & PS) != 0) return FILL_NO; // a guest large page
  // The root the host's fill starts from: the vCPU's CR3 if it is that page (it always is).
  let sp = vcpu.cr3 & ADDR;
  if (!tagged(sp, <u64>rootGfn, levels)) return FILL_NO;
  let vpn = va >> 12;
  for (let l = levels; l > 1; l--) {
    let ge = path.entry(l);
    let at = sp + (((vpn >> (9 * <u64>(l - 1))) & 511) << 3);
    if (at + 8 > physBytes) return FILL_NO;
    let e = load<u64>(physPtr(at));
    if ((e & ~ADDR) != linkBits(ge, nxe) || !tagged(e & ADDR, (ge & ADDR) >> 12, l - 1)) return FILL_NO;
    sp = e & ADDR;
  }
  let leaf = path.entry(1);
  let at = sp + ((vpn & 511) << 3);
  if (at + 8 > physBytes) return FILL_NO;
  let spte = (walker.resPa & ADDR) | P | A | (leaf & PK) | (leaf & U);
  if (nxe) spte |= leaf & XD;
  lastGfn = (leaf & ADDR) >> 12;
  if ((leaf & W) != 0 && (write || (leaf & D) != 0)) {
    pendAt = at; pendSpte = spte;
    return <u32>at | FILL_PENDING;
  }
  codeWrite(at, 8);
  store<u64>(physPtr(at), spte);
  return <u32>at | FILL_DONE;
}

// Writes the pending leaf of the last FILL_PENDING, writable (W and D) if the host allows.
export function shadowFillCommit(writable: bool): void {
  codeWrite(pendAt, 8);
  store<u64>(physPtr(pendAt), writable ? pendSpte | W | D : pendSpte);
}

// The guest frame the last shadowFillLeaf mapped (the host's rmap and checks need it).
export function shadowFillGfn(): f64 { return <f64>lastGfn; }
