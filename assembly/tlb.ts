// Set-associative translation caches with true per-set LRU replacement (not the
// tree-PLRU most hardware uses: LRU is what the reference model and the tests assume,
// and it is the documented, deterministic policy). One structure serves the TLBs (page
// number → frame) and the paging-structure caches (va prefix → next table, SDM §4.10.3);
// they differ only in what the tag and frame mean.
//
// Replacement: each entry carries the LRU time of its last use (stamp); a fill takes the
// first invalid way, else the way with the smallest stamp (the first of equal stamps).
// After a missed probe that victim is missVictim's choice, made with selects, not a
// branch per way; probeMiss notes it (the hint) for the fill that follows the walk, and
// the batch engine's miss loop passes it straight to fillAt. The hint is only trusted for
// the same tag, size, PCID, context and LRU time, and any fill or invalidation of the
// cache drops it; a fill without one scans the set (scanVictim, also with selects).
//
// Ordered caches (the unified L2, 12 ways, where most misses of a large working set land)
// keep the same LRU order explicitly, beside the entries, so neither a probe nor a fill
// has to read every way's 48-byte entry:
//   dir    u32 per entry: the low word of its tag (written with the tag at fill); a probe
//          compares these 4-byte words and reads a full entry only on a match
//   order  u64 per set: way numbers in 4-bit fields, most recently used in bits 3..0,
//          least recently used in field ways−1 (moved to the front on fill and on use)
//   valid  u32 per set: bit w set while way w holds a valid entry
// Victim: the first invalid way, else the same translation if cached, else the last way
// in order — the way with the smallest stamp, exactly as the stamp scan picks it.
//
// Entry (ENTRY = 48 bytes):
//   +0  tag     u64  va >> page shift (TLB) or va >> level shift (PSC)
//   +8  frame   u64  physical base of the page, or of the next paging structure
//   +16 leafPa  u64  physical address of the leaf entry (D-bit re-walks, coherence checker)
//   +24 leafVal u64  the leaf entry as cached (coherence checker)
//   +32 attr    u32  see below
//   +36 stamp   u32  LRU time of last use
//   +40 ctx     u32  translation context (0 native; VPID/EPTP tag later)
//
// attr:
//    31..28  27 ........ 16  15..12  11..8   7..6   5   4   3    2   1   0
//   ┌───────┬──────────────┬───────┬──────┬──────┬───┬───┬────┬───┬───┬───┐
//   │   0   │     PCID     │ flags │ PKEY │ size │ G │ D │ NX │ U │ W │ V │
//   └───────┴──────────────┴───────┴──────┴──────┴───┴───┴────┴───┴───┴───┘
//   W, U: AND over the walk; NX: OR of XD over the walk (with NXE); size 0/1/2 = 4K/2M/1G.
//   flags bit 12: stale use already reported by the coherence checker.
//   flags bit 13: (combined mapping) the EPT forbids fetches: a fetch must re-walk.
//   In the nested TLB and EPT PSCs, bits 1..3 hold the EPT R, W, X rights instead.

import { alloc } from "./mem";

export const ENTRY: usize = 48; // offsetof<TlbEntry>() rounded up to 8 (checked below)
export const A_V: u32 = 1;
export const A_W: u32 = 2;
export const A_U: u32 = 4;
export const A_NX: u32 = 8;
export const A_RIGHTS: u32 = A_W | A_U | A_NX;
export const A_D: u32 = 16;
export const A_G: u32 = 32;
export const A_SIZE_SHIFT: u32 = 6;
export const A_SIZE: u32 = 3 << 6;
export const A_PKEY_SHIFT: u32 = 8;
export const A_REPORTED: u32 = 1 << 12;
export const A_EPT_NOX: u32 = 1 << 13;
export const A_PCID_SHIFT: u32 = 16;
export const A_PCID: u32 = 0xFFF << 16;

// The entry record above as a typed view: a pointer into the cache, no allocation. Field
// order and sizes give exactly the offsets of the diagram (AssemblyScript lays out an
// @unmanaged class like a C struct, as its own rt/tlsf.ts does with Block).
@unmanaged export class TlbEntry {
  tag: u64;
  frame: u64;
  leafPa: u64;
  leafVal: u64;
  attr: u32;
  stamp: u32;
  ctx: u32;
}

