// One translation, explained reference by reference: which cache served it, which entries
// the walk read and, in nested mode, the (n+1)(m+1)−1 grid of guest and EPT references with
// each row marked as a nested-TLB hit or an EPT walk (shortened by EPT paging-structure
// caches). The translation itself is the core's (cpu.translate, a real access that fills
// the caches); its result, fault, error code, qualification and counters are the core's.
// The guest entries are the core's walk path. What is read here besides: the caches'
// contents before the access (tlb-view.ts), to say which row a cache served, and the EPT
// entries of each row, read from host memory. The rows' totals are then checked against
// the core's counters for this access (`check`), so an explanation never silently
// disagrees with what the hardware model did.

import type { Machine } from './machine.js';
import type { Cpu, Access, Translation } from './cpu.js';
import { readCache, type CacheName } from './tlb-view.js';
import { CR4 } from './bits.js';

const ADDR = 0x000f_ffff_ffff_f000n;
const shiftOf = (level: number): bigint => BigInt(12 + 9 * (level - 1));

/** One entry the walk read (or that a cache let it skip). */
export interface WalkRef {
  level: number;
  /** Host-physical address of the entry. */
  entryHpa: bigint;
  value: bigint;
  /** 'read': a memory reference; 'cached': skipped thanks to a paging-structure cache. */
  status: 'read' | 'cached';
}

/** A row of the nested grid: one guest-physical address translated through the EPT. */
export interface NestedRow {
  /** What the row translates: the guest entry of `guestLevel`, or the final gpa (guestLevel 0). */
  guestLevel: number;
  /** null when a guest paging-structure cache gave the table's host address directly. */
  gpa: bigint | null;
  /** 'psc': the combined paging-structure cache held the host address: no EPT translation. */
  ntlb: 'hit' | 'miss' | 'psc';
  /** EPT entries, top level first (empty on a nested-TLB hit). */
  ept: WalkRef[];
  /** The guest entry this row leads to (absent for the final row). */
  guest?: WalkRef;
}

export interface WalkExplanation {
  mode: 'native' | 'nested' | 'shadow';
  va: bigint;
  result: Translation;
  /** Which TLB served the access without a walk, or null (a walk happened). */
  tlbHit: 'L1' | 'L2' | null;
  /** The guest paging-structure cache level that let the walk start lower, or null. */
  pscHit: 'pde' | 'pdpte' | 'pml4e' | 'pml5e' | null;
  guestLevels: number;
  eptLevels: number;
  /** Native / shadow: the entries of the (hardware) walk, top first. */
  refs: WalkRef[];
  /** Nested: the grid rows, top guest level first, the final gpa last. */
  rows: NestedRow[];
  /** Counter deltas of this access (the core's). */
  counters: Record<string, number>;
  /** The explanation's totals against the core's counters: empty when they agree. */
  check: string[];
}

const delta = (a: Record<string, number>, b: Record<string, number>): Record<string, number> => {
  const d: Record<string, number> = {};
  for (const k of Object.keys(b)) if (b[k] !== a[k]) d[k] = b[k] - (a[k] ?? 0);
  return d;
};

/** Tags (page-size class : tag) a cache holds; undefined for a cache this vCPU does not have. */
function tagSet(m: Machine, cpu: Cpu, name: CacheName): Set<string> | undefined {
  const v = readCache(m.core, cpu.ptr, name);
  if (v.sets * v.ways === 0) return undefined;
  const s = new Set<string>();
  for (const e of v.entries) if (e.valid) s.add(`${e.pageSize}:${e.tag}`);
  return s;
}

const EPSC_BY_LEVEL: Record<number, CacheName> = { 2: 'epde', 3: 'epdpte', 4: 'epml4e', 5: 'epml5e' };

/** The vCPU's translation controls, as last given to cpu.setVmcs (the Cpu does not read them back). */
export interface WalkControls { mode: 'native' | 'nested' | 'shadow'; eptp?: bigint }

