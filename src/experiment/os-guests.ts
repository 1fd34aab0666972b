// Several memvisor-os guests (the shipped C kernel, guests/os) on one overcommitted host
// under the memory manager: the same manager, scheduler and mechanisms the TypeScript
// kernels run under (host.ts), with OsMachine boards in place of GuestVms. The manager's
// balloon targets reach the C kernel's vmw_balloon-style driver through the backdoor
// device: setTarget rings the doorbell (SIGNALLED_WAKEUP), an interrupt at the vector
// the driver registered, and the driver's GET_TARGET / LOCK / UNLOCK run as guest code.
// Host swap faults pages back on EPT violations; page sharing scans guest frames.
//
//   Scheduler ── step ──▶ OsMachine ── vcpu.run ──▶ interpreter (guest kernel + programs)
//      │ every 1 s / balance period: MemoryManager ── setTarget ──▶ BalloonDevice ─ doorbell ─▶ guest
//      │ OUT_OF_FRAMES exit ──▶ manager.reclaimNow (swap) ──▶ the access retries
//      └ every recordSeconds: frames, balloon, swap, sharing, instructions, work units
//
// Each guest's command line picks its programs (guests/os/programs.ts checks it); every
// checksum line a guest prints is verified against a model of its program at the end.
// Time: the kernel clocks its APIC timer at 2 GHz (no CPUID 0x15 on this board), so the
// host runs at hz = 2e9 and programs sleep between bursts of work (toucher's sleepms,
// pagecache's seconds) to let virtual time pass without billions of instructions.

import { z } from 'zod';
import { vmModeField } from '../scenario/schema.js';
import { managedHost, type ManagedHost } from './host.js';
import { OsMachine } from '../board/os-machine.js';
import { interpretingCpu } from '../board/cpu-adapter.js';
import { readShippedOs } from '../board/shipped-os.js';
import { P2M } from '../hypervisor/monitor/p2m.js';
import { SHARED_OWNER } from '../hypervisor/monitor/frames.js';
import { checkConsole, parseOsCmdline, programMiB, type ConsoleCheck, type OsCommandLine } from '../../guests/os/programs.js';
import { defineExperiment } from './registry.js';
import type { ExperimentContext, ExperimentOutput, Row } from './result.js';
import { osGuestsReport } from './os-guests-report.js';

/** The kernel's assumed APIC/TSC clock (guests/os/kernel/apic.c ASSUMED_APIC_HZ). */
export const OS_HZ = 2e9;
/** MiB a guest needs besides its programs' mappings: the kernel image, page tables, stacks. */
const KERNEL_MIB = 4;
const FRAMES_PER_MIB = 256;
/** Host MiB a guest holds once loaded (the ELF's segments, the loader's tables: 1.4 MiB), rounded up. */
const BOOT_MIB = 2;

const guest = z.object({
  name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'letters, digits, ".", "_" and "-"').describe('the guest\'s name in the report'),
  memMiB: z.number().int().min(8).max(256).describe('guest memory [MiB]'),
  cmdline: z.string().describe('kernel command line: run= and a comma list of programs with colon arguments (trailing ones optional): ' +
    'toucher:MiB:passes:sleepms, random:MiB:accesses:seed, pagecache:maxMiB:seconds:rounds, forktree:depth:KiB, sleeper:seconds, hello; ' +
    'optionally linger=N'),
  minMiB: z.number().min(0).optional().describe('the manager\'s min (a guaranteed floor) [MiB] (default 0)'),
  maxMiB: z.number().min(1).optional().describe('the manager\'s max [MiB] (default memMiB)'),
  shares: z.number().positive().max(1e6).optional().describe('memory shares (default 10 per MiB of max)'),
}).strict();