@inline export function entryAt(e: usize): TlbEntry { return changetype<TlbEntry>(e); }

// Whether entry e is a valid translation of `tag` for a lookup: size (want = A_V | size
// bits), PCID (global entries match any) and context.
@inline export function entryMatches(e: usize, tag: u64, want: u32, pcidBits: u32, ctx: u32): bool {
  if (entryAt(e).tag != tag) return false; // the tag first: most ways differ there
  let a = entryAt(e).attr;
  return (a & (A_V | A_SIZE)) == want && ((a & A_PCID) == pcidBits || (a & A_G) != 0) && entryAt(e).ctx == ctx;
}

// Whether e (an entry address, or anything) is a valid 4 KiB entry of t for tag, as
// probe would find it: a cheap check of a remembered entry before a probe.
@inline export function isEntryFor(t: Tlb, e: usize, tag: u64, pcidBits: u32, ctx: u32): bool {
  if (e < t.entries || e >= t.entries + <usize>(t.sets * t.ways) * ENTRY) return false;
  return entryMatches(e, tag, A_V, pcidBits, ctx);
}

// Whether entry e caches the same translation a fill of (tag, attr, ctx) installs.
@inline function sameTranslation(e: usize, tag: u64, attr: u32, ctx: u32): bool {
  let a = entryAt(e).attr;
  return entryAt(e).tag == tag && (a & A_SIZE) == (attr & A_SIZE) && entryAt(e).ctx == ctx &&
    (a & A_PCID) == (attr & A_PCID);
}

@unmanaged export class Tlb {
  entries: usize;
  sets: u32;
  ways: u32;
  setMask: u32;
  micro: usize; // fast-path mirror to keep coherent (L1 4 KiB data TLB only), or 0
  sizes: u32;   // bit s: may hold size-class s (set on fill, cleared by a full flush)
  // The victim a fill of (hintTag, hintWant, hintPcid, hintCtx) at LRU time hintStamp
  // would choose, noted by probeMiss; 0 if none.
  hint: usize;
  hintTag: u64;
  hintWant: u32;
  hintPcid: u32;
  hintCtx: u32;
  hintStamp: u32;
  // ordered caches only (0 otherwise): see the header
  dir: usize;
  order: usize;
  valid: usize;
}

// Fast-path entries (MICRO_BYTES = 32), direct-mapped by va[19:12], in the manner of
// QEMU's softmmu TLB. Each mirrors a valid L1 4 KiB data-TLB entry for the current
// register state; a tag equals the page number only if that access kind may complete
// with no further check (rights, protection key, D already set, frame inside memory):
//   +0  tagRead   u64   page number, or ~0
//   +8  tagWrite  u64   page number, or ~0
//   +16 host      u32   linear-memory address of the frame
//   +20 l1Entry   u32   the L1 entry, whose LRU stamp a hit must refresh
//   +24 addend    u32   host − (page number << 12), mod 2^32: va + addend is the byte's
//                       linear-memory address (as QEMU's addend), so a hit needs no mask;
//                       l1Entry and addend are read as one u64
// Any change to the L1 entry or to the registers drops the mirror (microDrop/microFlush).
export const MICRO_ENTRIES: u32 = 256;
export const MICRO_BYTES: usize = 32;

@inline export function microSlot(micro: usize, tag: u64): usize {
  return micro + ((<usize>tag & (MICRO_ENTRIES - 1)) << 5);
}

@inline export function microDrop(micro: usize, tag: u64): void {
  if (micro == 0) return;
  let s = microSlot(micro, tag);
  store<u64>(s, ~(<u64>0));
  store<u64>(s, ~(<u64>0), 8);
}

export function microFlush(micro: usize): void {
  for (let i: u32 = 0; i < MICRO_ENTRIES; i++) microDrop(micro, <u64>i);
}

export function initTlb(t: Tlb, entries: usize, sets: u32, ways: u32): void {
  t.entries = entries;
  t.sets = sets;
  t.ways = ways;
  t.setMask = sets > 0 ? sets - 1 : 0;
  t.micro = 0;
  t.sizes = 0;
  t.hint = 0;
  t.dir = 0;
  t.order = 0;
  t.valid = 0;
}