/** Performs `access` at `va` on the vCPU (a real access) and explains it. */
export function explainWalk(m: Machine, cpu: Cpu, controls: WalkControls, va: bigint, access: Access = {}): WalkExplanation {
  const regs = cpu.getRegisters();
  const guestLevels = (regs.cr4 & CR4.LA57) !== 0n ? 5 : 4;
  const mode = { name: controls.mode, eptp: controls.eptp ?? 0n };
  const eptp = mode.eptp;
  const eptLevels = mode.name === 'nested' ? Number((eptp >> 3n) & 7n) + 1 : 0;
  // Cache contents before the access: which rows will be served by them.
  const ntlb = mode.name === 'nested' ? tagSet(m, cpu, 'ntlb') : undefined;
  const epsc = new Map<number, Set<string>>();
  if (mode.name === 'nested') {
    for (const [l, n] of Object.entries(EPSC_BY_LEVEL)) { const t = tagSet(m, cpu, n); if (t) epsc.set(Number(l), t); }
  }
  const before = cpu.counters();

  const result = cpu.translate(va, access);
  const d = delta(before, cpu.counters());
  const path = cpu.walkPath();
  const tlbHit = (d.l1Hit4k ?? 0) + (d.l1Hit2m ?? 0) + (d.l1Hit1g ?? 0) > 0 ? 'L1'
    : (d.l2Hit4k ?? 0) + (d.l2Hit2m ?? 0) + (d.l2Hit1g ?? 0) > 0 ? 'L2' : null;
  const pscHit = d.pscHitPde ? 'pde' : d.pscHitPdpte ? 'pdpte' : d.pscHitPml4e ? 'pml4e' : d.pscHitPml5e ? 'pml5e' : null;
  const startLevel = pscHit === 'pde' ? 1 : pscHit === 'pdpte' ? 2 : pscHit === 'pml4e' ? 3 : pscHit === 'pml5e' ? 4 : guestLevels;
  const guestRefs = mode.name === 'nested' ? d.guestWalkRefs ?? 0 : d.walkRefs ?? 0;
  const read: WalkRef[] = [];
  for (let l = startLevel; l > startLevel - guestRefs && l >= 1; l--) {
    read.push({ level: l, entryHpa: path.entryHpas[l - 1], value: path.values[l - 1], status: 'read' });
  }
  const skipped: WalkRef[] = [];
  for (let l = guestLevels; l > startLevel; l--) skipped.push({ level: l, entryHpa: 0n, value: 0n, status: 'cached' });
  const out: WalkExplanation = {
    mode: mode.name, va, result, tlbHit, pscHit, guestLevels, eptLevels,
    refs: mode.name === 'nested' ? [] : [...skipped, ...read], rows: [], counters: d, check: [],
  };
  if (mode.name === 'nested' && tlbHit === null) {
    out.rows = nestedRows(m, eptp, eptLevels, va, regs.cr3, startLevel, pscHit !== null, read, result, ntlb, epsc);
    checkNested(out);
  } else if (tlbHit === null && (d.walks ?? 0) > 0 && (d.walkRefs ?? 0) !== read.length) {
    out.check.push(`walk references: explained ${read.length}, core counted ${d.walkRefs ?? 0}`);
  }
  return out;
}

