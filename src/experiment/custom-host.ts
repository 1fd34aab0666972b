// A scenario of your own: a host, its VMs (size, mode, workload, min / max / shares),
// resource pools, the memory manager's policies and mechanisms, a duration and a seed.
// Validation names the field of every problem, including the cross-field ones admission
// control would refuse at run time (min > max, max above the VM's size, mins that do not
// fit host memory), so an impossible scenario fails before anything runs or is written.
//
//   { "kind": "host", "name": "two-vms", "hostMiB": 20, "seconds": 30,
//     "vms": [ { "name": "web", "memMiB": 16, "workload": { "type": "throughput" }, "minMiB": 4, "shares": 2000 },
//              { "name": "prog", "memMiB": 16, "workload": { "type": "trace", "file": "prog.lackey.gz" } } ],
//     "policy": { "tau": 0.75, "balloon": true, "swap": true, "sharing": false } }

import { z } from 'zod';
import { vmModeField } from '../scenario/schema.js';
import { managedHost, SWAP_SLOTS } from './host.js';
import { MAX_SLOTS } from '../hypervisor/pagers/swapfile.js';
import { Throughput } from '../../guests/throughput.js';
import { Filler } from '../../guests/filler.js';
import { IdleKernel } from '../../guests/idle.js';
import { Toucher } from '../../guests/toucher.js';
import { PhasedToucher } from '../../guests/phased-toucher.js';
import { TraceReplay, type TraceSource } from '../../guests/trace.js';
import { TraceReader } from '../workload/trace-file.js';
import { checkedTraceScan, shownPath, traceFileField } from '../scenario/trace-field.js';
import type { Workload } from '../../guests/kernel/kernel.js';
import type { GuestVm } from '../board/guest-vm.js';
import { flatten, type PoolSpec, type PoolChild } from '../hypervisor/policy/policy.js';
import type { ExperimentOutput, ExperimentContext, Row } from './result.js';
import { round } from './units.js';

const workload = z.discriminatedUnion('type', [
  z.object({ type: z.literal('idle') }).strict(),
  z.object({ type: z.literal('filler'), fraction: z.number().gt(0).max(0.95).default(0.9) }).strict(),
  z.object({ type: z.literal('throughput'), cacheFraction: z.number().gt(0).max(0.95).default(0.6),
    zipfS: z.number().min(0).max(3).default(0) }).strict(),
  z.object({ type: z.literal('toucher'), regionFraction: z.number().gt(0).max(0.95).default(0.8),
    setFraction: z.number().gt(0).max(1).default(0.25), shiftSeconds: z.number().positive().default(10) }).strict(),
  z.object({ type: z.literal('phased'), phases: z.array(z.object({ seconds: z.number().positive(), fraction: z.number().gt(0).max(0.95) }).strict()).min(1) }).strict(),
  z.object({ type: z.literal('trace'), file: traceFileField,
    loop: z.boolean().default(true).describe('start the trace again when it ends (false: the VM idles after one pass)') }).strict(),
]);

/** The guest's swap disk (guests/kernel/swap.ts): pages a trace may touch beyond the VM's memory. */
const GUEST_SWAP_PAGES = 1 << 16;
/** MiB of a VM its guest kernel keeps (tables, its own frames), not available to the trace. */
const KERNEL_MIB = 2;

const vm = z.object({
  name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'letters, digits, ".", "_" and "-"'),
  memMiB: z.number().int().min(4).max(256),
  mode: vmModeField,
  workload,
  /** Allocation parameters, MiB (default min 0, max memMiB) and shares (default 10 per MiB of max). */
  minMiB: z.number().min(0).optional(),
  maxMiB: z.number().min(1).optional(),
  shares: z.number().positive().max(1e6).optional(),
  /** A reservation (a floor like min) and a limit (a ceiling like max), MiB. */
  reservationMiB: z.number().min(0).optional(),
  limitMiB: z.number().min(1).optional(),
  pool: z.string().optional(),
}).strict();

