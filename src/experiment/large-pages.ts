// Large pages kept large (issue 17 item 3): one nested VM backed by 2 MiB EPT pages and
// mapping its data with 2 MiB guest pages runs random loads; page sharing then merges the
// zero pages scattered through its memory, which splits each 2 MiB EPT leaf holding one
// (ept.ts), and the nested TLB falls back to 4 KiB entries (a combined translation is as
// small as the smaller of its two pages). The defragmenter (pagers/defrag.ts) then puts
// 2 MiB leaves back, at each allowed number of shared parts per chunk: the more sharing it
// may break, the more chunks come back large, and the more host frames it costs.
//
// Per phase: TLB misses (walks) and 2D-walk references per 1000 loads, modeled cycles per
// load, the STLB's reach at the end of the phase (Σ page sizes of its valid entries, read
// from the core's cache records), chunks mapped large, and host frames used / saved by sharing.

import { z } from 'zod';
import { GuestMachine } from './modes.js';
import { PageTableBuilder, FrameBump } from '../core/pagetable.js';
import { PAGE_2M } from '../core/bits.js';
import type { Gfn } from '../core/addr.js';
import { readCache } from '../core/tlb-view.js';
import { fillBatch, offsets } from '../workload/patterns.js';
import { PageSharing } from '../hypervisor/pagers/sharing.js';
import { Defragmenter, CHUNK } from '../hypervisor/pagers/defrag.js';
import { Rng } from '../util/rng.js';
import { defineExperiment } from './registry.js';
import type { ExperimentContext, ExperimentOutput, Row } from './result.js';
import { round } from './units.js';

const MiB = 2 ** 20;
const TABLES = 0x10_0000n, TABLES_END = 0x20_0000n;  // guest page tables: gpa [1, 2) MiB
const DATA = 0x20_0000n;                              // data from gpa 2 MiB (chunk-aligned)
const VBASE = 0x7f00_0000_0000n;
const BATCH = 1 << 15;

export const largePagesParams = z.object({
  vmMiB: z.number().int().min(8).max(1024).default(64),
  /** MiB of data the loads run over (2 MiB guest pages from gpa 2 MiB). */
  workingSetMiB: z.number().int().min(2).max(1020).default(48),
  /** Each 2 MiB data chunk gets 0..this many zero pages (seeded, uniform): what sharing finds. */
  maxZeroPagesPerChunk: z.number().int().min(0).max(512).default(16),
  /** Defragmenter passes, one per value: the shared 4 KiB parts a chunk may have and still be made large. */
  maxSharedParts: z.array(z.number().int().min(0).max(512)).min(1).max(8).default([0, 4, 16]),
  /** Loads measured per phase (after one batch of warm-up). */
  accesses: z.number().int().min(1000).max(10_000_000).default(200_000),
}).strict().superRefine((p, ctx) => {
  if (p.workingSetMiB % 2 !== 0) ctx.addIssue({ code: 'custom', path: ['workingSetMiB'], message: `must be a multiple of 2 MiB (whole 2 MiB guest pages), got ${p.workingSetMiB}` });
  if (p.workingSetMiB + 2 > p.vmMiB) ctx.addIssue({ code: 'custom', path: ['workingSetMiB'], message: `${p.workingSetMiB} MiB of data from gpa 2 MiB does not fit a ${p.vmMiB} MiB VM (at most ${p.vmMiB - 2} MiB)` });
  if (p.vmMiB % 2 !== 0) ctx.addIssue({ code: 'custom', path: ['vmMiB'], message: `must be a multiple of 2 MiB, got ${p.vmMiB}` });
});
export type LargePagesParams = z.infer<typeof largePagesParams>;