// The side arrays of an ordered cache (see the header), one accessor each.
@inline function dirAt(t: Tlb, i: usize): usize { return t.dir + (i << 2); }      // u32 tag word of entry i
@inline function orderAt(t: Tlb, set: u32): usize { return t.order + (<usize>set << 3); } // u64 way order
@inline function validAt(t: Tlb, set: u32): usize { return t.valid + (<usize>set << 2); } // u32 valid mask
@inline function indexOf(t: Tlb, e: usize): u32 { return <u32>((e - t.entries) / ENTRY); }

// Makes t an ordered cache (ways 2..16). Returns false when out of memory.
export function enableOrder(t: Tlb): bool {
  if (t.ways < 2 || t.ways > 16) return true;
  let n = <u64>t.sets * t.ways;
  let dir = alloc(n * 4), order = alloc(<u64>t.sets * 8), valid = alloc(<u64>t.sets * 4);
  if (dir == 0 || order == 0 || valid == 0) return false;
  t.dir = dir;
  t.order = order;
  t.valid = valid;
  let o: u64 = 0;
  for (let w: u32 = 0; w < t.ways; w++) o |= <u64>w << (4 * <u64>w);
  for (let s: u32 = 0; s < t.sets; s++) store<u64>(orderAt(t, s), o);
  return true;
}

// Moves `way` to the most recently used place of its set's order.
@inline function touchWay(t: Tlb, set: u32, way: u32): void {
  let at = orderAt(t, set);
  let o = load<u64>(at);
  // The field holding `way`: the lowest zero nibble of o ^ (way in every nibble) (the
  // exact lowest one: the borrow trick's false positives lie only above a true zero).
  const ONES: u64 = 0x1111_1111_1111_1111;
  let x = o ^ (<u64>way * ONES);
  let p = <u64>ctz((x - ONES) & ~x & (ONES << 3)) >> 2;
  assert(p < <u64>t.ways && ((o >> (4 * p)) & 15) == <u64>way, "every way appears once in its set's order");
  store<u64>(at, movedToFront(o, way, p));
}

// Order o with `way`, found in field p, moved to field 0 (fields below p move up one).
@inline function movedToFront(o: u64, way: u32, p: u64): u64 {
  let hi = 4 * (p + 1);
  let keep: u64 = hi >= 64 ? 0 : ~(<u64>0) << hi;
  return (o & keep) | ((o & ((<u64>1 << (4 * p)) - 1)) << 4) | <u64>way;
}

// A use of entry e of an ordered cache (a hit that refreshed its stamp). Its set is its
// tag's (no division by the way count).
export function touchEntry(t: Tlb, e: usize): void {
  let set = <u32>entryAt(e).tag & t.setMask;
  touchWay(t, set, indexOf(t, e) - set * t.ways);
}

// Marks entry e invalid (and its way free in an ordered cache).
@inline function dropEntry(t: Tlb, e: usize): void {
  entryAt(e).attr = 0;
  if (t.valid != 0) {
    let i = indexOf(t, e);
    let set = i / t.ways;
    let at = validAt(t, set);
    store<u32>(at, load<u32>(at) & ~(1 << (i - set * t.ways)));
  }
}

// probe for an ordered cache: 4-byte tag words first, a full entry only on a match.
// With a multiple of 4 ways the words are compared 4 at a time (SIMD), giving a mask of
// the ways whose word matches; most probes of a large working set end at a zero mask.
function probeDir(t: Tlb, tag: u64, want: u32, pcidBits: u32, ctx: u32): usize {
  return probeDirInline(t, tag, want, pcidBits, ctx);
}

