// Reclamation techniques compared on the same overcommitted host: identical VMs load
// common data at boot (the same bytes in every VM, as a shared library or OS image) and
// then run the throughput workload. The host reclaims with
//   balloon   ballooning (the guest picks what to page out; host swap only as a last resort)
//   swap      hypervisor swapping only (random victims)
//   sharing   content-based page sharing, with host swap only for what sharing cannot free
// and we compare guest throughput and the pages each mechanism moved, against a baseline:
// the same VMs on a host with memory for all of them (nothing to reclaim).

import { z } from 'zod';
import { vmModeField } from '../scenario/schema.js';
import { managedHost } from './host.js';
import { Throughput } from '../../guests/throughput.js';
import { commonWord } from '../../guests/shared.js';
import type { Kernel, Workload } from '../../guests/kernel/kernel.js';
import type { AccessBatch } from '../core/batch.js';
import type { ExperimentOutput, ExperimentContext, Row } from './result.js';
import { describeDisk } from '../core/disk-model.js';

const COMMON_BASE = 0x7100_0000n;
const TECHNIQUES = ['balloon', 'swap', 'sharing'] as const;

export const reclaimCompareParams = z.object({
  mode: vmModeField,
  vms: z.number().int().min(1).max(8).default(2),
  vmMiB: z.number().int().min(4).max(128).default(16),
  /** Host memory for VMs as a fraction of their configured total. */
  hostFraction: z.number().gt(0).max(2).default(0.7),
  /** Fraction of each VM's memory holding common data, and the throughput cache's. */
  commonFraction: z.number().min(0).max(0.9).default(0.4),
  cacheFraction: z.number().min(0.01).max(0.9).default(0.4),
  techniques: z.array(z.enum(TECHNIQUES)).min(1).default([...TECHNIQUES]),
  /** Also run the VMs on a host that holds all their memory (the bar the techniques are measured against). */
  baseline: z.boolean().default(true),
  seconds: z.number().positive().default(30),
  hz: z.number().positive().default(2e6),
}).strict().superRefine((p, ctx) => {
  if (p.commonFraction + p.cacheFraction > 0.95) {
    ctx.addIssue({ code: 'custom', path: ['cacheFraction'], message: 'commonFraction + cacheFraction must leave 5 % of memory for the kernel' });
  }
});
export type ReclaimCompareParams = z.infer<typeof reclaimCompareParams>;

/** Loads `common` pages of data identical in every VM, then runs the throughput workload. */
class BootThenWork implements Workload {
  readonly name = 'common+throughput';
  private loaded = 0;
  constructor(readonly common: number, readonly work: Throughput) {}
  init(k: Kernel): void { k.mmap(k.current, COMMON_BASE, BigInt(Math.max(1, this.common) * 4096)); this.work.init(k); }
  fill(k: Kernel, b: AccessBatch): boolean {
    if (this.loaded < this.common) {
      const q = this.loaded++;
      for (let i = 0; i < 512; i++) b.store(COMMON_BASE + BigInt(q * 4096 + i * 8), commonWord(q, i));
      return true;
    }
    return this.work.fill(k, b);
  }
}

/** The baseline's name in rows and plots. */
export const BASELINE = 'not overcommitted';
type Technique = typeof TECHNIQUES[number] | typeof BASELINE;

/** Host memory for VMs, MiB: the scenario's fraction, or all of the VMs' memory for the baseline. */
function poolMiB(p: ReclaimCompareParams, tech: Technique): number {
  return Math.ceil(p.vms * p.vmMiB * (tech === BASELINE ? 1 : p.hostFraction)) + (tech === BASELINE ? 1 : 0);
}

async function runOne(p: ReclaimCompareParams, seed: number, tech: Technique) {
  const frames = p.vmMiB * 256;
  const pool = poolMiB(p, tech);
  const h = await managedHost({ seed, vmPoolMiB: pool, hz: p.hz, tau: 0, balancePeriod: 1, sampler: false,
    balloon: tech === 'balloon', balloonFirst: tech === 'balloon', sharing: tech === 'sharing' ? { scanRatePerVm: 2000, scanRateTotal: 8000 } : false,
    vms: Array.from({ length: p.vms }, () => ({ memMiB: p.vmMiB, mode: p.mode })) });
  try {
    const works: Throughput[] = [];
    const gs = Array.from({ length: p.vms }, (_, i) => {
      const w = new Throughput({ cachePages: Math.floor(frames * p.cacheFraction), seed: seed + i, unitsPerBatch: 4 });
      works.push(w);
      return h.add({ name: `vm${i + 1}`, memoryBytes: frames * 4096, mode: p.mode, balloon: tech === 'balloon',
        workload: new BootThenWork(Math.floor(frames * p.commonFraction), w) },
      { min: Math.floor(frames / 8), max: frames, shares: p.vmMiB * 10 });
    });
    h.mgr.start();
    h.sched.runFor(p.seconds);
    const units = works.reduce((a, w) => a + w.units, 0);
    const sw = h.swap?.stats();
    return {
      technique: tech, hostMiB: pool, throughput: Math.round(units / p.seconds),
      balloonedFrames: gs.reduce((a, g) => a + g.balloonStats.snapshot().inflated, 0),
      guestSwapOuts: gs.reduce((a, g) => a + g.kernel.swap.stats.swapOuts, 0),
      guestSwapIns: gs.reduce((a, g) => a + g.kernel.swap.stats.swapIns, 0),
      hostSwapOuts: sw?.swapOuts ?? 0, hostSwapIns: sw?.swapIns ?? 0, doublePaging: sw?.doubleSwaps ?? 0,
      sharedSaved: h.sharing?.stats.saved ?? 0, cowBreaks: h.sharing?.stats.cowBreaks ?? 0,
      freeFramesAtEnd: h.mgr.freeFrames,
    } satisfies Row;
  } finally { h.close(); }
}