export async function runLargePages(p: LargePagesParams, ctx: ExperimentContext): Promise<ExperimentOutput> {
  const gm = await GuestMachine.create('nested', { guestBytes: BigInt(p.vmMiB * MiB), hostPage: 2097152 });
  const pt = new PageTableBuilder(gm.gmem, new FrameBump(gm.gmem, TABLES, TABLES_END), 4);
  const ws = p.workingSetMiB * MiB;
  pt.mapRange(VBASE, DATA, ws, PAGE_2M, { accessed: true, dirty: true });
  gm.start(pt.root, { cpl: 3 });
  const zeros = fillData(gm, p, ctx.seed);
  const batch = gm.m.createBatch(BATCH);
  const spec = { pattern: 'random' as const, base: Number(VBASE), bytes: ws, seed: ctx.seed };
  const gen = offsets(spec);
  // One second at two passes' worth of pages: every zero page is found (they share at first sight).
  const pass = 2 * gm.vm.frameCount;
  const sharing = new PageSharing(gm.hv, { scanRatePerVm: pass, scanRateTotal: pass, seed: ctx.seed });
  const steps = 2 + p.maxSharedParts.length;
  const rows: Row[] = [];

  const measure = (phase: string, extra: Partial<Row> = {}): void => {
    ctx.progress(rows.length / steps, phase);
    fillBatch(batch, spec, BATCH, gen);           // warm-up
    gm.run(batch, unexpectedFault);
    gm.resetStats();
    for (let done = 0; done < p.accesses;) {
      const n = Math.min(BATCH, p.accesses - done);
      fillBatch(batch, spec, n, gen);
      gm.run(batch, unexpectedFault);
      done += n;
    }
    const c = gm.cpu.counters();
    const n = Math.max(1, c.accesses);
    rows.push({
      phase, tlbMissesPer1000: round((1000 * c.walks) / n, 2), refsPerWalk: round(c.walks ? c.walkRefs / c.walks : 0, 2),
      walkRefsPer1000: round((1000 * c.walkRefs) / n, 1), cyclesPerLoad: round(gm.cycles() / n, 2),
      stlbReachMiB: round(stlbReach(gm) / MiB, 2), largeChunks: largeChunks(gm, p), dataChunks: p.workingSetMiB / 2,
      framesUsed: gm.hv.frames.usedBy(gm.vm.id) + sharing.stats.pagesShared, sharedGfns: sharing.sharedGfns(gm.vm),
      framesSavedBySharing: sharing.stats.saved, restored: 0, unshared: 0, copied: 0, defragCycles: 0, ...extra,
    });
  };

  measure('2 MiB leaves, before sharing');
  sharing.addVm(gm.vm);
  sharing.scan(1);
  measure('split by page sharing');
  for (const k of [...p.maxSharedParts].sort((a, b) => a - b)) {
    const d = new Defragmenter(gm.hv.frames, { maxSharedParts: k }).pass(gm.vm);
    measure(`defragmented, ≤ ${k} shared parts`, { restored: d.restored, unshared: d.unshared, copied: d.copied, defragCycles: d.cycles });
  }
  ctx.progress(1);
  const [before, split, last] = [rows[0], rows[1], rows[rows.length - 1]];
  return {
    title: 'Large pages kept large: page sharing splits 2 MiB EPT leaves, the defragmenter restores them',
    summary: {
      VM: `${p.vmMiB} MiB nested, 2 MiB guest and host pages; random loads over ${p.workingSetMiB} MiB`,
      'zero pages in the data': zeros,
      'TLB misses / 1000 loads: large → split → last defrag': `${before.tlbMissesPer1000} → ${split.tlbMissesPer1000} → ${last.tlbMissesPer1000}`,
      'STLB reach MiB: large → split → last defrag': `${before.stlbReachMiB} → ${split.stlbReachMiB} → ${last.stlbReachMiB}`,
      'frames saved by sharing: split → last defrag': `${split.framesSavedBySharing} → ${last.framesSavedBySharing}`,
    },
    series: { phases: rows },
    plots: plots(),
    notes: [
      'A nested TLB entry is as large as the smaller of the guest page and the EPT page: one shared 4 KiB part makes its whole 2 MiB range use 4 KiB entries.',
      'The defragmenter restores a chunk in place when the frames of its original 2 MiB host run are still free (sharing freed them), otherwise into a free aligned run; ' +
        'chunks with more shared parts than allowed stay split. Un-sharing a part costs one host frame: the trade-off the last columns show.',
      'STLB reach = Σ page sizes of the valid entries of the second-level TLB at the end of the phase (read from the core).',
      'Copies are modeled at 1000 cycles per 4 KiB page (defragCycles); compaction of other VMs\' frames to make a run is not modelled.',
    ],
  };
}

