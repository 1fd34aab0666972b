// Live migration, VMotion-style pre-copy (src/hypervisor/migration), as a scenario.
//
// Each run builds two hosts and one VM (migration-guest.ts: distinct data pages, duplicate
// pages shared by content, backed zero pages, some data swapped out by the host to a swap
// file both hosts reach), lets its writer run briefly to measure the cost of a store
// without tracking, then moves it while the writer keeps storing into its hot set. Runs
// differ in paging mode, dirty tracking (EPT D bits or write protection), bandwidth and
// dirty rate, so one scenario compares the tracking methods and shows convergence.
//
// Per run: pre-copy rounds (pages sent, pages dirtied, bytes), downtime, total time and
// bytes, what each kind of record saved, and the tracking's costs: guest VM exits and
// guest cycles per store during pre-copy against the store's cost before it, and the
// host's cycles (EPT scans and INVEPTs, or write-protection).

import { z } from 'zod';
import { Hypervisor } from '../hypervisor/monitor/hypervisor.js';
import { PageSharing } from '../hypervisor/pagers/sharing.js';
import { HostSwap, SwapFile } from '../hypervisor/pagers/swap.js';
import { migrate, type MigrationResult } from '../hypervisor/migration/migrate.js';
import { recordBytes } from '../hypervisor/migration/wire.js';
import { bootWriterGuest, fillWriterGuest, Writer, DATA_FIRST } from './migration-guest.js';
import { defineExperiment } from './registry.js';
import type { ExperimentContext, ExperimentOutput, Row } from './result.js';
import { MiB, round } from './units.js';

const PAGE = 4096;
const pages = (mib: number) => Math.round((mib * MiB) / PAGE);

const run = z.object({
  mode: z.enum(['nested', 'shadow']).describe('paging of the moved VM'),
  tracking: z.enum(['ept-dirty', 'write-protect']).describe('dirty tracking: EPT D bits (nested only) or write-protected frames'),
  bandwidthMiBps: z.number().positive().max(100_000).optional().describe('link bandwidth for this run (default: the scenario\'s) [MiB per simulated second]'),
  writesPerSecond: z.number().min(0).max(1e8).optional().describe('the writer\'s store rate for this run (default: the scenario\'s) [stores per simulated second]'),
}).strict();

export const migrationParams = z.object({
  vmMiB: z.number().int().min(4).max(512).default(32).describe('guest memory of the moved VM'),
  dataMiB: z.number().min(0).max(512).default(8).describe('pages of distinct contents written before the move'),
  dupMiB: z.number().min(0).max(512).default(2).describe('copies of one page, shared by content before the move'),
  zeroMiB: z.number().min(0).max(512).default(1).describe('backed pages of zeros (sent as flags)'),
  swapMiB: z.number().min(0).max(512).default(1).describe('data pages the source host swaps out before the move (cold pages: outside the hot set)'),
  swapReferences: z.boolean().default(true).describe('the swap file is on storage both hosts reach: swapped pages move as slot references (false: read from swap and sent)'),
  hotMiB: z.number().positive().max(512).default(0.5).describe('the writer\'s hot set, the first data pages'),
  writesPerSecond: z.number().min(0).max(1e8).default(5_000).describe('8-byte stores per simulated second while the VM moves [stores per simulated second]'),
  bandwidthMiBps: z.number().positive().max(100_000).default(100).describe('link bandwidth [MiB per simulated second]'),
  maxRounds: z.number().int().min(1).max(1000).default(30).describe('pre-copy rounds before stop-and-copy is forced'),
  stopPages: z.number().int().min(0).default(64).describe('stop-and-copy once a round leaves at most this many dirty pages [pages]'),
  hz: z.number().min(1e5).max(1e10).default(2e9),
  runs: z.array(run).min(1).max(16).default([
    { mode: 'nested', tracking: 'ept-dirty' }, { mode: 'shadow', tracking: 'write-protect' }, { mode: 'nested', tracking: 'write-protect' },
  ]).describe('the migrations to run and compare'),
}).strict().superRefine((p, ctx) => {
  const used = DATA_FIRST + pages(p.dataMiB) + pages(p.dupMiB) + pages(p.zeroMiB);
  if (used > pages(p.vmMiB)) ctx.addIssue({ code: 'custom', path: ['dataMiB'], message: `data, duplicates and zeros (${used} pages with the guest's 2 MiB of tables) do not fit a ${p.vmMiB} MiB VM` });
  if (pages(p.hotMiB) > pages(p.dataMiB)) ctx.addIssue({ code: 'custom', path: ['hotMiB'], message: `the hot set must lie inside the data (${p.dataMiB} MiB)` });
  if (pages(p.swapMiB) > pages(p.dataMiB) - pages(p.hotMiB)) ctx.addIssue({ code: 'custom', path: ['swapMiB'], message: 'swapped pages are cold data pages: at most dataMiB − hotMiB' });
  p.runs.forEach((r, i) => {
    if (r.tracking === 'ept-dirty' && r.mode !== 'nested') ctx.addIssue({ code: 'custom', path: ['runs', i, 'tracking'], message: 'EPT D bits need nested paging; shadow paging tracks writes by write protection' });
  });
});
export type MigrationParams = z.infer<typeof migrationParams>;