const pool = z.object({
  name: z.string().min(1),
  shares: z.number().positive().describe('relative right to memory among the pool\'s siblings'),
  parent: z.string().optional().describe('the pool this pool sits in (default: directly under the host)'),
  minMiB: z.number().min(0).optional().describe('memory reserved for the pool\'s VMs together'),
  maxMiB: z.number().min(1).optional().describe('most memory the pool\'s VMs hold together'),
  limitMiB: z.number().min(1).optional().describe('most memory the pool\'s VMs hold together (as maxMiB; the lower of the two applies)'),
}).strict().describe('a resource pool: its VMs and sub-pools divide its memory first (min-funding revocation level by level)');

export const customHostParams = z.object({
  /** Host memory for VMs, MiB (the hypervisor's own region comes on top). */
  hostMiB: z.number().int().min(8).max(2048),
  vms: z.array(vm).min(1).max(64),
  pools: z.array(pool).default([]),
  policy: z.object({
    tau: z.number().min(0).lt(1).default(0.75),
    balloon: z.boolean().default(true),
    swap: z.boolean().default(true),
    sharing: z.boolean().default(false),
    sampling: z.boolean().default(true),
    samplePeriod: z.number().positive().default(5),
    balancePeriod: z.number().positive().default(2),
    overheadFixedMiB: z.number().min(0).max(256).default(0)
      .describe('per-VM overhead memory reserved at admission, fixed part (ESX: frame buffer, monitor; the paper: ~32 MB a VM)'),
    overheadKiBPerMiB: z.number().min(0).max(1024).default(0)
      .describe('per-VM overhead memory, part per MiB of the VM (ESX sizes overhead as a fixed part plus a per-MiB part)'),
  }).strict().default({}),
  seconds: z.number().positive().max(3600).default(30),
  hz: z.number().min(1e5).max(1e10).default(2e6),
}).strict().superRefine((p, ctx) => {
  const names = new Set<string>();
  let mins = 0;
  p.vms.forEach((v, i) => {
    const max = v.maxMiB ?? v.memMiB, min = v.minMiB ?? 0;
    if (names.has(v.name)) ctx.addIssue({ code: 'custom', path: ['vms', i, 'name'], message: `"${v.name}" is used by another VM` });
    names.add(v.name);
    if (max > v.memMiB) ctx.addIssue({ code: 'custom', path: ['vms', i, 'maxMiB'], message: `max ${max} MiB is above the VM's memory (${v.memMiB} MiB)` });
    if (min > max) ctx.addIssue({ code: 'custom', path: ['vms', i, 'minMiB'], message: `min ${min} MiB must be <= max (${max} MiB)` });
    const floor = Math.max(min, v.reservationMiB ?? 0), ceiling = Math.min(max, v.limitMiB ?? max);
    if (v.reservationMiB !== undefined && v.reservationMiB > ceiling) {
      ctx.addIssue({ code: 'custom', path: ['vms', i, 'reservationMiB'], message: `reservation ${v.reservationMiB} MiB must be <= max and limit (${ceiling} MiB)` });
    }
    if (v.limitMiB !== undefined && v.limitMiB < floor) {
      ctx.addIssue({ code: 'custom', path: ['vms', i, 'limitMiB'], message: `limit ${v.limitMiB} MiB must be >= min and reservation (${floor} MiB)` });
    }
    if (v.pool !== undefined && !p.pools.some((q) => q.name === v.pool)) {
      ctx.addIssue({ code: 'custom', path: ['vms', i, 'pool'], message: `no pool named "${v.pool}" in pools` });
    }
    mins += Math.max(min, v.reservationMiB ?? 0);
  });
  const pools = new Set<string>();
  p.pools.forEach((q, i) => {
    if (pools.has(q.name) || q.name === '(host)') ctx.addIssue({ code: 'custom', path: ['pools', i, 'name'], message: `pool name "${q.name}" is taken` });
    pools.add(q.name);
  });
  const cyclic = poolProblems(p, ctx);
  if (!cyclic) {
    const reserved = poolFloorMiB(p, undefined);
    if (reserved > p.hostMiB && mins <= p.hostMiB) {
      ctx.addIssue({ code: 'custom', path: ['pools'], message: `the pools' mins and their VMs' floors (${reserved} MiB) do not fit host memory (${p.hostMiB} MiB): admission control would refuse them` });
    }
  }
  p.vms.forEach((v, i) => {
    if (v.workload.type !== 'trace') return;
    const scan = checkedTraceScan(v.workload.file);
    if (!scan) return;
    const pages = scan.pages, room = (v.memMiB - KERNEL_MIB) * 256 + GUEST_SWAP_PAGES;
    if (pages > room) {
      ctx.addIssue({ code: 'custom', path: ['vms', i, 'workload', 'file'], message: `the trace touches ${pages} distinct pages (${mibText(pages)}), ` +
        `more than the VM's memory and its guest swap disk hold (${mibText(room)})` });
    }
  });
  p.vms.forEach((v, i) => {
    if (v.workload.type !== 'phased') return;
    v.workload.phases.forEach((ph, j) => {
      if (Math.floor(v.memMiB * 256 * ph.fraction) < 1) {
        ctx.addIssue({ code: 'custom', path: ['vms', i, 'workload', 'phases', j, 'fraction'], message: `${ph.fraction} of ${v.memMiB} MiB is less than one page` });
      }
    });
  });
  if (mins > p.hostMiB) {
    ctx.addIssue({ code: 'custom', path: ['vms'], message: `the VMs' mins and reservations (${mins} MiB) do not fit host memory (${p.hostMiB} MiB): admission control would refuse them` });
  }
  const total = p.vms.reduce((a, v) => a + v.memMiB, 0);
  if (p.policy.swap) {
    const reserve = p.vms.reduce((a, v) => a + Math.max(0, (v.maxMiB ?? v.memMiB) - floorOf(v)), 0);
    if (swapSlotsFor(p) > MAX_SLOTS) {
      ctx.addIssue({ code: 'custom', path: ['vms'], message: `max − min of all VMs (${reserve} MiB) does not fit the largest swap file (${MAX_SLOTS / 256} MiB): admission control would refuse them` });
    }
  } else {
    p.vms.forEach((v, i) => {
      if ((v.maxMiB ?? v.memMiB) > floorOf(v)) {
        ctx.addIssue({ code: 'custom', path: ['vms', i, 'minMiB'], message: 'with policy.swap false there is no swap to reserve max − min, ' +
          'so admission control admits only VMs whose min (or reservation) equals their max' });
      }
    });
    if (total > p.hostMiB) {
      ctx.addIssue({ code: 'custom', path: ['policy', 'swap'], message: `the VMs' memory (${total} MiB) overcommits the host (${p.hostMiB} MiB): without swap nothing can guarantee it (a balloon may be too slow)` });
    }
  }
});
export type CustomHostParams = z.infer<typeof customHostParams>;