// probeDir's body, for a caller that wants it inline (the miss loop's L2 probe).
@inline export function probeDirInline(t: Tlb, tag: u64, want: u32, pcidBits: u32, ctx: u32): usize {
  let ways = t.ways;
  let base = <usize>((<u32>tag & t.setMask) * ways);
  let key = <u32>tag;
  if ((ways & 3) == 0) {
    let k = i32x4.splat(key);
    let d = dirAt(t, base);
    let m: u32;
    if (ways == 12) { // the default L2 (Skylake's 1536 × 12): no loop
      m = <u32>i32x4.bitmask(i32x4.eq(v128.load(d), k)) |
        (<u32>i32x4.bitmask(i32x4.eq(v128.load(d, 16), k)) << 4) |
        (<u32>i32x4.bitmask(i32x4.eq(v128.load(d, 32), k)) << 8);
    } else {
      m = 0;
      for (let w: u32 = 0; w < ways; w += 4) {
        m |= <u32>i32x4.bitmask(i32x4.eq(v128.load(d + (<usize>w << 2)), k)) << w;
      }
    }
    while (m != 0) {
      let w = <u32>ctz(m);
      let e = t.entries + (base + <usize>w) * ENTRY;
      if (entryMatches(e, tag, want, pcidBits, ctx)) return e;
      m &= m - 1;
    }
    return 0;
  }
  for (let w: u32 = 0; w < ways; w++) {
    if (load<u32>(dirAt(t, base + <usize>w)) != key) continue;
    let e = t.entries + (base + <usize>w) * ENTRY;
    if (entryMatches(e, tag, want, pcidBits, ctx)) return e;
  }
  return 0;
}

// The fill victim of an ordered cache (same choice as scanVictim, see the header).
function orderedVictim(t: Tlb, tag: u64, attr: u32, ctx: u32): usize {
  let ways = t.ways;
  let set = <u32>tag & t.setMask;
  let base = <usize>(set * ways);
  let valid = load<u32>(validAt(t, set));
  let full: u32 = (1 << ways) - 1;
  let inv = (valid & full) != full ? <u32>ctz(~valid) : ways;
  let key = <u32>tag;
  for (let w: u32 = 0; w < inv; w++) { // a cached copy before the first invalid way is replaced
    if (load<u32>(dirAt(t, base + <usize>w)) != key) continue;
    let e = t.entries + (base + <usize>w) * ENTRY;
    if (sameTranslation(e, tag, attr, ctx)) return e;
  }
  let way = inv < ways ? inv : <u32>(load<u64>(orderAt(t, set)) >> (4 * <u64>(ways - 1))) & 15;
  return t.entries + (base + <usize>way) * ENTRY;
}

// Finds a valid entry for `tag` whose size/PCID/context match; 0 if none.
// `want` = A_V | size bits; global entries match any PCID.
@inline export function probe(t: Tlb, tag: u64, want: u32, pcidBits: u32, ctx: u32): usize {
  if (t.ways != 4 || t.dir != 0) return probeSet(t, tag, want, pcidBits, ctx);
  // The common geometry, inline: the first way holding the tag, chosen by selects (a
  // probe over random addresses hits a random way, on which a branch per way would
  // mispredict), checked in full; if it is another size, PCID or context, probeSet.
  let e = t.entries + <usize>((<u32>tag & t.setMask) << 2) * ENTRY;
  let e1 = e + ENTRY, e2 = e + 2 * ENTRY, e3 = e + 3 * ENTRY;
  let f = select<usize>(e3, 0, entryAt(e3).tag == tag);
  f = select<usize>(e2, f, entryAt(e2).tag == tag);
  f = select<usize>(e1, f, entryAt(e1).tag == tag);
  f = select<usize>(e, f, entryAt(e).tag == tag);
  if (f == 0) return 0;
  let a = entryAt(f).attr; // entryMatches past the tag, without branches
  let ok = <u32>((a & (A_V | A_SIZE)) == want) & (<u32>((a & A_PCID) == pcidBits) | <u32>((a & A_G) != 0)) &
    <u32>(entryAt(f).ctx == ctx);
  return ok != 0 ? f : probeSet(t, tag, want, pcidBits, ctx);
}

// probe for any geometry, out of line: the ordered directory, or every way in order.
function probeSet(t: Tlb, tag: u64, want: u32, pcidBits: u32, ctx: u32): usize {
  if (t.dir != 0) return probeDir(t, tag, want, pcidBits, ctx);
  let e = t.entries + <usize>((<u32>tag & t.setMask) * t.ways) * ENTRY;
  for (let w: u32 = 0; w < t.ways; w++, e += ENTRY) {
    if (entryMatches(e, tag, want, pcidBits, ctx)) return e;
  }
  return 0;
}

