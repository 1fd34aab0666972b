// Set-associative translation caches with LRU replacement. One structure serves the
// TLBs (page number → frame) and the paging-structure caches (va prefix → next table,
// SDM §4.10.3); they differ only in what the tag and frame mean.
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

@unmanaged export class Tlb {
  entries: usize;
  sets: u32;
  ways: u32;
  setMask: u32;
  micro: usize; // fast-path mirror to keep coherent (L1 4 KiB data TLB only), or 0
  sizes: u32;   // bit s: may hold size-class s (set on fill, cleared by a full flush)
}

// Fast-path entries (MICRO_BYTES = 32), direct-mapped by va[19:12], in the manner of
// QEMU's softmmu TLB. Each mirrors a valid L1 4 KiB data-TLB entry for the current
// register state; a tag equals the page number only if that access kind may complete
// with no further check (rights, protection key, D already set, frame inside memory):
//   +0  tagRead   u64   page number, or ~0
//   +8  tagWrite  u64   page number, or ~0
//   +16 host      u32   linear-memory address of the frame
//   +20 l1Entry   u32   the L1 entry, whose LRU stamp a hit must refresh
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
}

// Finds a valid entry for `tag` whose size/PCID/context match; 0 if none.
// `want` = A_V | size bits; global entries match any PCID.
@inline export function probe(t: Tlb, tag: u64, want: u32, pcidBits: u32, ctx: u32): usize {
  let ways = t.ways;
  let e = t.entries + <usize>((<u32>tag & t.setMask) * ways) * ENTRY;
  for (let w: u32 = 0; w < ways; w++, e += ENTRY) {
    if (entryAt(e).tag == tag) {
      let a = entryAt(e).attr;
      if ((a & (A_V | A_SIZE)) == want && ((a & A_PCID) == pcidBits || (a & A_G) != 0) &&
          entryAt(e).ctx == ctx) return e;
    }
  }
  return 0;
}

// Installs an entry, replacing an invalid way or the least recently used one.
export function fill(t: Tlb, tag: u64, attr: u32, frame: u64, leafPa: u64, leafVal: u64,
                     ctx: u32, stamp: u32): void {
  let ways = t.ways;
  if (ways == 0) return;
  assert((attr & A_V) != 0 && (attr & A_SIZE) >> A_SIZE_SHIFT <= 2, "a filled entry is valid, 4K/2M/1G");
  t.sizes |= 1 << ((attr & A_SIZE) >> A_SIZE_SHIFT);
  let e = t.entries + <usize>((<u32>tag & t.setMask) * ways) * ENTRY;
  let victim = e;
  let oldest: u32 = 0xFFFF_FFFF;
  for (let w: u32 = 0; w < ways; w++, e += ENTRY) {
    let a = entryAt(e).attr;
    if ((a & A_V) == 0) { victim = e; break; }
    // The same translation may already be cached (e.g. refilled after a D re-walk).
    if (entryAt(e).tag == tag && (a & A_SIZE) == (attr & A_SIZE) && entryAt(e).ctx == ctx &&
        (a & A_PCID) == (attr & A_PCID)) { victim = e; break; }
    let s = entryAt(e).stamp;
    if (s < oldest) { oldest = s; victim = e; }
  }
  if ((entryAt(victim).attr & A_V) != 0) microDrop(t.micro, entryAt(victim).tag);
  entryAt(victim).tag = tag;
  entryAt(victim).frame = frame;
  entryAt(victim).leafPa = leafPa;
  entryAt(victim).leafVal = leafVal;
  entryAt(victim).attr = attr;
  entryAt(victim).stamp = stamp;
  entryAt(victim).ctx = ctx;
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
    if (drop) { entryAt(e).attr = 0; microDrop(t.micro, entryAt(e).tag); }
    else left = true;
  }
  if (!left) t.sizes = 0;
}

// Drops the entries that translate the page holding va (any size) for `pcid`;
// global entries go too when `globals` is set (INVLPG drops them, INVPCID type 0 not).
// With anyPcid, every PCID's entry goes (INVVPID type 0).
export function invalidateVa(t: Tlb, va: u64, pcid: u32, globals: bool, ctx: u32, anyPcid: bool = false): void {
  if (t.ways == 0) return;
  let pcidBits = pcid << A_PCID_SHIFT;
  for (let size: u32 = 0; size < 3; size++) {
    let tag = va >> (12 + 9 * <u64>size);
    let want = A_V | (size << A_SIZE_SHIFT);
    let e = t.entries + <usize>((<u32>tag & t.setMask) * t.ways) * ENTRY;
    for (let w: u32 = 0; w < t.ways; w++, e += ENTRY) {
      let a = entryAt(e).attr;
      if (entryAt(e).tag != tag || (a & (A_V | A_SIZE)) != want || entryAt(e).ctx != ctx) continue;
      if (((a & A_PCID) == pcidBits || anyPcid) && (a & A_G) == 0 || (globals && (a & A_G) != 0)) {
        entryAt(e).attr = 0;
        microDrop(t.micro, tag);
      }
    }
  }
}

// Drops the paging-structure-cache entries (tag = va >> shift) of pcid for va.
export function invalidatePscVa(t: Tlb, tag: u64, pcid: u32, ctx: u32): void {
  let e = probe(t, tag, A_V, pcid << A_PCID_SHIFT, ctx);
  if (e != 0) entryAt(e).attr = 0;
}

// The record layout the diagram documents, checked at compile time.
assert(offsetof<TlbEntry>("frame") == 8 && offsetof<TlbEntry>("leafPa") == 16 && offsetof<TlbEntry>("leafVal") == 24 &&
  offsetof<TlbEntry>("attr") == 32 && offsetof<TlbEntry>("stamp") == 36 && offsetof<TlbEntry>("ctx") == 40 &&
  offsetof<TlbEntry>() <= ENTRY);