const floorOf = (v: CustomHostParams['vms'][number]): number => Math.max(v.minMiB ?? 0, v.reservationMiB ?? 0);
const capOf = (q: CustomHostParams['pools'][number]): number => Math.min(q.maxMiB ?? Infinity, q.limitMiB ?? Infinity);

/** The MiB a pool (or the host, for undefined) reserves: max(its min, its VMs' and sub-pools' floors). */
function poolFloorMiB(p: Pick<CustomHostParams, 'vms' | 'pools'>, pool: string | undefined): number {
  const q = p.pools.find((x) => x.name === pool);
  const inner = p.vms.filter((v) => v.pool === pool).reduce((a, v) => a + floorOf(v), 0) +
    p.pools.filter((x) => x.parent === pool).reduce((a, x) => a + poolFloorMiB(p, x.name), 0);
  return Math.max(q?.minMiB ?? 0, inner);
}

/** Parents that do not exist or form a cycle, and pool limits below what their members reserve; true if the tree is unusable. */
function poolProblems(p: Pick<CustomHostParams, 'vms' | 'pools'>, ctx: z.RefinementCtx): boolean {
  let bad = false;
  p.pools.forEach((q, i) => {
    if (q.parent === undefined) return;
    if (!p.pools.some((x) => x.name === q.parent)) {
      ctx.addIssue({ code: 'custom', path: ['pools', i, 'parent'], message: `no pool named "${q.parent}" in pools` });
      bad = true;
      return;
    }
    const seen = new Set([q.name]);
    for (let at = q.parent as string | undefined; at !== undefined; at = p.pools.find((x) => x.name === at)?.parent) {
      if (seen.has(at)) { ctx.addIssue({ code: 'custom', path: ['pools', i, 'parent'], message: `pool "${q.name}" is inside itself (a cycle of parents)` }); bad = true; return; }
      seen.add(at);
    }
  });
  if (bad) return true;
  p.pools.forEach((q, i) => {
    const cap = capOf(q), floors = poolFloorMiB({ ...p, pools: p.pools.map((x) => (x === q ? { ...x, minMiB: undefined } : x)) }, q.name);
    if (q.minMiB !== undefined && q.minMiB > cap) {
      ctx.addIssue({ code: 'custom', path: ['pools', i, 'minMiB'], message: `min ${q.minMiB} MiB must be <= max and limit (${cap} MiB)` });
    } else if (floors > cap) {
      ctx.addIssue({ code: 'custom', path: ['pools', i, q.limitMiB === cap ? 'limitMiB' : 'maxMiB'],
        message: `limit ${cap} MiB is below its VMs' mins and reservations (${floors} MiB)` });
    }
  });
  return false;
}