export const osGuestsParams = z.object({
  hostMiB: z.number().int().min(8).max(2048).describe('host memory for VMs (the VM pool) [MiB]; the hypervisor\'s 4 MiB region comes on top'),
  mode: vmModeField.describe('paging mode of every guest'),
  guests: z.array(guest).min(2).max(8).describe('the OS guests, each with its command line and allocation'),
  policy: z.object({
    tau: z.number().min(0).lt(1).default(0.75).describe('idle memory tax rate'),
    balloon: z.boolean().default(true).describe('drive the guests\' balloon drivers'),
    swap: z.boolean().default(true).describe('hypervisor swapping'),
    sharing: z.boolean().default(true).describe('content-based page sharing'),
    sampling: z.boolean().default(true).describe('active-memory sampling (else every guest counts as fully active)'),
    samplePeriod: z.number().positive().default(2).describe('sampling period [s]'),
    balancePeriod: z.number().positive().default(2).describe('seconds between reallocations [s]'),
    shareScanRate: z.number().int().min(1).max(1e6).default(1000).describe('pages the sharing scanner hashes per second per guest'),
  }).strict().default({}).describe('the memory manager\'s mechanisms and periods'),
  seconds: z.number().positive().max(3600).default(20).describe('virtual seconds to run at most (2e9 cycles each) [s]'),
  maxInstructions: z.number().int().positive().max(1e12).optional()
    .describe('stop once the guests together retired this many instructions (default: no limit)'),
  recordSeconds: z.number().positive().max(60).default(0.25).describe('time-series resolution [s]'),
  coherenceChecker: z.boolean().default(false).describe('report uses of stale translations (costs speed)'),
}).strict().superRefine((p, ctx) => {
  const names = new Set<string>();
  let mins = 0, reserve = 0, total = 0;
  p.guests.forEach((g, i) => {
    if (names.has(g.name)) ctx.addIssue({ code: 'custom', path: ['guests', i, 'name'], message: `"${g.name}" is used by another guest` });
    names.add(g.name);
    const max = g.maxMiB ?? g.memMiB, min = g.minMiB ?? 0;
    if (max > g.memMiB) ctx.addIssue({ code: 'custom', path: ['guests', i, 'maxMiB'], message: `max ${max} MiB is above the guest's memory (${g.memMiB} MiB)` });
    if (min > max) ctx.addIssue({ code: 'custom', path: ['guests', i, 'minMiB'], message: `min ${min} MiB must be <= max (${max} MiB)` });
    mins += min; reserve += Math.max(0, max - min); total += g.memMiB;
    const cmd = cmdlineProblem(g.cmdline, g.memMiB);
    if (cmd) ctx.addIssue({ code: 'custom', path: ['guests', i, 'cmdline'], message: cmd });
    if (!p.policy.swap && max > min) {
      ctx.addIssue({ code: 'custom', path: ['guests', i, 'minMiB'], message: 'with policy.swap false there is no swap to reserve max − min, ' +
        'so admission control admits only guests whose min equals their max' });
    }
  });
  if (p.hostMiB < BOOT_MIB * p.guests.length) {
    ctx.addIssue({ code: 'custom', path: ['hostMiB'], message: `${p.hostMiB} MiB cannot boot ${p.guests.length} guests: each kernel takes about ${BOOT_MIB} MiB of host memory as it loads (at least ${BOOT_MIB * p.guests.length})` });
  }
  if (mins > p.hostMiB) ctx.addIssue({ code: 'custom', path: ['guests'], message: `the guests' mins (${mins} MiB) do not fit host memory (${p.hostMiB} MiB): admission control would refuse them` });
  if (p.policy.swap && reserve > 256) ctx.addIssue({ code: 'custom', path: ['guests'], message: `max − min of all guests (${reserve} MiB) does not fit the host swap file (256 MiB): admission control would refuse them` });
  if (!p.policy.swap && total > p.hostMiB) ctx.addIssue({ code: 'custom', path: ['policy', 'swap'], message: `the guests' memory (${total} MiB) overcommits the host (${p.hostMiB} MiB): without swap nothing can guarantee it` });
});
export type OsGuestsParams = z.infer<typeof osGuestsParams>;
type GuestSpec = OsGuestsParams['guests'][number];

/** What is wrong with a guest's command line for a guest of memMiB, or null. */
export function cmdlineProblem(cmdline: string, memMiB: number): string | null {
  let cmd: OsCommandLine;
  try { cmd = parseOsCmdline(cmdline); } catch (e) { return (e as Error).message; }
  const greedy = cmd.programs.find((q) => q.name === 'pagecache' && q.args[0] === 0);
  if (greedy && cmd.programs.some((q) => q !== greedy && programMiB(q) > 0)) {
    return 'pagecache with maxMiB 0 takes all the memory it is given, so the other programs\' mmaps would fail: give it a maxMiB';
  }
  const mapped = cmd.programs.reduce((a, q) => a + programMiB(q), 0);
  if (mapped > memMiB - KERNEL_MIB) {
    return `the programs map ${mapped} MiB at once; a ${memMiB} MiB guest has about ${memMiB - KERNEL_MIB} for them (the kernel keeps ${KERNEL_MIB})`;
  }
  return null;
}

