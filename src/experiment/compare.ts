// `memvisor compare`: the same guest workload natively, under shadow paging and under
// EPT. A TLB-miss-heavy workload shows the 2D walk's cost; a page-table-heavy one
// (mapping changes, address-space switches) shows shadow paging's.

import { PageTableBuilder, FrameBump } from '../core/pagetable.js';
import { PTE } from '../core/bits.js';
import { offsets, fillBatch, type Pattern } from '../workload/patterns.js';
import { GuestMachine, MODES, type Mode } from './modes.js';
import { Rng } from '../util/rng.js';
import { fmtBytes } from './translation.js';

const GUEST_BYTES = 0x800_0000n;            // 128 MiB guest
const TABLES = 0x10_0000n, TABLES_END = 0x100_0000n;
const DATA = 0x100_0000n;                   // data from gpa 16 MiB
const VBASE = 0x7f00_0000_0000n;
const DMAP = 0xffff_8880_0000_0000n;
const BATCH = 1 << 15;

export interface Workload {
  name: string;
  pattern: Pattern | 'pt-heavy';
  workingSet: number;
  guestPage: 4096 | 2097152;
  hostPage: 4096 | 2097152;
}

export const DEFAULT_WORKLOADS: Workload[] = [
  { name: 'sequential 128 KiB', pattern: 'sequential', workingSet: 128 << 10, guestPage: 4096, hostPage: 2097152 },
  { name: 'random 128 KiB', pattern: 'random', workingSet: 128 << 10, guestPage: 4096, hostPage: 2097152 },
  { name: 'random 64 MiB', pattern: 'random', workingSet: 64 << 20, guestPage: 4096, hostPage: 2097152 },
  { name: 'random 64 MiB, 4K host pages', pattern: 'random', workingSet: 64 << 20, guestPage: 4096, hostPage: 4096 },
  { name: 'random 64 MiB, 2M guest pages', pattern: 'random', workingSet: 64 << 20, guestPage: 2097152, hostPage: 2097152 },
  { name: 'pointer-chase 64 MiB', pattern: 'pointer-chase', workingSet: 64 << 20, guestPage: 4096, hostPage: 2097152 },
  { name: 'strided 64 MiB', pattern: 'strided', workingSet: 64 << 20, guestPage: 4096, hostPage: 2097152 },
  { name: 'page-table heavy', pattern: 'pt-heavy', workingSet: 1 << 20, guestPage: 4096, hostPage: 2097152 },
];

export interface CompareRow {
  workload: string; mode: Mode;
  /** Guest page size; the host's (EPT or shadow backing) page size, '-' natively (no second stage). */
  guestPage: PageLabel; hostPage: PageLabel | '-';
  accesses: number;
  l1MissesPer1000: number;
  tlbMissesPer1000: number; refsPerWalk: number; exitsPer1000: number; cyclesPerAccess: number;
  /** Exits per 1000 accesses by reason (only reasons that occurred). */
  exitsByReason: Record<string, number>;
}

export type PageLabel = '4K' | '2M';
const pageLabel = (bytes: number): PageLabel => (bytes === 2097152 ? '2M' : '4K');

/** Builds the guest's address spaces: a direct map and the workload region. */
function buildSpaces(gm: GuestMachine, w: Workload, spaces: number): { roots: bigint[]; ptes: bigint[] } {
  const frames = new FrameBump(gm.gmem, TABLES, TABLES_END);
  const roots: bigint[] = [];
  let ptes: bigint[] = [];
  for (let s = 0; s < spaces; s++) {
    const pt = new PageTableBuilder(gm.gmem, frames, 4);
    pt.mapRange(DMAP, 0n, Number(GUEST_BYTES), 0x200000, { user: false });
    pt.mapRange(VBASE, DATA, Math.ceil(w.workingSet / w.guestPage) * w.guestPage, w.guestPage, { accessed: true, dirty: true });
    if (s === 0 && w.pattern === 'pt-heavy') {
      ptes = Array.from({ length: w.workingSet / 4096 }, (_, i) => pt.entryAddr(VBASE + BigInt(i) * 4096n, 1));
    }
    roots.push(pt.root);
  }
  return { roots, ptes };
}