// probe, and on a miss also notes the victim a fill of this translation would take
// (first invalid way, else least recently used) for `stamp`, the current LRU time.
// A miss here proves no valid entry has this tag, size, context and PCID, so the fill's
// duplicate check cannot match either.
@inline export function probeMiss(t: Tlb, tag: u64, want: u32, pcidBits: u32, ctx: u32, stamp: u32): usize {
  let x = probe(t, tag, want, pcidBits, ctx);
  if (x == 0 && t.ways != 0) setHint(t, missVictim(t, tag), tag, want, pcidBits, ctx, stamp);
  return x;
}

@inline function setHint(t: Tlb, victim: usize, tag: u64, want: u32, pcidBits: u32, ctx: u32, stamp: u32): void {
  t.hint = victim;
  t.hintTag = tag;
  t.hintWant = want;
  t.hintPcid = pcidBits;
  t.hintCtx = ctx;
  t.hintStamp = stamp;
}

// Installs an entry, replacing an invalid way or the least recently used one. Returns
// the entry (0 if the cache has no ways).
export function fill(t: Tlb, tag: u64, attr: u32, frame: u64, leafPa: u64, leafVal: u64,
                     ctx: u32, stamp: u32): usize {
  let ways = t.ways;
  if (ways == 0) return 0;
  let victim = t.hint;
  if (victim == 0 || t.hintTag != tag || t.hintWant != (A_V | (attr & A_SIZE)) ||
      t.hintPcid != (attr & A_PCID) || t.hintCtx != ctx || t.hintStamp != stamp) {
    return fillScan(t, tag, attr, frame, leafPa, leafVal, ctx, stamp);
  }
  return fillAt(t, victim, tag, attr, frame, leafPa, leafVal, ctx, stamp);
}

// fill with no hint to use (a caller that probed without noting one): the victim by a scan.
@inline export function fillScan(t: Tlb, tag: u64, attr: u32, frame: u64, leafPa: u64, leafVal: u64,
                                 ctx: u32, stamp: u32): usize {
  if (t.ways == 0) return 0;
  let victim = t.dir != 0 ? orderedVictim(t, tag, attr, ctx) : scanVictim(t, tag, attr, ctx);
  return fillAt(t, victim, tag, attr, frame, leafPa, leafVal, ctx, stamp);
}

// The victim a fill of `tag` takes right after a probe of the same tag, size, PCID and
// context missed (so no valid way caches this translation and fill's duplicate check
// cannot match): the first invalid way, else the least recently used (for stamps: the
// first smallest, as scanVictim). No branch depends on the stamps' order.
@inline export function missVictim(t: Tlb, tag: u64): usize {
  let ways = t.ways;
  let set = <u32>tag & t.setMask;
  let base = t.entries + <usize>(set * ways) * ENTRY;
  if (t.dir != 0) {
    let valid = load<u32>(validAt(t, set));
    let inv = <u32>ctz(~valid);
    let way = inv < ways ? inv : <u32>(load<u64>(orderAt(t, set)) >> (4 * <u64>(ways - 1))) & 15;
    return base + <usize>way * ENTRY;
  }
  // Key per way: 0 if invalid, else stamp + 1; the victim is the first smallest key.
  if (ways == 4) {
    let k0 = victimKey(base), k1 = victimKey(base + ENTRY);
    let k2 = victimKey(base + 2 * ENTRY), k3 = victimKey(base + 3 * ENTRY);
    let a = select<usize>(base + ENTRY, base, k1 < k0), ka = select<u64>(k1, k0, k1 < k0);
    let b = select<usize>(base + 3 * ENTRY, base + 2 * ENTRY, k3 < k2), kb = select<u64>(k3, k2, k3 < k2);
    return select<usize>(b, a, kb < ka);
  }
  let victim = base, best: u64 = ~(<u64>0);
  let e = base;
  for (let w: u32 = 0; w < ways; w++, e += ENTRY) {
    let key = victimKey(e);
    let better = key < best;
    victim = select<usize>(e, victim, better);
    best = select<u64>(key, best, better);
  }
  return victim;
}

@inline function victimKey(e: usize): u64 {
  return select<u64>(<u64>entryAt(e).stamp + 1, 0, (entryAt(e).attr & A_V) != 0);
}

