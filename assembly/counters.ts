// Per-vCPU event counters: an array of u64 in linear memory that the host reads
// directly. COUNTER_NAMES is the single source of the order; the host decodes it.
// The cost model (cycles) is computed by the host from these event counts, so the hot
// path pays nothing for it.

export const C_ACCESSES: i32 = 0;
export const C_LOADS: i32 = 1;
export const C_STORES: i32 = 2;
export const C_FETCHES: i32 = 3;
export const C_L1_HIT_4K: i32 = 4;
export const C_L1_HIT_2M: i32 = 5;
export const C_L1_HIT_1G: i32 = 6;
export const C_L1_MISS: i32 = 7;
export const C_L2_HIT_4K: i32 = 8;
export const C_L2_HIT_2M: i32 = 9;
export const C_L2_HIT_1G: i32 = 10;
export const C_L2_MISS: i32 = 11;
export const C_WALKS: i32 = 12;
export const C_WALK_REFS: i32 = 13;
export const C_WALK_4K: i32 = 14;
export const C_WALK_2M: i32 = 15;
export const C_WALK_1G: i32 = 16;
export const C_PSC_HIT_PDE: i32 = 17;
export const C_PSC_HIT_PDPTE: i32 = 18;
export const C_PSC_HIT_PML4E: i32 = 19;
export const C_PSC_HIT_PML5E: i32 = 20;
export const C_PSC_MISS: i32 = 21;
export const C_PF_NOT_PRESENT: i32 = 22;
export const C_PF_PROTECTION: i32 = 23;
export const C_PF_RSVD: i32 = 24;
export const C_PF_PK: i32 = 25;
export const C_GP: i32 = 26;
export const C_DIRTY_REWALKS: i32 = 27;
export const C_AD_WRITES: i32 = 28;
export const C_STALE_USES: i32 = 29;
export const C_INVLPG: i32 = 30;
export const C_FLUSHES: i32 = 31;
export const C_MMIO: i32 = 32;
export const C_SPLIT: i32 = 33;
export const C_NTLB_HIT: i32 = 34;
export const C_NTLB_MISS: i32 = 35;
export const C_EPT_WALKS: i32 = 36;
export const C_EPT_REFS: i32 = 37;
export const C_EPT_PSC_HIT: i32 = 38;
export const C_EPT_VIOLATIONS: i32 = 39;
export const C_EPT_MISCONFIGS: i32 = 40;
export const C_GUEST_REFS: i32 = 41;
export const C_INSTRUCTIONS: i32 = 42; // instructions retired by the interpreter
export const NUM_COUNTERS: i32 = 43;

export const COUNTER_NAMES =
  "accesses,loads,stores,fetches," +
  "l1Hit4k,l1Hit2m,l1Hit1g,l1Miss,l2Hit4k,l2Hit2m,l2Hit1g,l2Miss," +
  "walks,walkRefs,walks4k,walks2m,walks1g," +
  "pscHitPde,pscHitPdpte,pscHitPml4e,pscHitPml5e,pscMiss," +
  "pfNotPresent,pfProtection,pfReserved,pfProtectionKey,gp," +
  "dirtyRewalks,adWrites,staleUses,invlpg,flushes,mmio,splitAccesses," +
  "ntlbHits,ntlbMisses,eptWalks,eptRefs,eptPscHits,eptViolations,eptMisconfigs,guestWalkRefs," +
  "instructions";

@inline export function bump(counters: usize, idx: i32, by: u64 = 1): void {
  let p = counters + (<usize>idx << 3);
  store<u64>(p, load<u64>(p) + by);
}
