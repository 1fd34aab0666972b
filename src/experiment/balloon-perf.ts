// The paper's Figure 2: balloon performance. A dbench-like throughput workload runs in a
// VM *configured* with size s, and in a VM configured with the maximum size and
// *ballooned down* to s; the ballooned VM should come close to the configured one (the
// paper recalls 1.4 %–4.4 % overhead, from guest structures sized by configured memory).
//
// The workload's file set is larger than the largest VM (fileSetFraction × maxMiB) with
// zipf popularity, as dbench's 40 clients' files are larger than the paper's 128–256 MB:
// the guest's page cache takes all the memory it is given, and its hit ratio, hence the
// throughput, rises smoothly with that memory (no "fits / does not fit" cliff).
//
// Why the ballooned VM is slower: the guest sizes some of its bookkeeping at boot from
// its *configured* memory, and a balloon does not shrink it. Two such structures here, as in
// the paper's Linux 2.4: the mem_map (64 bytes of struct page per frame, `memMapBytesPerFrame`)
// and the free target kswapd keeps (pages_high = 3 × frames/128, `freeTargetFraction`).
// The ballooned VM's cache is smaller by those frames times the ballooned share, and the
// balloon driver's polls cost its CPU. With both set to 0 the two VMs hold the same cache.
//
// Each run: a fresh host (large enough that the host never reclaims), one GuestVm on the
// scheduler; the balloon target is set at time 0, the driver inflates from the guest's
// free memory. After `warmupUnits` work units, the time the next `units` take gives the score.

import { z } from 'zod';
import { vmModeField } from '../scenario/schema.js';
import { Hypervisor } from '../hypervisor/monitor/hypervisor.js';
import { Scheduler } from '../hypervisor/policy/scheduler.js';
import { GuestVm } from '../board/guest-vm.js';
import { Throughput } from '../../guests/throughput.js';
import type { ExperimentOutput, ExperimentContext } from './result.js';
import { MiB, round } from './units.js';
import { CAP } from '../devices/balloon-protocol.js';
import { DEFAULT_DISK, describeDisk } from '../core/disk-model.js';

/** The workload's file set in 4 KiB pages. */
const fileSetPages = (p: BalloonPerfParams): number => Math.floor(p.maxMiB * 256 * p.fileSetFraction);


export const balloonPerfParams = z.object({
  mode: vmModeField,
  /** The configured size of the ballooned VM (the largest size), MiB. */
  maxMiB: z.number().int().min(4).max(512).default(16),
  /** Sizes to compare, MiB (each at most maxMiB). */
  sizesMiB: z.array(z.number().int().min(4)).min(1).default([8, 10, 12, 14, 16]),
  /** The workload's file set as a multiple of maxMiB (above 1: it never fits, the cache takes all memory). */
  fileSetFraction: z.number().gt(0).max(4).default(1.25),
  /** Zipf exponent of file popularity (0: uniform). */
  zipfS: z.number().min(0).max(3).default(0.9),
  hz: z.number().positive().default(5e6),
  /**
   * Work units run before measuring (the page cache fills and the balloon inflates), and
   * units measured: the score is measured units / the simulated time they took. Counting
   * units, not seconds, makes both VMs run the very same requests (same seed), so the
   * comparison is not lost in the noise of different request mixes.
   */
  warmupUnits: z.number().int().min(1).default(4000),
  units: z.number().int().min(1).default(4000),
  /** Per-frame kernel metadata sized by configured memory (Linux's 64-byte struct page); 0 = none. */
  memMapBytesPerFrame: z.number().int().min(0).max(4096).default(64),
  /** Free memory the guest's reclaim keeps, a fraction of configured memory (Linux 2.4: 3/128); 0 = a fixed 16 frames. */
  freeTargetFraction: z.number().min(0).lt(0.5).default(3 / 128),
}).strict().superRefine((p, ctx) => {
  p.sizesMiB.forEach((s, i) => {
    if (s > p.maxMiB) ctx.addIssue({ code: 'custom', path: ['sizesMiB', i], message: `size ${s} MiB is above maxMiB (${p.maxMiB})` });
  });
});
export type BalloonPerfParams = z.infer<typeof balloonPerfParams>;

interface Run {
  score: number; balloon: number; guestSwapOuts: number; hostFrames: number;
  /** Frames of bookkeeping sized by configured memory: the mem_map and the free target. */
  kernelFrames: number;
  driverCycles: number; cycles: number; missesPerUnit: number;
  /** The guest's user frames (its page cache) at the end. */
  cacheFrames: number;
}

/** Simulated seconds between checks of the unit count (the score's time resolution). */
const STEP = 0.01;

/** The 2002 driver balloons 4 KiB pages (2 MiB pages came later). */
const PAPER_BALLOON = CAP.BASIC_CMDS | CAP.BATCHED_CMDS;