export interface MigrationRun {
  label: string; result: MigrationResult; writes: number;
  /** Guest cycles per store before the move and during pre-copy; guest VM exits during pre-copy. */
  cyclesPerWriteBefore: number; cyclesPerWriteDuring: number; exitsDuring: number;
}

/** One migration of the scenario's VM with run r's settings. */
export async function runMigration(p: MigrationParams, r: MigrationParams['runs'][number], seed: number): Promise<MigrationRun> {
  const hostBytes = Math.max(64, 2 * p.vmMiB + 16) * MiB;
  const [h1, h2] = [await Hypervisor.create({ hostMemoryBytes: hostBytes }), await Hypervisor.create({ hostMemoryBytes: hostBytes })];
  const file = new SwapFile({ capacity: Math.max(16, pages(p.swapMiB)) });
  const swap1 = new HostSwap(h1, { file, seed });
  const swap2 = p.swapReferences ? new HostSwap(h2, { file }) : new HostSwap(h2, { capacity: Math.max(16, pages(p.swapMiB)) });
  try {
    const vm = h1.createVm({ memoryBytes: p.vmMiB * MiB, mode: r.mode });
    bootWriterGuest(vm);
    const layout = { dataPages: pages(p.dataMiB), dupPages: pages(p.dupMiB), hotPages: Math.max(1, pages(p.hotMiB)) };
    fillWriterGuest(vm, layout);
    const zeroFirst = DATA_FIRST + layout.dataPages + layout.dupPages;
    for (let i = 0; i < pages(p.zeroMiB); i++) vm.memory.write(BigInt(zeroFirst + i) << 12n, new Uint8Array(PAGE));
    const sharing1 = new PageSharing(h1, { shareZeroPages: false });
    sharing1.addVm(vm);
    sharing1.shareNow(vm, Array.from({ length: layout.dupPages }, (_, i) => DATA_FIRST + layout.dataPages + i));
    const cold = Array.from({ length: pages(p.swapMiB) }, (_, i) => DATA_FIRST + layout.hotPages + i);
    for (const g of cold) swap1.swapOutGfn(vm, g as never);
    const rate = r.writesPerSecond ?? p.writesPerSecond;
    const writer = new Writer(h1, vm, layout.hotPages, rate, seed);
    const vcpu = vm.vcpus[0];
    const perWrite = (f: () => void) => {
      const c = vcpu.cycles(), w = writer.writes, x = vcpu.stats.vmExits;
      f();
      return { cycles: vcpu.cycles() - c, writes: writer.writes - w, exits: vcpu.stats.vmExits - x };
    };
    writer.warm(); // first touches and fills out of the way
    const before = perWrite(() => writer.run(Math.max(0.05, 4000 / Math.max(rate, 1))));
    let during = { cycles: 0, writes: 0, exits: 0 };
    const result = migrate({
      vm, from: h1, to: h2, tracking: r.tracking, bandwidth: (r.bandwidthMiBps ?? p.bandwidthMiBps) * MiB, hz: p.hz,
      maxRounds: p.maxRounds, stopPages: p.stopPages, swap: { from: swap1, to: swap2 }, sharing: new PageSharing(h2, { shareZeroPages: false }),
      runGuest: (s) => {
        const d = perWrite(() => writer.run(s));
        during = { cycles: during.cycles + d.cycles, writes: during.writes + d.writes, exits: during.exits + d.exits };
      },
    });
    return {
      label: `${r.mode} · ${r.tracking}${r.bandwidthMiBps ? ` · ${r.bandwidthMiBps} MiB/s` : ''}${r.writesPerSecond !== undefined ? ` · ${r.writesPerSecond} w/s` : ''}`,
      result, writes: writer.writes,
      cyclesPerWriteBefore: before.writes ? before.cycles / before.writes : 0,
      cyclesPerWriteDuring: during.writes ? during.cycles / during.writes : 0,
      exitsDuring: during.exits,
    };
  } finally {
    swap2.close();
    file.close();
  }
}

