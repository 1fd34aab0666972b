// probe (tlb.ts) as the quick 2D walk's nested TLB needs it (four-way by default), with
// the same results, entry for entry:
//   probeNoting  probe that notes, on a miss, the victim of the fill that follows (for
//                tlb.ts fillAt: no second scan of the set)
// This shape measured faster in the 2D walk than tlb.ts probe + missVictim
// inlined there (cached 2D walks 26.0 against 23.3 M/s, CPU time, one session).
// A victim is the first invalid way, else the least recently used way (the first of
// equal stamps). Ordered caches (tlb.ts dir) go to tlb.ts.

import { Tlb, ENTRY, entryAt, entryMatches, probe, A_V } from "./tlb";

// The victim the last probeNoting noted (0: none; see probeNoting).
export let notedVictim: usize = 0;

// probe (tlb.ts) that also notes, on a miss, the way a fill of the same tag and size
// would take (notedVictim): the first invalid way, else the least recently used. A miss
// proves no valid way holds the same translation, so that is the fill's victim (tlb.ts fillAt) as long
// as the cache does not change before the fill.
@inline export function probeNoting(t: Tlb, tag: u64, want: u32, pcidBits: u32, ctx: u32): usize {
  if (t.dir != 0) return probe(t, tag, want, pcidBits, ctx);
  let ways = t.ways;
  let e = t.entries + <usize>((<u32>tag & t.setMask) * ways) * ENTRY;
  if (ways == 4) { // the default geometry, unrolled
    let e1 = e + ENTRY, e2 = e + 2 * ENTRY, e3 = e + 3 * ENTRY;
    if (entryMatches(e, tag, want, pcidBits, ctx)) return e;
    if (entryMatches(e1, tag, want, pcidBits, ctx)) return e1;
    if (entryMatches(e2, tag, want, pcidBits, ctx)) return e2;
    if (entryMatches(e3, tag, want, pcidBits, ctx)) return e3;
    notedVictim = victim4(e, e1, e2, e3);
    return 0;
  }
  let victim: usize = 0, oldest: u32 = 0xFFFF_FFFF, invalid = false;
  for (let w: u32 = 0; w < ways; w++, e += ENTRY) {
    if (entryMatches(e, tag, want, pcidBits, ctx)) return e;
    if (invalid) continue;
    let a = entryAt(e).attr;
    if ((a & A_V) == 0) { victim = e; invalid = true; continue; }
    let s = entryAt(e).stamp;
    if (victim == 0 || s < oldest) { oldest = s; victim = e; }
  }
  notedVictim = victim;
  return 0;
}

// The fill victim among four ways in order: the first invalid one, else the least
// recently used (the first of equal stamps).
@inline function victim4(e0: usize, e1: usize, e2: usize, e3: usize): usize {
  if ((entryAt(e0).attr & A_V) == 0) return e0;
  if ((entryAt(e1).attr & A_V) == 0) return e1;
  if ((entryAt(e2).attr & A_V) == 0) return e2;
  if ((entryAt(e3).attr & A_V) == 0) return e3;
  let s0 = entryAt(e0).stamp, s1 = entryAt(e1).stamp, s2 = entryAt(e2).stamp, s3 = entryAt(e3).stamp;
  let a = select<usize>(e1, e0, s1 < s0), sa = select<u32>(s1, s0, s1 < s0);
  let b = select<usize>(e3, e2, s3 < s2), sb = select<u32>(s3, s2, s3 < s2);
  return select<usize>(b, a, sb < sa);
}