export async function runReclaimCompare(p: ReclaimCompareParams, ctx: ExperimentContext): Promise<ExperimentOutput> {
  const rows: Row[] = [];
  const runs: Technique[] = [...(p.baseline ? [BASELINE as Technique] : []), ...p.techniques];
  for (const [i, t] of runs.entries()) {
    rows.push(await runOne(p, ctx.seed, t));
    ctx.progress((i + 1) / runs.length, t);
  }
  const round2 = (x: number) => Math.round(x * 100) / 100;
  const moved: Row[] = rows.flatMap((r) => [
    { technique: r.technique, mechanism: 'balloon (frames inflated)', pages: r.balloonedFrames },
    { technique: r.technique, mechanism: 'guest paging (swap-outs)', pages: r.guestSwapOuts },
    { technique: r.technique, mechanism: 'host swap-outs', pages: r.hostSwapOuts },
    { technique: r.technique, mechanism: 'host swap-ins', pages: r.hostSwapIns },
    { technique: r.technique, mechanism: 'shared (frames saved)', pages: r.sharedSaved },
  ]);
  const summary: Record<string, number | string> = { VMs: p.vms, 'VM size (MiB)': p.vmMiB, 'host fraction': p.hostFraction };
  for (const r of rows) summary[r.technique === BASELINE ? `throughput ${BASELINE} (units/s)` : `throughput with ${r.technique} (units/s)`] = r.throughput;
  summary['disk (both swap paths)'] = describeDisk();
  const by = (t: string) => rows.find((r) => r.technique === t);
  const b = by('balloon'), w = by('swap');
  const reads = (r: Row) => (r.guestSwapIns as number) + (r.hostSwapIns as number);
  const notes = b && w ? [
    `Both runs page on the same disk (${describeDisk()}); a read stalls the faulting vCPU, a write is asynchronous on both paths.`,
    `Ballooning: the guests gave ${b.balloonedFrames} frames, choosing the victims themselves (${b.guestSwapOuts} page-outs by their clock, ` +
      `which finds the common data loaded at boot and never touched again), so only ${reads(b)} pages had to be read back ` +
      `(${b.guestSwapIns} guest + ${b.hostSwapIns} host swap-ins); ${b.doublePaging} double pagings, where the guest paged out a page the host had swapped.`,
    `Hypervisor swapping: ${w.hostSwapOuts} random victims, blind to use, so the hot cache pages go out as often as the cold ones and ` +
      `${reads(w)} pages were read back, each stalling a guest for a page transfer: ${b.throughput} vs ${w.throughput} units/s ` +
      `(${round2(Number(b.throughput) / Math.max(1, Number(w.throughput)))}×), the paper's argument for ballooning (§3.1, §3.3).`,
  ] : [];
  const base = by(BASELINE);
  if (base) {
    notes.push(`Baseline: the same VMs on a host with ${base.hostMiB} MiB for them (all their memory and 1 MiB more): ` +
      `${base.throughput} units/s with nothing reclaimed; each technique's bar is what overcommitting to ${poolMiB(p, 'swap')} MiB costs with it.`);
  }
  const order = runs as string[];
  const hosts = `${p.vms} × ${p.vmMiB} MiB VMs; the techniques on ${poolMiB(p, 'swap')} MiB for VMs (${p.hostFraction} of their memory)` +
    (base ? `, the baseline on ${base.hostMiB} MiB` : '');
  return {
    title: 'Reclamation techniques compared',
    summary, series: { runs: rows, moved }, notes,
    plots: [{
      id: 'throughput', title: 'Guest throughput by reclamation technique',
      vegaLite: { data: { name: 'runs' }, mark: 'bar', width: 300, encoding: {
        x: { field: 'technique', type: 'nominal', sort: order, axis: { labelAngle: 0, labelLimit: 0 }, title: null },
        y: { field: 'throughput', type: 'quantitative', title: 'work units / s (all VMs)' },
        color: { condition: { test: `datum.technique === '${BASELINE}'`, value: '#9e9e9e' }, value: '#4c78a8' } } },
      caption: `Work done by all VMs per simulated second in ${p.seconds} s. Grey: the baseline, a host with memory for every VM; ` +
        `blue: the same VMs overcommitted, reclaiming with each technique. ${hosts}.`,
      paper: 'The paper prefers ballooning, "treating it as a common-case optimization", and pages at the hypervisor only ' +
        'when ballooning is impossible or insufficient: random hypervisor page replacement fights the guest\'s own policy ' +
        'and causes double paging. Page sharing reclaims redundant copies with no guest involvement.',
    }, {
      id: 'moved', title: 'Pages moved by each mechanism',
      vegaLite: { data: { name: 'moved' }, mark: 'bar', width: 360, encoding: {
        x: { field: 'technique', type: 'nominal', sort: order, axis: { labelAngle: 0, labelLimit: 0 }, title: null }, xOffset: { field: 'mechanism' },
        y: { field: 'pages', type: 'quantitative' }, color: { field: 'mechanism', type: 'nominal', legend: { labelLimit: 0 } } } },
      caption: `4 KiB pages each mechanism moved over the run, summed over the VMs (the baseline moves none: nothing needs reclaiming). ${hosts}.`,
    }],
  };
}