/** The paper's Figure 2 values (recalled, see the fact sheet §4.3) and the tolerance our test holds them to. */
export const FIG2_PAPER = { minOverheadPct: 1.4, maxOverheadPct: 4.4, tolerancePct: 1.5 } as const;

async function runOne(p: BalloonPerfParams, seed: number, configuredMiB: number, balloonToMiB: number | null): Promise<Run> {
  const hv = await Hypervisor.create({ hostMemoryBytes: (p.maxMiB * 2 + 16) * MiB });
  const s = new Scheduler({ hz: p.hz, slice: Math.round(p.hz / 100) });
  const w = new Throughput({ cachePages: fileSetPages(p), seed, unitsPerBatch: 4, zipfS: p.zipfS > 0 ? p.zipfS : undefined, create: true,
    units: p.warmupUnits + p.units });
  const g = new GuestVm({ hv, name: 'vm', memoryBytes: configuredMiB * MiB, mode: p.mode, hz: p.hz, workload: w,
    balloonCapabilities: PAPER_BALLOON,
    kernel: { memMapBytesPerFrame: p.memMapBytesPerFrame, freeTargetFraction: p.freeTargetFraction } }).attach(s);
  if (balloonToMiB !== null) g.device.setTarget((configuredMiB - balloonToMiB) * 256);
  while (w.units < p.warmupUnits) s.runFor(STEP);
  const u0 = w.units, t0 = s.seconds, d0 = g.driverCycles, m0 = g.kernel.counters.swapIns;
  while (!g.finished) s.runFor(STEP);
  const k = g.kernel, seconds = s.seconds - t0;
  return { score: (w.units - u0) / seconds, balloon: g.device.size, guestSwapOuts: k.swap.stats.swapOuts, hostFrames: g.hostFrames,
    kernelFrames: k.memMap.length + k.reserve, driverCycles: g.driverCycles - d0, cycles: seconds * p.hz,
    missesPerUnit: (k.counters.swapIns - m0) / (w.units - u0), cacheFrames: k.frames.count('user') };
}