/**
 * The swap file's slots: max − min of every VM (what admission reserves), at least the
 * default. ESX sizes its swap the same way (a .vswp of max − reservation per VM), so a
 * host may configure far more guest memory than it has: pages never touched, shared,
 * zero or swapped hold no host frame.
 */
function swapSlotsFor(p: Pick<CustomHostParams, 'vms'>): number {
  const floorOf = (v: CustomHostParams['vms'][number]) => Math.max(v.minMiB ?? 0, v.reservationMiB ?? 0);
  const reserve = p.vms.reduce((a, v) => a + Math.max(0, (v.maxMiB ?? v.memMiB) - floorOf(v)), 0);
  return Math.max(SWAP_SLOTS, Math.ceil(reserve * 256));
}

function makeWorkload(w: CustomHostParams['vms'][number]['workload'], frames: number, seed: number): Workload {
  switch (w.type) {
    case 'idle': return new IdleKernel();
    case 'filler': return new Filler(Math.floor(frames * w.fraction));
    case 'throughput': return new Throughput({ cachePages: Math.floor(frames * w.cacheFraction), seed, unitsPerBatch: 4, zipfS: w.zipfS || undefined });
    case 'toucher': {
      const region = Math.floor(frames * w.regionFraction);
      return new Toucher({ regionPages: region, setPages: Math.max(1, Math.floor(region * w.setFraction)), shiftSeconds: w.shiftSeconds, seed });
    }
    case 'phased': return new PhasedToucher({ phases: w.phases.map((ph) => ({ seconds: ph.seconds, pages: Math.floor(frames * ph.fraction) })), seed });
    case 'trace': return new TraceReplay(traceSource(w.file, w.loop));
  }
}

/** The trace streamed from its file; with loop, opened again at its end (passes counts the starts). */
function traceSource(file: string, loop: boolean): TraceSource & { passes: number } {
  let reader = new TraceReader(file, { name: shownPath(file) });
  return {
    passes: 1,
    next() {
      const r = reader.next();
      if (r !== null || !loop) return r;
      reader.close();
      reader = new TraceReader(file, { name: shownPath(file) });
      this.passes++;
      return reader.next();
    },
    close() { reader.close(); },
  };
}

