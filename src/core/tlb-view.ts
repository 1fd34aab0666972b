// A read-only view of a vCPU's TLBs and paging-structure caches, as the core holds them:
// for the browser's TLB grid and for explaining a walk (which references a cache served).
// Nothing here changes the caches; it reads the core's records (layouts in assembly/tlb.ts).
//
// Cache descriptor (Tlb, from the core's cpuTlbDesc):      Entry (48 bytes):
//   +0 entries ptr u32  +4 sets u32  +8 ways u32             +0 tag u64   +8 frame u64
//                                                            +16 leafPa   +24 leafVal
//                                                            +32 attr u32 +36 stamp u32  +40 ctx u32
// attr:
//    31..28  27 ........ 16  15..12  11..8   7..6   5   4   3    2   1   0
//   ┌───────┬──────────────┬───────┬──────┬──────┬───┬───┬────┬───┬───┬───┐
//   │   0   │     PCID     │ flags │ PKEY │ size │ G │ D │ NX │ U │ W │ V │
//   └───────┴──────────────┴───────┴──────┴──────┴───┴───┴────┴───┴───┴───┘
//   (nested TLB and EPT PSCs: bits 1..3 are the EPT R, W, X rights)

import type { Core } from './wasm.js';
import { CACHE_ORDER } from './cpu.js';

export type CacheName = (typeof CACHE_ORDER)[number];
const ENTRY_BYTES = 48;

/** One way of one set. */
export interface CacheEntry {
  set: number; way: number; valid: boolean;
  /** va >> page shift (TLBs), va >> level shift (PSCs), gpa >> shift (nested TLB, EPT PSCs). */
  tag: bigint; frame: bigint;
  pcid: number; global: boolean; pageSize: '4K' | '2M' | '1G';
  /** TLBs: W, U, NX (AND/OR over the walk); EPT caches: R, W, X. */
  rights: { w: boolean; u: boolean; nx: boolean } | { r: boolean; w: boolean; x: boolean };
  dirty: boolean; pkey: number; ctx: number; stamp: number;
}

export interface CacheView { name: CacheName; sets: number; ways: number; entries: CacheEntry[] }

const EPT_CACHES: readonly CacheName[] = ['ntlb', 'epde', 'epdpte', 'epml4e', 'epml5e'];

/** Decodes one entry record at `p` (a byte offset into the core's memory). */
function readEntry(core: Core, p: number, name: CacheName, set: number, way: number): CacheEntry {
  const dv = new DataView(core.memory.buffer);
  const attr = dv.getUint32(p + 32, true);
  const ept = EPT_CACHES.includes(name);
  return {
    set, way, valid: (attr & 1) !== 0,
    tag: dv.getBigUint64(p, true), frame: dv.getBigUint64(p + 8, true),
    pcid: (attr >>> 16) & 0xfff, global: (attr & 32) !== 0,
    pageSize: (['4K', '2M', '1G', '?'] as const)[(attr >>> 6) & 3] as '4K' | '2M' | '1G',
    rights: ept ? { r: (attr & 2) !== 0, w: (attr & 4) !== 0, x: (attr & 8) !== 0 }
      : { w: (attr & 2) !== 0, u: (attr & 4) !== 0, nx: (attr & 8) !== 0 },
    dirty: (attr & 16) !== 0, pkey: (attr >>> 8) & 0xf,
    stamp: dv.getUint32(p + 36, true), ctx: dv.getUint32(p + 40, true),
  };
}

/** Every set and way of one cache of the vCPU at `cpuPtr` (a Cpu's ptr). */
export function readCache(core: Core, cpuPtr: number, name: CacheName): CacheView {
  const i = CACHE_ORDER.indexOf(name);
  if (i < 0) throw new RangeError(`unknown cache ${String(name)}`);
  const d = core.cpuTlbDesc(cpuPtr, i);
  const dv = new DataView(core.memory.buffer);
  const base = dv.getUint32(d, true), sets = dv.getUint32(d + 4, true), ways = dv.getUint32(d + 8, true);
  const entries: CacheEntry[] = [];
  for (let s = 0; s < sets; s++) {
    for (let w = 0; w < ways; w++) entries.push(readEntry(core, base + (s * ways + w) * ENTRY_BYTES, name, s, w));
  }
  return { name, sets, ways, entries };
}

/** Every cache of the vCPU, in the core's order. */
export function readCaches(core: Core, cpuPtr: number): CacheView[] {
  return CACHE_ORDER.map((n) => readCache(core, cpuPtr, n));
}