export async function runBalloonPerf(p: BalloonPerfParams, ctx: ExperimentContext): Promise<ExperimentOutput> {
  const rows: Record<string, number | string>[] = [];
  const sizes = [...p.sizesMiB].sort((a, b) => a - b);
  const row = (size: number, vm: string, r: Run) => ({ sizeMiB: size, vm, throughput: round(r.score), balloonFrames: r.balloon,
    kernelFrames: r.kernelFrames, cacheFrames: r.cacheFrames, missesPerUnit: round(r.missesPerUnit, 4),
    driverPct: round(100 * r.driverCycles / r.cycles, 3), guestSwapOuts: r.guestSwapOuts, hostFrames: r.hostFrames });
  const pairs: { size: number; conf: Run; ball: Run }[] = [];
  let done = 0;
  for (const size of sizes) {
    const conf = await runOne(p, ctx.seed, size, null);
    ctx.progress(++done / (2 * sizes.length), `configured ${size} MiB`);
    const ball = await runOne(p, ctx.seed, p.maxMiB, size);
    ctx.progress(++done / (2 * sizes.length), `ballooned to ${size} MiB`);
    rows.push(row(size, 'configured', conf), row(size, 'ballooned', ball));
    pairs.push({ size, conf, ball });
  }
  const overhead = pairs.map(({ size, conf, ball }) => ({
    sizeMiB: size,
    overheadPct: round(conf.score > 0 ? 100 * (conf.score - ball.score) / conf.score : 0),
    extraKernelFrames: ball.kernelFrames - conf.kernelFrames,
    cacheLossPct: round(100 * (conf.cacheFrames - ball.cacheFrames) / conf.cacheFrames),
    extraMissesPct: round(conf.missesPerUnit > 0 ? 100 * (ball.missesPerUnit / conf.missesPerUnit - 1) : 0),
  }));
  const below = overhead.filter((o) => o.sizeMiB < p.maxMiB);
  const pct = below.map((o) => o.overheadPct);
  const lo = below[0], hi = below.at(-1);
  const tput = (size: number, vm: string) => rows.find((r) => r.sizeMiB === size && r.vm === vm)!.throughput as number;
  const steps = sizes.slice(1).map((s, i) => tput(s, 'configured') / Math.max(1e-9, tput(sizes[i], 'configured')));
  const P = FIG2_PAPER;
  return {
    scenario: 'balloon-perf', title: 'Figure 2: balloon performance', seed: ctx.seed,
    summary: {
      sizes: sizes.join(', ') + ' MiB', maxMiB: p.maxMiB, mode: p.mode,
      'file set (MiB)': round(fileSetPages(p) / 256),
      'mean ballooned overhead %': pct.length ? round(pct.reduce((a, b) => a + b, 0) / pct.length) : 0,
      'max ballooned overhead %': pct.length ? Math.max(...pct) : 0,
      'min ballooned overhead %': pct.length ? Math.min(...pct) : 0,
      ...(lo ? { [`overhead at ${lo.sizeMiB} MiB %`]: lo.overheadPct } : {}),
      ...(hi && hi !== lo ? { [`overhead at ${hi.sizeMiB} MiB %`]: hi.overheadPct } : {}),
      'largest throughput step between sizes (×)': round(Math.max(...steps, 1), 2),
    },
    notes: [
      `Paper: the ballooned VM is ${P.minOverheadPct}–${P.maxOverheadPct} % slower than the VM configured with the same size, ` +
        `the most at the smallest size (recalled: 4.4 % at 128 MB and 1.4 % at 224 MB of 256; the fact sheet, §4.3, marks the band ` +
        `unconfirmed). Ours: ${pct.join(', ')} % at ${below.map((o) => o.sizeMiB).join(', ')} MiB ` +
        `of ${p.maxMiB}. Tolerance ±${P.tolerancePct} points: the smallest size within ${P.maxOverheadPct} ± ${P.tolerancePct} %, ` +
        `the largest ballooned size within ${P.minOverheadPct} ± ${P.tolerancePct} %, every size at most ` +
        `${P.maxOverheadPct + P.tolerancePct} %; the overhead falls as the balloon shrinks, as the paper's does.`,
      'Why: the guest sizes bookkeeping from its configured memory at boot and a balloon does not shrink it — a ' +
        `${p.memMapBytesPerFrame}-byte struct page per frame and a free target of ${round(100 * p.freeTargetFraction, 2)} % of frames ` +
        `(Linux 2.4's pages_high = 3 × frames/128). The ${p.maxMiB} MiB VM ballooned to ${lo?.sizeMiB} MiB keeps ` +
        `${lo?.extraKernelFrames} more such frames, so its page cache is ${lo?.cacheLossPct} % smaller and it misses ` +
        `${lo?.extraMissesPct} % more per unit. With both set to 0 the two VMs run the same requests at the same speed.`,
      `The curve: the file set (${round(fileSetPages(p) / 256)} MiB, zipf ${p.zipfS}) is larger than every VM, so the cache takes ` +
        'all memory and its hit ratio rises smoothly with memory; the largest throughput step between adjacent sizes is ' +
        `${round(Math.max(...steps, 1), 2)}× (no cliff). A miss costs a guest page-out and page-in on the disk (${describeDisk(DEFAULT_DISK)}).`,
      'Difference from the paper: 8–16 MiB VMs instead of 128–256 MB, a dbench-like workload instead of dbench, and only two ' +
        'structures sized by memory (Linux also sizes hash tables from it); the paper\'s band is recalled, not read (fact sheet §4.3).',
    ],
    series: { throughput: rows, overhead },
    plots: [{
      id: 'fig2', title: 'Throughput: configured vs ballooned VM',
      vegaLite: {
        data: { name: 'throughput' }, mark: 'bar',
        encoding: {
          x: { field: 'sizeMiB', type: 'ordinal', title: 'VM size (MiB)' },
          xOffset: { field: 'vm', sort: ['configured', 'ballooned'] },
          y: { field: 'throughput', type: 'quantitative', title: 'work units per simulated second' },
          // The paper's words: black bars the configured VM, gray bars the ballooned one.
          color: { field: 'vm', type: 'nominal', scale: { domain: ['configured', 'ballooned'], range: ['#222', '#999'] } },
        },
      },
      paper: 'Figure 2: dbench with 40 clients in a Linux VM; black bars a VM configured with 128–256 MB, gray bars a ' +
        '256 MB VM ballooned down to the same size. The ballooned VM comes close to the configured one (about 1.4 %–4.4 % ' +
        'overhead, attributed to guest structures sized from the configured memory).',
      caption: `Scaled down: ${p.maxMiB} MiB maximum, a file set of ${round(fileSetPages(p) / 256)} MiB (zipf ${p.zipfS}); ${p.units} units timed after ${p.warmupUnits}.`,
    }, {
      id: 'fig2-overhead', title: 'Ballooned VM overhead (% slower than the configured VM of the same size)',
      vegaLite: {
        data: { name: 'overhead' }, width: 320,
        layer: [
          { mark: { type: 'line', point: { color: '#222' }, color: '#222' }, encoding: {
            x: { field: 'sizeMiB', type: 'ordinal', title: 'VM size (MiB)' },
            y: { field: 'overheadPct', type: 'quantitative', title: 'overhead %' } } },
          // The paper's band, dashed: 1.4 % and 4.4 %.
          ...[P.minOverheadPct, P.maxOverheadPct].map((v) => ({
            mark: { type: 'rule', strokeDash: [4, 3], color: '#999' }, encoding: { y: { datum: v } } })),
        ],
      },
      paper: `The paper: ${P.minOverheadPct} %–${P.maxOverheadPct} % overhead across 128–224 MB (dashed lines), the most at the smallest size.`,
      caption: `Ours: ${pct.join(', ')} %; the test holds each to the paper's band ±${P.tolerancePct} points.`,
    }],
  };
}