export async function runMigrationExperiment(p: MigrationParams, ctx: ExperimentContext): Promise<ExperimentOutput> {
  const runs: MigrationRun[] = [];
  for (const [i, r] of p.runs.entries()) {
    ctx.progress(i / p.runs.length, `migration ${i + 1} / ${p.runs.length}`);
    runs.push(await runMigration(p, r, ctx.seed));
  }
  ctx.progress(1);
  const rounds: Row[] = runs.flatMap((x) => x.result.rounds.flatMap((r) => [
    { run: x.label, round: r.round, measure: 'sent', pages: r.pagesSent, MiB: round(r.bytes / MiB, 4), stopAndCopy: r.stopAndCopy ? 1 : 0 },
    ...(r.stopAndCopy ? [] : [{ run: x.label, round: r.round, measure: 'dirtied', pages: r.pagesDirtied, MiB: 0, stopAndCopy: 0 }]),
  ]));
  const perRun: Row[] = runs.map(summaryRow);
  const costs: Row[] = runs.flatMap((x) => [
    { run: x.label, metric: 'guest VM exits during pre-copy', value: x.exitsDuring },
    { run: x.label, metric: 'guest cycles per store during pre-copy', value: round(x.cyclesPerWriteDuring, 1) },
    { run: x.label, metric: 'host tracking Mcycles', value: round(x.result.dirty.hostCycles / 1e6, 3) },
  ]);
  const summary: Record<string, string | number> = {};
  for (const x of runs) {
    summary[`${x.label}: rounds / converged`] = `${x.result.rounds.length - 1} pre-copy + stop-and-copy / ${x.result.converged ? 'yes' : 'no (round limit)'}`;
    summary[`${x.label}: downtime (ms)`] = round(x.result.downtimeSeconds * 1e3, 3);
    summary[`${x.label}: total (s) / sent (MiB)`] = `${round(x.result.totalSeconds, 4)} / ${round(x.result.totalBytes / MiB, 3)}`;
    summary[`${x.label}: store cost before → during (cycles)`] = `${round(x.cyclesPerWriteBefore, 1)} → ${round(x.cyclesPerWriteDuring, 1)}`;
  }
  const line = (y: string, title: string) => ({
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json', data: { name: 'rounds' }, width: 520, height: 240,
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'round', type: 'ordinal', title: 'round (the last: stop-and-copy)' },
      y: { field: y, type: 'quantitative', title, scale: { type: 'symlog' } },
      color: { field: 'run', type: 'nominal', legend: { labelLimit: 400 } },
      strokeDash: { field: 'measure', type: 'nominal', title: null },
    },
  });
  return {
    title: 'Live migration: pre-copy rounds, downtime, and the cost of dirty tracking',
    summary,
    series: { rounds, runs: perRun, costs },
    plots: [
      { id: 'pages-per-round', title: 'Pages sent and dirtied per round', vegaLite: line('pages', 'pages'),
        paper: 'VMotion (the lecture): pre-copy sends all memory while the VM runs, then iteratively the pages dirtied meanwhile, ' +
          'until the dirty set is small enough; the VM then stops for the last copy. Rounds shrink when the link outruns the dirty rate.',
        caption: `The writer stores ${p.writesPerSecond} times per simulated second into a ${p.hotMiB} MiB hot set unless a run says otherwise; ` +
          `stop-and-copy at ≤ ${p.stopPages} dirty pages or after ${p.maxRounds} rounds.` },
      { id: 'bytes-per-round', title: 'Bytes on the wire per round',
        vegaLite: { ...line('MiB', 'MiB'), transform: [{ filter: "datum.measure === 'sent'" }] },
        caption: `Round 0 carries the whole VM less its metadata savings: zero pages as ${recordBytes('zero')}-byte flags, a shared page's ` +
          `contents once then ${recordBytes('shared-ref')}-byte hash references, swapped pages as ${recordBytes('swap-ref')}-byte slot references.` },
      { id: 'downtime', title: 'Downtime (stop-and-copy) per run',
        vegaLite: {
          $schema: 'https://vega.github.io/schema/vega-lite/v6.json', data: { name: 'runs' }, width: 420, height: 200, mark: 'bar',
          encoding: { y: { field: 'run', type: 'nominal', title: null }, x: { field: 'downtimeMs', type: 'quantitative', title: 'simulated ms' } },
        } },
      { id: 'tracking-cost', title: 'Dirty tracking compared: EPT D bits vs write protection',
        vegaLite: {
          $schema: 'https://vega.github.io/schema/vega-lite/v6.json', data: { name: 'costs' }, mark: 'bar',
          facet: { column: { field: 'metric', type: 'nominal', title: null } },
          spec: { width: 180, height: 200, mark: 'bar', encoding: {
            x: { field: 'run', type: 'nominal', title: null, axis: { labelAngle: -40 } },
            y: { field: 'value', type: 'quantitative', title: null }, color: { field: 'run', type: 'nominal', legend: null } } },
          resolve: { scale: { y: 'independent' } },
        },
        caption: 'EPT D bits cost the guest no exit (the host scans the EPT and issues one INVEPT per round; the TLB refills show in the ' +
          'store cost); write protection costs one exit per first write to a page per round, under shadow paging the only choice.' },
    ],
    notes: [
      'Downtime = (last dirty set + vCPU and device state) / bandwidth; rounds last bytes / bandwidth (plus disk reads of swapped pages when the swap file is not shared), and the guest runs meanwhile.',
      'With EPT A/D on, the guest\'s page-table reads count as writes (SDM 28.3.5): its page-table pages are dirty every round under EPT D-bit tracking, and they trap under write protection in nested mode.',
    ],
  };
}

