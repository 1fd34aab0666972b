// fill (tlb.ts) for the quick 2D walk's nested TLB without a data-dependent branch per
// way: a walk over random addresses misses it and replaces a random way, and the LRU
// scan's compares then mispredict; here every way is read and the victim chosen with
// selects. Same victim as tlb.ts: the first invalid way, else the same translation,
// else the least recently used way (the first of equal stamps). Ordered caches (tlb.ts
// dir) go to tlb.ts.

import { Tlb, ENTRY, entryAt, fill, microDrop, A_V, A_SIZE, A_SIZE_SHIFT, A_PCID } from "./tlb";

@inline export function fillFlat(t: Tlb, tag: u64, attr: u32, frame: u64, leafPa: u64, leafVal: u64,
                                 ctx: u32, stamp: u32): usize {
  if (t.dir != 0 || t.ways == 0) return fill(t, tag, attr, frame, leafPa, leafVal, ctx, stamp);
  let ways = t.ways;
  let e = t.entries + <usize>((<u32>tag & t.setMask) * ways) * ENTRY;
  let stop: usize = 0, oldest = e, oldestStamp: u32 = 0xFFFF_FFFF;
  for (let w: u32 = 0; w < ways; w++, e += ENTRY) {
    let a = entryAt(e).attr;
    // tlb.ts sameTranslation: tag, size, ctx and PCID
    let same = (entryAt(e).tag == tag) & ((a & A_SIZE) == (attr & A_SIZE)) & (entryAt(e).ctx == ctx) &
      ((a & A_PCID) == (attr & A_PCID));
    stop = select<usize>(e, stop, (((a & A_V) == 0) | same) & (stop == 0));
    let s = entryAt(e).stamp;
    let older = s < oldestStamp;
    oldest = select<usize>(e, oldest, older);
    oldestStamp = select<u32>(s, oldestStamp, older);
  }
  let victim = stop != 0 ? stop : oldest;
  t.sizes |= 1 << ((attr & A_SIZE) >> A_SIZE_SHIFT);
  t.hint = 0;
  let v = entryAt(victim);
  if ((v.attr & A_V) != 0) microDrop(t.micro, v.tag);
  v.tag = tag;
  v.frame = frame;
  v.leafPa = leafPa;
  v.leafVal = leafVal;
  v.attr = attr;
  v.stamp = stamp;
  v.ctx = ctx;
  return victim;
}