/** Page-table churn: remap a page through the direct map, INVLPG it, touch a few pages, switch spaces. */
function ptHeavyBatch(b: ReturnType<GuestMachine['m']['createBatch']>, rng: Rng, roots: bigint[], ptes: bigint[], n: number): void {
  b.clear();
  while (b.length < n - 8) {
    const page = rng.below(ptes.length);
    const frame = DATA + BigInt(rng.below(ptes.length)) * 4096n;
    b.store(DMAP + ptes[page], frame | PTE.P | PTE.W | PTE.A | PTE.D);
    b.invlpg(VBASE + BigInt(page) * 4096n);
    for (let k = 0; k < 4; k++) b.load(VBASE + BigInt(rng.below(ptes.length)) * 4096n + BigInt(rng.below(512) * 8), 8);
    if (rng.below(8) === 0) b.movCr3(roots[rng.below(roots.length)]);
  }
}

export async function compareOne(w: Workload, mode: Mode, accesses: number, seed: number): Promise<CompareRow> {
  const gm = await GuestMachine.create(mode, { guestBytes: GUEST_BYTES, hostPage: w.hostPage });
  const { roots, ptes } = buildSpaces(gm, w, w.pattern === 'pt-heavy' ? 4 : 1);
  gm.start(roots[0]);
  const b = gm.m.createBatch(BATCH);
  const onFault = (x: { index: number; cr2: bigint }): number => {
    throw new Error(`${w.name}/${mode}: unexpected guest #PF at ${x.cr2.toString(16)}`);
  };
  const rng = new Rng(seed);
  let done = 0;
  if (w.pattern === 'pt-heavy') {
    while (done < accesses) { ptHeavyBatch(b, rng, roots, ptes, Math.min(BATCH, accesses - done + 8)); gm.run(b, onFault); done += b.length; }
  } else {
    const spec = { pattern: w.pattern, base: Number(VBASE), bytes: w.workingSet, seed };
    const gen = offsets(spec);
    // Warm-up: one batch to fill TLBs and shadow tables, then measure from zero.
    fillBatch(b, spec, BATCH, gen);
    gm.run(b, onFault);
    gm.resetStats();
    while (done < accesses) { fillBatch(b, spec, Math.min(BATCH, accesses - done), gen); gm.run(b, onFault); done += b.length; }
  }
  const c = gm.cpu.counters();
  const n = Math.max(1, c.accesses);
  const exitsByReason: Record<string, number> = {};
  for (const [reason, k] of Object.entries(gm.exits)) if (k > 0) exitsByReason[reason] = (1000 * k) / n;
  return {
    workload: w.name, mode, guestPage: pageLabel(w.guestPage), hostPage: mode === 'native' ? '-' : pageLabel(w.hostPage),
    accesses: c.accesses,
    l1MissesPer1000: (1000 * c.l1Miss) / n,
    tlbMissesPer1000: (1000 * c.walks) / n,
    refsPerWalk: c.walks ? c.walkRefs / c.walks : 0,
    exitsPer1000: (1000 * gm.hypervisorExits()) / n,
    cyclesPerAccess: gm.cycles() / n,
    exitsByReason,
  };
}

export async function compare(workloads = DEFAULT_WORKLOADS, accesses = 200_000, seed = 1,
  progress?: (i: number, total: number, label: string) => void): Promise<CompareRow[]> {
  const rows: CompareRow[] = [];
  const total = workloads.length * MODES.length;
  for (const w of workloads) {
    for (const mode of MODES) {
      progress?.(rows.length, total, `${w.name} / ${mode}`);
      rows.push(await compareOne(w, mode, accesses, seed));
    }
  }
  return rows;
}

export { fmtBytes };
