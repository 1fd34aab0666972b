// What each core event counter counts, for statistics dumps (`memvisor run --stats`).
// One line and a unit per name in assembly/counters.ts COUNTER_NAMES, plus the modeled
// `cycles` Cpu.counters() adds; test/core/counter-docs.test.ts fails if one is missing.

export interface CounterDoc { unit: string; description: string }

const ev = (description: string): CounterDoc => ({ unit: 'events', description });
const refs = (description: string): CounterDoc => ({ unit: 'memory references', description });

export const CORE_COUNTER_DOCS: Readonly<Record<string, CounterDoc>> = {
  accesses: { unit: 'accesses', description: 'memory accesses executed (loads, stores, fetches, translations)' },
  loads: { unit: 'accesses', description: 'data loads' },
  stores: { unit: 'accesses', description: 'data stores' },
  fetches: { unit: 'accesses', description: 'instruction fetches' },
  l1Hit4k: ev('L1 TLB hits on 4 KiB pages'),
  l1Hit2m: ev('L1 TLB hits on 2 MiB pages'),
  l1Hit1g: ev('L1 TLB hits on 1 GiB pages'),
  l1Miss: ev('L1 TLB misses (looked up in the L2 TLB)'),
  l2Hit4k: ev('L2 TLB hits on 4 KiB pages'),
  l2Hit2m: ev('L2 TLB hits on 2 MiB pages'),
  l2Hit1g: ev('L2 TLB hits on 1 GiB pages'),
  l2Miss: ev('L2 TLB misses (each starts a page walk)'),
  walks: { unit: 'walks', description: 'page walks (guest walks under nested paging)' },
  walkRefs: refs('paging-structure entries read by walks (under nested paging: guest and EPT references)'),
  walks4k: { unit: 'walks', description: 'walks that ended in a 4 KiB page' },
  walks2m: { unit: 'walks', description: 'walks that ended in a 2 MiB page' },
  walks1g: { unit: 'walks', description: 'walks that ended in a 1 GiB page' },
  pscHitPde: ev('paging-structure-cache hits on a PDE (walk starts at the PT)'),
  pscHitPdpte: ev('paging-structure-cache hits on a PDPTE'),
  pscHitPml4e: ev('paging-structure-cache hits on a PML4E'),
  pscHitPml5e: ev('paging-structure-cache hits on a PML5E'),
  pscMiss: ev('walks that found no paging-structure-cache entry (start at the root)'),
  pfNotPresent: { unit: 'faults', description: '#PF: entry not present' },
  pfProtection: { unit: 'faults', description: '#PF: rights violation (write, user, NX, SMEP/SMAP)' },
  pfReserved: { unit: 'faults', description: '#PF: reserved bit set' },
  pfProtectionKey: { unit: 'faults', description: '#PF: protection-key violation' },
  gp: { unit: 'faults', description: '#GP (non-canonical address and the like)' },
  dirtyRewalks: { unit: 'walks', description: 'writes through a cached entry with D clear that walked again to set D' },
  adWrites: { unit: 'writes', description: 'A/D bit updates written to paging-structure entries' },
  staleUses: ev('uses of a cached translation whose entry changed in memory (coherence checker)'),
  invlpg: { unit: 'instructions', description: 'INVLPG executed' },
  flushes: ev('whole-scope TLB invalidations (every entry of a context, or all: MOV CR3, INVPCID, INVVPID, INVEPT, flushTlb)'),
  mmio: { unit: 'accesses', description: 'accesses to physical addresses outside memory (exit as MMIO)' },
  splitAccesses: { unit: 'accesses', description: 'accesses that crossed a page boundary (checked on both pages)' },
  ntlbHits: ev('nested TLB hits (gpa → hpa)'),
  ntlbMisses: ev('nested TLB misses (an EPT walk follows)'),
  eptWalks: { unit: 'walks', description: 'EPT walks' },
  eptRefs: refs('EPT entries read by EPT walks'),
  eptPscHits: ev('EPT paging-structure-cache hits'),
  eptViolations: { unit: 'exits', description: 'EPT violations' },
  eptMisconfigs: { unit: 'exits', description: 'EPT misconfigurations' },
  guestWalkRefs: refs('guest paging-structure entries read during 2D walks'),
  instructions: { unit: 'instructions', description: 'guest instructions the x86-64 interpreter retired (Cpu.run / vcpu.run)' },
  cycles: { unit: 'modeled cycles', description: 'cost model: each event count times its latency (createCpu latencies)' },
};