function summaryRow(x: MigrationRun): Row {
  const r = x.result, k = (kind: keyof MigrationResult['rounds'][number]['byKind']) => r.rounds.reduce((n, s) => n + s.byKind[kind], 0);
  return {
    run: x.label, rounds: r.rounds.length, converged: r.converged ? 1 : 0, downtimeMs: round(r.downtimeSeconds * 1e3, 4),
    totalSeconds: round(r.totalSeconds, 5), totalMiB: round(r.totalBytes / MiB, 4), stateBytes: r.stateBytes,
    pagesSent: r.rounds.reduce((n, s) => n + s.pagesSent, 0), pageRecords: k('page'), zeroFlags: k('zero'),
    sharedFirst: k('shared'), sharedRefs: k('shared-ref'), swapRefs: k('swap-ref'), swapReads: k('swap-read'),
    writes: x.writes, exitsDuring: x.exitsDuring, wpFaults: r.dirty.wpFaults, invepts: r.dirty.invepts,
    leavesScanned: r.dirty.leavesScanned, pagesProtected: r.dirty.pagesProtected, hostTrackingCycles: r.dirty.hostCycles,
    cyclesPerWriteBefore: round(x.cyclesPerWriteBefore, 2), cyclesPerWriteDuring: round(x.cyclesPerWriteDuring, 2),
  };
}

export const migrationExperiment = defineExperiment({
  kind: 'migration',
  title: 'Live migration (pre-copy)',
  description: 'A running VM moved between two hosts: rounds, downtime and bytes, and EPT D-bit vs write-protect dirty tracking.',
  schema: migrationParams,
  run: (params, ctx) => runMigrationExperiment(params, ctx),
});