// fillAt(t, missVictim(t, tag), ...) for an ordered cache whose set is full (else that
// call): the victim is the way in the last field of the order, so the set's order is read
// once and neither the way's index (a division) nor its field (a search) is computed.
// The valid mask is left as it is (the victim's bit is set).
@inline export function fillMissOrdered(t: Tlb, tag: u64, attr: u32, frame: u64, leafPa: u64, leafVal: u64,
                                        ctx: u32, stamp: u32): usize {
  assert((attr & A_V) != 0 && (attr & A_SIZE) >> A_SIZE_SHIFT <= 2, "a filled entry is valid, 4K/2M/1G");
  let ways = t.ways;
  let set = <u32>tag & t.setMask;
  let first = <usize>(set * ways);
  if (load<u32>(validAt(t, set)) != (1 << ways) - 1) return fillAt(t, missVictim(t, tag), tag, attr, frame, leafPa, leafVal, ctx, stamp);
  let at = orderAt(t, set);
  let o = load<u64>(at);
  let p = <u64>(ways - 1);
  let way = <u32>(o >> (4 * p)) & 15;
  let victim = t.entries + (first + <usize>way) * ENTRY;
  t.sizes |= 1 << ((attr & A_SIZE) >> A_SIZE_SHIFT);
  t.hint = 0;
  writeEntry(t, victim, tag, attr, frame, leafPa, leafVal, ctx, stamp);
  store<u32>(dirAt(t, first + <usize>way), <u32>tag);
  store<u64>(at, movedToFront(o, way, p));
  return victim;
}

// The fields of a fill into way `victim` (fillAt): the micro-TLB copy of the old entry goes.
@inline function writeEntry(t: Tlb, victim: usize, tag: u64, attr: u32, frame: u64, leafPa: u64, leafVal: u64,
                            ctx: u32, stamp: u32): void {
  let v = entryAt(victim);
  if (t.micro != 0 && (v.attr & A_V) != 0) microDrop(t.micro, v.tag); // (no read of the old entry otherwise)
  v.tag = tag;
  v.frame = frame;
  v.leafPa = leafPa;
  v.leafVal = leafVal;
  v.attr = attr;
  v.stamp = stamp;
  v.ctx = ctx;
}

// Writes the entry into way `victim` (from fill, or missVictim after a missed probe).
@inline export function fillAt(t: Tlb, victim: usize, tag: u64, attr: u32, frame: u64, leafPa: u64, leafVal: u64,
                       ctx: u32, stamp: u32): usize {
  assert((attr & A_V) != 0 && (attr & A_SIZE) >> A_SIZE_SHIFT <= 2, "a filled entry is valid, 4K/2M/1G");
  t.sizes |= 1 << ((attr & A_SIZE) >> A_SIZE_SHIFT);
  t.hint = 0;
  writeEntry(t, victim, tag, attr, frame, leafPa, leafVal, ctx, stamp);
  if (t.dir != 0) {
    let i = indexOf(t, victim);
    let set = <u32>tag & t.setMask, way = i - set * t.ways;
    store<u32>(dirAt(t, <usize>i), <u32>tag);
    let at = validAt(t, set);
    store<u32>(at, load<u32>(at) | (1 << way));
    touchWay(t, set, way);
  }
  return victim;
}

// The fill's victim without a hint: the first invalid way, the same translation if it
// is already cached (e.g. refilled after a D re-walk), else the least recently used (the
// first of equal stamps). Every way is read and the choice made by selects: fills after
// walks over random addresses replace random ways, on which a branch per way mispredicts.
@inline function scanVictim(t: Tlb, tag: u64, attr: u32, ctx: u32): usize {
  let ways = t.ways;
  let e = t.entries + <usize>((<u32>tag & t.setMask) * ways) * ENTRY;
  let stop: usize = 0, oldest = e, oldestStamp: u32 = 0xFFFF_FFFF;
  for (let w: u32 = 0; w < ways; w++, e += ENTRY) {
    let a = entryAt(e).attr;
    let same = (entryAt(e).tag == tag) & ((a & A_SIZE) == (attr & A_SIZE)) & (entryAt(e).ctx == ctx) &
      ((a & A_PCID) == (attr & A_PCID)); // sameTranslation, without branches
    stop = select<usize>(e, stop, (((a & A_V) == 0) | same) & (stop == 0));
    let s = entryAt(e).stamp;
    let older = s < oldestStamp;
    oldest = select<usize>(e, oldest, older);
    oldestStamp = select<u32>(s, oldestStamp, older);
  }
  return stop != 0 ? stop : oldest;
}