/** Builds the grid rows: guest entry rows from the core's path, EPT entries from memory. */
function nestedRows(m: Machine, eptp: bigint, eptLevels: number, va: bigint, cr3: bigint, startLevel: number,
  pscHit: boolean, read: WalkRef[], result: Translation,
  ntlb: Set<string> | undefined, epsc: Map<number, Set<string>>): NestedRow[] {
  const rows: NestedRow[] = [];
  // After a combined PSC hit the first table's host address is known (the cache holds it).
  let table: bigint | null = pscHit ? null : cr3 & ADDR;
  const faultedRow = !result.ok && result.fault === 'EPT_VIOLATION';
  let remaining = read.length;
  for (let l = startLevel; l >= 1 && remaining > 0; l--, remaining--) {
    const g = read.find((r) => r.level === l)!;
    if (table === null) rows.push({ guestLevel: l, gpa: null, ntlb: 'psc', ept: [], guest: g });
    else {
      const gpa = table + ((va >> shiftOf(l)) & 511n) * 8n;
      rows.push({ guestLevel: l, gpa, ...eptRow(m, eptp, eptLevels, gpa, ntlb, epsc), guest: g });
    }
    const leaf = l === 1 || ((g.value & 0x80n) !== 0n && l <= 3);
    if (leaf || (g.value & 1n) === 0n) break;
    table = g.value & ADDR;
  }
  // The final gpa: the leaf's frame + the offset, when the guest walk completed.
  const leaf = read.at(-1);
  const complete = leaf !== undefined && (leaf.value & 1n) !== 0n &&
    (leaf.level === 1 || (leaf.value & 0x80n) !== 0n) && (result.ok || result.fault === 'EPT_VIOLATION' || result.fault === 'EPT_MISCONFIG');
  if (complete && !(faultedRow && rows.length > 0 && rowFaulted(rows.at(-1)!))) {
    const sz = shiftOf(leaf.level);
    const gpa = (leaf.value & ADDR & ~((1n << sz) - 1n)) | (va & ((1n << sz) - 1n));
    rows.push({ guestLevel: 0, gpa, ...eptRow(m, eptp, eptLevels, gpa, ntlb, epsc) });
  }
  return rows;
}

const rowFaulted = (r: NestedRow): boolean => r.ept.length > 0 && (r.ept.at(-1)!.value & 7n) === 0n;

/** One gpa through the EPT: a nested-TLB hit, or the entries read (upper ones skipped by EPT PSCs). */
function eptRow(m: Machine, eptp: bigint, levels: number, gpa: bigint, ntlb: Set<string> | undefined, epsc: Map<number, Set<string>>):
  { ntlb: 'hit' | 'miss'; ept: WalkRef[] } {
  for (const [sz, l] of [['4K', 1], ['2M', 2], ['1G', 3]] as const) {
    if (ntlb?.has(`${sz}:${gpa >> shiftOf(l)}`)) return { ntlb: 'hit', ept: [] };
  }
  const refs: WalkRef[] = [];
  let table = eptp & ADDR;
  let start = levels;
  for (let l = 2; l <= levels; l++) if (epsc.get(l)?.has(`4K:${gpa >> shiftOf(l)}`)) { start = l - 1; break; }
  for (let l = levels; l >= 1; l--) {
    const at = table + ((gpa >> shiftOf(l)) & 511n) * 8n;
    const v = m.memory.read64(at);
    refs.push({ level: l, entryHpa: at, value: v, status: l > start ? 'cached' : 'read' });
    if ((v & 7n) === 0n) break;
    const leaf = l === 1 || ((v & 0x80n) !== 0n && l <= 3);
    if (leaf) {
      ntlb?.add(`${['4K', '2M', '1G'][l - 1]}:${gpa >> shiftOf(l)}`);
      break;
    }
    if (l >= 2) epsc.get(l)?.add(`4K:${gpa >> shiftOf(l)}`);
    table = v & ADDR;
  }
  return { ntlb: 'miss', ept: refs };
}

/** Compares the grid's totals with the core's counters for the access. */
function checkNested(x: WalkExplanation): void {
  const d = x.counters;
  const guest = x.rows.filter((r) => r.guest).length;
  const eptRefs = x.rows.reduce((s, r) => s + r.ept.filter((e) => e.status === 'read').length, 0);
  const hits = x.rows.filter((r) => r.ntlb === 'hit').length;
  const want: [string, number, number][] = [
    ['guest references', guest, d.guestWalkRefs ?? 0],
    ['EPT references', eptRefs, d.eptRefs ?? 0],
    ['nested-TLB hits', hits, d.ntlbHits ?? 0],
    ['total references', guest + eptRefs, d.walkRefs ?? 0],
  ];
  for (const [what, mine, core] of want) if (mine !== core) x.check.push(`${what}: explained ${mine}, core counted ${core}`);
}