/** One guest on the host: its board, parsed command line, console and live work counter. */
export interface OsGuest {
  spec: GuestSpec; cmd: OsCommandLine; m: OsMachine;
  console(): string;
  /** Work units (pass / round / run lines ending in "ok") printed so far. */
  units: number;
}

export interface OsGuestsRun {
  host: ManagedHost; guests: OsGuest[];
  /** Per guest per record: frames, balloon, swap, sharing, progress. */
  series: Row[];
  /** Per record: free frames, free-memory state, shared frames. */
  hostSeries: Row[];
  checks: Map<string, ConsoleCheck>;
  /** Virtual seconds the run lasted, and why it ended. */
  seconds: number; ended: 'seconds' | 'instructions' | 'all stopped';
}

const UNIT_LINE = /^(toucher: \d+ MiB pass \d+ checksum [0-9a-f]{16} ok|pagecache: released \d+ MiB ok|random: .* ok|forktree: depth \d+, \d+ processes, all ok)$/;

function bootGuest(h: ManagedHost, spec: GuestSpec, kernel: Uint8Array, p: OsGuestsParams): OsGuest {
  let text = '', line = '';
  const g: OsGuest = {
    spec, cmd: parseOsCmdline(spec.cmdline), units: 0, m: undefined as unknown as OsMachine,
    console: () => text + line,
  };
  const onByte = (b: number) => {
    if (b !== 10) { line += String.fromCharCode(b); return; }
    text += line + '\n';
    if (UNIT_LINE.test(line)) g.units++;
    line = '';
  };
  g.m = new OsMachine({ hv: h.hv, name: spec.name, kernel, memoryBytes: spec.memMiB * 2 ** 20, mode: p.mode, cpu: interpretingCpu,
    load: { cmdline: spec.cmdline, path: '/boot/memvisor-os.elf' }, console: onByte, hz: OS_HZ,
    coherenceChecker: p.coherenceChecker, balloon: g.cmd.balloon && p.policy.balloon,
    reclaim: (m, need) => h.mgr.reclaimNow(m, need) });
  return g;
}