const mibText = (pages: number): string => `${Math.round(pages / 256 * 100) / 100} MiB`;

/** Keeps trace replays (open files) to close after the run, whatever happens. */
function track(w: Workload, traces: TraceReplay[]): Workload {
  if (w instanceof TraceReplay) traces.push(w);
  return w;
}

/** Work units so far, for workloads that count them. */
const unitsOf = (g: GuestVm): number => (g.workload instanceof Throughput ? g.workload.units : 0);

export async function runCustomHost(p: CustomHostParams, ctx: ExperimentContext): Promise<ExperimentOutput> {
  const pol = p.policy;
  const h = await managedHost({ seed: ctx.seed, vmPoolMiB: p.hostMiB, hz: p.hz, tau: pol.tau, balancePeriod: pol.balancePeriod,
    balloon: pol.balloon, swap: pol.swap, swapSlots: swapSlotsFor(p), sharing: pol.sharing ? {} : false,
    sampler: pol.sampling ? { periodSeconds: pol.samplePeriod } : false, pools: poolSpec(p), vms: p.vms,
    overhead: { fixedFrames: Math.ceil(pol.overheadFixedMiB * 256), framesPerMiB: pol.overheadKiBPerMiB / 4 } });
  const traces: TraceReplay[] = [];
  try {
    const guests = p.vms.map((v, i) => {
      const frames = v.memMiB * 256, max = Math.floor((v.maxMiB ?? v.memMiB) * 256);
      return h.add({ name: v.name, memoryBytes: frames * 4096, mode: v.mode, balloon: pol.balloon,
        workload: track(makeWorkload(v.workload, frames, ctx.seed + i), traces) },
      { min: Math.floor((v.minMiB ?? 0) * 256), max, shares: v.shares ?? (v.maxMiB ?? v.memMiB) * 10,
        reservation: v.reservationMiB === undefined ? undefined : Math.floor(v.reservationMiB * 256),
        limit: v.limitMiB === undefined ? undefined : Math.floor(v.limitMiB * 256) });
    });
    h.mgr.start();
    const work: Row[] = [];
    const last = new Map(guests.map((g) => [g.name, 0]));
    h.sched.every(1, (now) => {
      for (const g of guests) { const u = unitsOf(g); work.push({ t: round(now / p.hz), vm: g.name, unitsPerSecond: u - last.get(g.name)! }); last.set(g.name, u); }
    });
    // Run to absolute deadlines: a guest batch may carry the clock past each second.
    const t0 = h.sched.seconds;
    for (let s = 1; s <= Math.ceil(p.seconds); s++) {
      h.sched.runFor(Math.max(0, t0 + Math.min(s, p.seconds) - h.sched.seconds));
      ctx.progress(Math.min(s, p.seconds) / p.seconds);
    }
    const ran = h.sched.seconds - t0;
    const alloc = h.mgr.vmSeries.map((r) => ({ t: r.t, vm: r.vm, MiB: mib(r.frames), targetMiB: mib(r.target), balloonMiB: mib(r.balloon),
      swappedMiB: mib(r.swapped), sharedMiB: mib(r.shared), active: r.active, blocked: r.blocked }));
    const summary: Record<string, number | string> = { 'host memory for VMs (MiB)': p.hostMiB, seconds: p.seconds, 'τ': pol.tau,
      'final free-memory state': h.mgr.states.state, 'host swap-outs': h.swap?.stats().swapOuts ?? 0,
      'double paging': h.swap?.stats().doubleSwaps ?? 0, 'shared frames saved': h.sharing?.stats.saved ?? 0 };
    for (const g of guests) {
      summary[`${g.name}: MiB held / target`] = `${mib(g.hostFrames)} / ${mib(h.mgr.list().find((e) => e.m === g)!.target)}`;
      summary[`${g.name}: balloon MiB`] = mib(g.device.size);
      if (g.workload instanceof Throughput) summary[`${g.name}: units/s`] = round(unitsOf(g) / ran);
      if (g.workload instanceof TraceReplay) {
        const t = g.workload.replayed;
        summary[`${g.name}: trace records replayed (I / L / S / M)`] = `${t.accesses} (${t.I} / ${t.L} / ${t.S} / ${t.M})`;
        summary[`${g.name}: trace pages touched`] = t.pages;
        summary[`${g.name}: trace passes started`] = (g.workload.src as { passes?: number }).passes ?? 1;
      }
    }
    return {
      title: `Host: ${p.vms.length} VMs on ${p.hostMiB} MiB`,
      summary, series: { allocation: alloc, work, host: h.mgr.hostSeries.map((r) => ({ t: r.t, freeMiB: mib(r.free), state: r.state, sharedMiB: mib(r.sharedFrames) })) },
      plots: [{
        id: 'allocation', title: 'Memory held (solid) and target (dashed) per VM',
        vegaLite: { data: { name: 'allocation' }, layer: [
          { mark: 'line', encoding: { x: { field: 't', type: 'quantitative', title: 'simulated seconds' },
            y: { field: 'MiB', type: 'quantitative', title: 'MiB (held; target dashed)' }, color: { field: 'vm', type: 'nominal' } } },
          { mark: { type: 'line', strokeDash: [4, 3] }, encoding: { x: { field: 't', type: 'quantitative' },
            y: { field: 'targetMiB', type: 'quantitative', title: 'MiB (held; target dashed)' }, color: { field: 'vm', type: 'nominal' } } },
        ] },
        caption: `Host memory each VM holds (solid) and the target the manager sets for it (dashed): shares, min / max and ` +
          `the idle memory tax (τ = ${pol.tau}) over ${p.hostMiB} MiB for ${p.vms.reduce((a, v) => a + v.memMiB, 0)} MiB of VMs.`,
      }, {
        id: 'reclaimed', title: 'Balloon, swapped and shared memory per VM',
        vegaLite: { data: { name: 'allocation' }, transform: [{ fold: ['balloonMiB', 'swappedMiB', 'sharedMiB'], as: ['kind', 'value'] }],
          mark: 'line', encoding: { x: { field: 't', type: 'quantitative', title: 'simulated seconds' }, y: { field: 'value', type: 'quantitative', title: 'MiB' },
            color: { field: 'vm', type: 'nominal' }, strokeDash: { field: 'kind', type: 'nominal' } } },
        caption: 'What the manager took back from each VM: balloonMiB (the guest gave it), swappedMiB (the host paged it out) ' +
          'and sharedMiB (pages mapped to a shared frame).',
      }],
    };
  } finally {
    for (const t of traces) t.close();
    h.close();
  }
}

/** The scenario's pools as one tree under a root (pools and VMs with no parent hang off the root). */
function poolSpec(p: CustomHostParams): PoolSpec | undefined {
  if (p.pools.length === 0) return undefined;
  const share = (v: CustomHostParams['vms'][number]) => v.shares ?? (v.maxMiB ?? v.memMiB) * 10;
  const frames = (m: number | undefined) => (m === undefined ? undefined : Math.floor(m * 256));
  const children = (parent: string | undefined): PoolChild[] => [
    ...p.pools.filter((q) => q.parent === parent).map((q) => ({ name: q.name, shares: q.shares, min: frames(q.minMiB),
      max: frames(q.maxMiB), limit: frames(q.limitMiB), children: children(q.name) })),
    ...p.vms.filter((v) => v.pool === parent).map((v) => ({ vm: v.name, shares: share(v) })),
  ];
  return { name: '(host)', shares: 10_000, children: children(undefined) };
}

const mib = (frames: number): number => Math.round(frames / 256 * 100) / 100;