/** Distinct contents in every data page but a seeded 0..max zero pages per chunk; returns the zero pages. */
function fillData(gm: GuestMachine, p: LargePagesParams, seed: number): number {
  const rng = new Rng(seed);
  const page = new Uint8Array(4096);
  let zeros = 0;
  for (let c = 0; c < p.workingSetMiB / 2; c++) {
    const z = rng.below(p.maxZeroPagesPerChunk + 1);
    zeros += z;
    for (let i = 0; i < CHUNK - z; i++) { // the chunk's last z pages stay zero (frames come zeroed)
      const gfn = Number(DATA >> 12n) + c * CHUNK + i;
      page.fill((gfn * 7) & 0xff);
      new DataView(page.buffer).setUint32(0, gfn, true);
      gm.gmem.write(BigInt(gfn) << 12n, page);
    }
  }
  return zeros;
}

function unexpectedFault(x: { cr2: bigint }): number {
  throw new Error(`large-pages: unexpected guest #PF at ${x.cr2.toString(16)}`);
}

function stlbReach(gm: GuestMachine): number {
  const SIZE = { '4K': 4096, '2M': 2 * MiB, '1G': 1024 * MiB } as const;
  return readCache(gm.m.core, gm.cpu.ptr, 'l2').entries.filter((e) => e.valid).reduce((s, e) => s + SIZE[e.pageSize], 0);
}

function largeChunks(gm: GuestMachine, p: LargePagesParams): number {
  let n = 0;
  for (let c = 0; c < p.workingSetMiB / 2; c++) if (gm.vm.ept!.lookup((Number(DATA >> 12n) + c * CHUNK) as Gfn)?.size === PAGE_2M) n++;
  return n;
}

function plots() {
  const y = (field: string, title: string) => ({ field, type: 'quantitative', title });
  const x = { field: 'phase', type: 'nominal', title: null, sort: null, axis: { labelAngle: -20, labelLimit: 260 } };
  const bar = (id: string, title: string, field: string, yTitle: string, caption: string) => ({
    id, title, caption,
    vegaLite: {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json', data: { name: 'phases' }, width: 420, height: 220,
      mark: 'bar', encoding: { x, y: y(field, yTitle), color: { value: '#4c78a8' } },
    },
  });
  return [
    bar('lp-misses', 'TLB misses per 1000 loads', 'tlbMissesPer1000', 'walks / 1000 loads',
      'Random loads over the data; every miss is a 2D walk (guest and EPT tables).'),
    bar('lp-reach', 'STLB reach at the end of each phase', 'stlbReachMiB', 'MiB',
      'Σ page sizes of the valid second-level TLB entries.'),
    bar('lp-frames', 'Host frames saved by sharing', 'framesSavedBySharing', 'frames',
      'The price of large pages: each shared part un-shared to restore a chunk costs a frame.'),
  ];
}

export const largePagesExperiment = defineExperiment({
  kind: 'large-pages',
  title: 'Large pages kept large (EPT defragmenter)',
  description: 'Page sharing splits 2 MiB EPT leaves; a defragmenter restores them at a chosen cost in sharing; TLB misses and reach per phase.',
  schema: largePagesParams,
  run: (params, ctx) => runLargePages(params, ctx),
});