// Context wildcards for invalidation.
export const CTX_ANY: u32 = 0xFFFF_FFFF;
export const CTX_NONZERO: u32 = 0xFFFF_FFFE; // every context but 0 (the host's)

@inline function ctxMatches(have: u32, ctx: u32): bool {
  return have == ctx || ctx == CTX_ANY || (ctx == CTX_NONZERO && have != 0);
}

// Invalidation selectors.
export const INV_ALL: u32 = 0;            // every entry, globals included
export const INV_PCID_NONGLOBAL: u32 = 1; // non-global entries of one PCID
export const INV_PCID_ALL: u32 = 2;       // every entry of one PCID (PSCs: no globals there)
export const INV_NONGLOBAL: u32 = 3;      // non-global entries of every PCID

// Drops entries chosen by `how` (PCID in `pcid`), restricted to context `ctx`.
export function invalidateWhere(t: Tlb, how: u32, pcid: u32, ctx: u32): void {
  t.hint = 0;
  let n = t.sets * t.ways;
  let e = t.entries;
  let pcidBits = pcid << A_PCID_SHIFT;
  let left = false;
  for (let i: u32 = 0; i < n; i++, e += ENTRY) {
    let a = entryAt(e).attr;
    if ((a & A_V) == 0) continue;
    if (!ctxMatches(entryAt(e).ctx, ctx)) { left = true; continue; }
    let global = (a & A_G) != 0;
    let drop = how == INV_ALL ||
      (how == INV_NONGLOBAL && !global) ||
      (how == INV_PCID_ALL && (a & A_PCID) == pcidBits) ||
      (how == INV_PCID_NONGLOBAL && !global && (a & A_PCID) == pcidBits);
    if (drop) { dropEntry(t, e); microDrop(t.micro, entryAt(e).tag); }
    else left = true;
  }
  if (!left) t.sizes = 0;
}

// Drops the entries that translate the page holding va (any size) for `pcid`;
// global entries go too when `globals` is set (INVLPG drops them, INVPCID type 0 not).
// With anyPcid, every PCID's entry goes (INVVPID type 0).
export function invalidateVa(t: Tlb, va: u64, pcid: u32, globals: bool, ctx: u32, anyPcid: bool = false): void {
  if (t.ways == 0) return;
  t.hint = 0;
  let pcidBits = pcid << A_PCID_SHIFT;
  for (let size: u32 = 0; size < 3; size++) {
    if ((t.sizes & (1 << size)) == 0) continue; // holds no entry of this size
    let tag = va >> (12 + 9 * <u64>size);
    let want = A_V | (size << A_SIZE_SHIFT);
    let e = t.entries + <usize>((<u32>tag & t.setMask) * t.ways) * ENTRY;
    for (let w: u32 = 0; w < t.ways; w++, e += ENTRY) {
      let a = entryAt(e).attr;
      if (entryAt(e).tag != tag || (a & (A_V | A_SIZE)) != want || entryAt(e).ctx != ctx) continue;
      if (((a & A_PCID) == pcidBits || anyPcid) && (a & A_G) == 0 || (globals && (a & A_G) != 0)) {
        dropEntry(t, e);
        microDrop(t.micro, tag);
      }
    }
  }
}

// Drops the paging-structure-cache entries (tag = va >> shift) of pcid for va.
export function invalidatePscVa(t: Tlb, tag: u64, pcid: u32, ctx: u32): void {
  let e = probe(t, tag, A_V, pcid << A_PCID_SHIFT, ctx);
  if (e != 0) { dropEntry(t, e); t.hint = 0; }
}

// The record layout the diagram documents, checked at compile time.
assert(offsetof<TlbEntry>("frame") == 8 && offsetof<TlbEntry>("leafPa") == 16 && offsetof<TlbEntry>("leafVal") == 24 &&
  offsetof<TlbEntry>("attr") == 32 && offsetof<TlbEntry>("stamp") == 36 && offsetof<TlbEntry>("ctx") == 40 &&
  offsetof<TlbEntry>() <= ENTRY);