/** Boots the guests on a managed host, runs them under the memory manager and records the series. */
export async function runOsGuests(p: OsGuestsParams, seed: number, progress: (f: number, label?: string) => void = () => {},
  onRecord?: (t: number, host: ManagedHost, guests: readonly OsGuest[]) => void): Promise<OsGuestsRun> {
  const kernel = readShippedOs();
  const pol = p.policy;
  const host = await managedHost({
    seed, vmPoolMiB: p.hostMiB, hz: OS_HZ, tau: pol.tau, balancePeriod: pol.balancePeriod, balloon: pol.balloon, swap: pol.swap,
    sharing: pol.sharing ? { scanRatePerVm: pol.shareScanRate, scanRateTotal: pol.shareScanRate * p.guests.length } : false,
    sampler: pol.sampling ? { periodSeconds: pol.samplePeriod } : false,
    vms: p.guests.map((g) => ({ memMiB: g.memMiB, mode: p.mode })), // the hypervisor region holds their EPT / shadow reserves
  });
  const guests: OsGuest[] = [];
  try {
    for (const spec of p.guests) {
      const g = bootGuest(host, spec, kernel, p);
      const max = (spec.maxMiB ?? spec.memMiB) * FRAMES_PER_MIB;
      try {
        host.mgr.add(g.m, { min: Math.round((spec.minMiB ?? 0) * FRAMES_PER_MIB), max: Math.round(max), shares: spec.shares ?? (max / FRAMES_PER_MIB) * 10 });
      } catch (e) { host.hv.destroyVm(g.m.vm); throw e; }
      g.m.attach(host.sched, spec.shares ?? ((spec.maxMiB ?? spec.memMiB) * 10));
      guests.push(g);
    }
  } catch (e) { host.close(); throw e; }
  const series: Row[] = [], hostSeries: Row[] = [];
  const record = (t: number) => { recordAt(host, guests, t, series, hostSeries); onRecord?.(t, host, guests); };
  host.mgr.start();
  host.sched.every(p.recordSeconds, (now) => record(now / OS_HZ));
  record(0);
  const retired = () => guests.reduce((a, g) => a + g.m.cpu.instructions(), 0);
  let ended: OsGuestsRun['ended'] = 'seconds';
  const chunk = Math.max(p.recordSeconds, 0.25);
  try { // a guest that fails stops the run; the host's swap file goes with it
    while (host.sched.seconds < p.seconds - 1e-9) {
      host.sched.runFor(Math.min(chunk, p.seconds - host.sched.seconds));
      await new Promise((r) => setTimeout(r, 0)); // let the event loop breathe (progress bars, test runners' RPC)
      const failed = guests.find((g) => g.m.stopped && g.m.stopped.stop !== 'power-off');
      if (failed) throw new Error(`${failed.spec.name} stopped: ${failed.m.stopped!.stop}${failed.m.stopped!.message ? ` (${failed.m.stopped!.message})` : ''}`);
      const n = retired();
      progress(Math.min(1, Math.max(host.sched.seconds / p.seconds, p.maxInstructions ? n / p.maxInstructions : 0)),
        `${host.sched.seconds.toFixed(2)} s, ${(n / 1e6).toFixed(0)} M instructions`);
      if (guests.every((g) => g.m.stopped)) { ended = 'all stopped'; break; }
      if (p.maxInstructions !== undefined && n >= p.maxInstructions) { ended = 'instructions'; break; }
    }
  } catch (e) { host.close(); throw e; }
  record(host.sched.seconds);
  const checks = new Map(guests.map((g) => [g.spec.name, checkConsole(g.console(), g.cmd)]));
  return { host, guests, series, hostSeries, checks, seconds: host.sched.seconds, ended };
}

const mib = (frames: number): number => Math.round((frames / FRAMES_PER_MIB) * 1000) / 1000;

function recordAt(h: ManagedHost, guests: OsGuest[], t: number, series: Row[], hostSeries: Row[]): void {
  const targets = new Map(h.mgr.list().map((e) => [e.m.name, e.target]));
  const time = Math.round(t * 1e4) / 1e4;
  if (series.length && series[series.length - 1].t === time) return; // the final record may coincide with a timer's
  for (const g of guests) {
    const vm = g.m.vm, d = g.m.device;
    const frames = g.m.hostFrames, swapped = vm.p2m.count(P2M.SWAPPED, P2M.SWAPPED);
    const shared = vm.p2m.count(P2M.SHARED | P2M.PRESENT, P2M.SHARED | P2M.PRESENT);
    series.push({
      t: time, guest: g.spec.name, frames, MiB: mib(frames), targetMiB: mib(targets.get(g.spec.name) ?? 0),
      balloonFrames: d?.size ?? 0, balloonTargetFrames: d?.target ?? 0, balloonMiB: mib(d?.size ?? 0), balloonTargetMiB: mib(d?.target ?? 0),
      swappedPages: swapped, swappedMiB: mib(swapped), sharedPages: shared, sharedMiB: mib(shared),
      instructionsM: Math.round(g.m.cpu.instructions() / 1e4) / 100, units: g.units,
      blocked: g.m.blocked ? 1 : 0,
    });
  }
  const c = h.hv.frames.counts();
  hostSeries.push({ t: time, freeMiB: mib(c.vmFree), state: h.mgr.states.state, sharedMiB: mib(h.hv.frames.usedBy(SHARED_OWNER)) });
}

export async function runOsGuestsExperiment(p: OsGuestsParams, ctx: ExperimentContext): Promise<ExperimentOutput> {
  const r = await runOsGuests(p, ctx.seed, (f, l) => ctx.progress(f, l));
  try {
    return osGuestsReport(p, r);
  } finally { r.host.close(); }
}

export const osGuestsExperiment = defineExperiment({
  kind: 'os-guests',
  title: 'memvisor-os guests under the memory manager',
  description: 'Two or more C-kernel guests on an overcommitted host: the manager\'s targets drive their balloon drivers; swapping and sharing as configured.',
  schema: osGuestsParams,
  run: (params, ctx) => runOsGuestsExperiment(params, ctx),
});
