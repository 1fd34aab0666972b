// The memvisor-os soak (npm run test:os-soak; not in the normal suite): several OS guests
// under the memory manager with sharing, host swapping and ballooning all active, until the
// guests together retired OS_SOAK_INSTRUCTIONS (default 10^9) guest instructions.
//
// Sharing, swapping and ballooning must each be active during the steady state (swap-outs and
// swap-ins, balloon inflation, sharing scans and copy-on-write breaks all grow).
// Checked at the start of the steady state (the first record after OS_SOAK_WARMUP virtual
// seconds) and at the end:
//   - frame accounting exact (test/helpers/frames-audit.ts: owners vs p2m vs counters; a
//     leaked frame is owned but mapped by nobody), and no frame mapped by two guests;
//   - every balloon's size = its guest's BALLOONED p2m entries; swap slots in use = SWAPPED entries;
//   - host memory flat: the Wasm memory (host RAM + the core's structures) and the
//     hypervisor pool's frames in use do not grow;
// and at the end every checksum line every guest printed matches the model of its program,
// with no balloon protocol violation and no guest stopped. Prints a JSON summary; exits 1
// (listing the failures) if any check fails.
//   OS_SOAK_INSTRUCTIONS=2e8 npm run test:os-soak     a shorter run
import '../../src/experiment/catalogue.js';
import { parseExperimentScenario } from '../../src/experiment/registry.js';
import { runOsGuests, type OsGuest, type OsGuestsParams } from '../../src/experiment/os-guests.js';
import type { ManagedHost } from '../../src/experiment/host.js';
import { P2M } from '../../src/hypervisor/monitor/p2m.js';
import { SHARED_OWNER } from '../../src/hypervisor/monitor/frames.js';
import { auditFrames } from '../helpers/frames-audit.js';

const INSNS = Number(process.env.OS_SOAK_INSTRUCTIONS ?? 1e9);
const WARMUP = Number(process.env.OS_SOAK_WARMUP ?? 4);
const SEED = Number(process.env.OS_SOAK_SEED ?? 1);

const SCENARIO = {
  kind: 'os-guests', name: 'os-soak', seed: SEED, hostMiB: 38, seconds: 3600, maxInstructions: Math.round(INSNS), recordSeconds: 0.5,
  guests: [
    { name: 'hot', memMiB: 32, cmdline: 'run=toucher:8:1000000:400,random:4:200000:3' },
    { name: 'cache', memMiB: 32, cmdline: 'run=pagecache:0:1:1000000' },
    { name: 'mixed', memMiB: 32, cmdline: 'run=toucher:6:1000000:600,forktree:4:64,random:4:300000:5' },
    { name: 'quiet', memMiB: 32, cmdline: 'run=toucher:4:1000000:1500,sleeper:1000000' },
  ],
  policy: { balancePeriod: 2, samplePeriod: 2, shareScanRate: 1000 },
};

interface Snapshot {
  t: number; instructions: number; wasmBytes: number; hypervisorFrames: number; freeFrames: number; sharedFrames: number;
  framesByGuest: Record<string, number>; balloonByGuest: Record<string, number>; swapSlots: number; problems: string[];
  /** Cumulative activity of each mechanism (steady-state deltas show it never stopped). */
  activity: { swapOuts: number; swapIns: number; balloonInflated: number; balloonDeflated: number; sharingScanned: number; cowBreaks: number };
}

function snapshot(t: number, h: ManagedHost, guests: readonly OsGuest[]): Snapshot {
  const a = auditFrames(h.hv.frames, guests.map((g) => g.m.vm));
  const problems = [...a.problems];
  let swapped = 0;
  for (const g of guests) {
    const ballooned = g.m.vm.p2m.count(P2M.BALLOONED, P2M.BALLOONED);
    if (ballooned !== g.m.balloon.size) problems.push(`${g.spec.name}: balloon size ${g.m.balloon.size}, ${ballooned} BALLOONED p2m entries`);
    swapped += g.m.vm.p2m.count(P2M.SWAPPED, P2M.SWAPPED);
  }
  const slots = h.swap?.stats().slotsInUse ?? 0;
  if (slots !== swapped) problems.push(`swap: ${slots} slots in use, ${swapped} SWAPPED p2m entries`);
  const c = h.hv.frames.counts();
  return {
    t, instructions: guests.reduce((s, g) => s + g.m.cpu.instructions(), 0),
    wasmBytes: h.hv.machine.core.memory.buffer.byteLength, hypervisorFrames: c.hypervisor, freeFrames: c.vmFree,
    sharedFrames: h.hv.frames.usedBy(SHARED_OWNER),
    framesByGuest: Object.fromEntries(guests.map((g) => [g.spec.name, g.m.hostFrames])),
    balloonByGuest: Object.fromEntries(guests.map((g) => [g.spec.name, g.m.balloon.size])),
    swapSlots: slots, problems,
    activity: {
      swapOuts: h.swap?.stats().swapOuts ?? 0, swapIns: h.swap?.stats().swapIns ?? 0,
      balloonInflated: guests.reduce((a, g) => a + g.m.balloonStats.snapshot().inflated, 0),
      balloonDeflated: guests.reduce((a, g) => a + g.m.balloonStats.snapshot().deflated, 0),
      sharingScanned: h.sharing?.stats.scanned ?? 0, cowBreaks: h.sharing?.stats.cowBreaks ?? 0,
    },
  };
}

async function main(): Promise<void> {
  const p = parseExperimentScenario(SCENARIO).params as OsGuestsParams;
  const wall0 = Date.now();
  let steady: Snapshot | null = null;
  let lastLog = 0;
  const run = await runOsGuests(p, SEED, (_f, label) => {
    if (Date.now() - lastLog > 15_000) { lastLog = Date.now(); process.stderr.write(`os-soak: ${label} (${Math.round((Date.now() - wall0) / 1000)} s wall)\n`); }
  }, (t, h, guests) => { if (!steady && t >= WARMUP) steady = snapshot(t, h, guests); });
  const h = run.host;
  try {
    const end = snapshot(run.seconds, h, run.guests);
    const start = steady as Snapshot | null;
    const failures: string[] = [];
    if (!start) failures.push(`the run ended (${run.seconds} s) before the steady state began at ${WARMUP} s`);
    failures.push(...(start?.problems ?? []).map((x) => `steady-state start: ${x}`), ...end.problems.map((x) => `end: ${x}`));
    if (start && end.wasmBytes > start.wasmBytes) failures.push(`host (Wasm) memory grew from ${start.wasmBytes} to ${end.wasmBytes} bytes`);
    if (start && end.hypervisorFrames > start.hypervisorFrames) failures.push(`hypervisor frames grew from ${start.hypervisorFrames} to ${end.hypervisorFrames}`);
    const active = start ? Object.fromEntries(Object.entries(end.activity).map(([k, v]) => [k, v - start.activity[k as keyof Snapshot['activity']]])) : {};
    for (const k of ['swapOuts', 'swapIns', 'balloonInflated', 'sharingScanned', 'cowBreaks']) {
      if (start && !(active[k] > 0)) failures.push(`no ${k} during the steady state: that mechanism was not active`);
    }
    if (end.sharedFrames === 0) failures.push('no shared frames at the end');
    if (end.instructions < INSNS) failures.push(`only ${end.instructions} instructions retired (${run.ended})`);
    for (const g of run.guests) {
      const c = run.checks.get(g.spec.name)!;
      if (c.problems.length) failures.push(`${g.spec.name}: ${c.problems.slice(0, 3).join(' | ')}`);
      if (!c.verified) failures.push(`${g.spec.name}: no checksum line verified`);
      if (g.m.stopped) failures.push(`${g.spec.name} stopped: ${g.m.stopped.stop} ${g.m.stopped.message ?? ''}`);
      if (g.m.balloon.violationCount) failures.push(`${g.spec.name}: ${g.m.balloon.violationCount} balloon protocol violations`);
    }
    const sw = h.swap?.stats();
    const summary = {
      ok: failures.length === 0, failures,
      command: 'npm run test:os-soak', instructionsTarget: INSNS, seed: SEED, ended: run.ended,
      wallSeconds: Math.round((Date.now() - wall0) / 100) / 10, virtualSeconds: run.seconds,
      instructions: end.instructions, mips: Math.round(end.instructions / ((Date.now() - wall0) / 1000) / 1e4) / 100,
      guests: run.guests.map((g) => ({
        name: g.spec.name, memMiB: g.spec.memMiB, cmdline: g.spec.cmdline, instructions: g.m.cpu.instructions(),
        checksumLinesVerified: run.checks.get(g.spec.name)!.verified, units: run.checks.get(g.spec.name)!.units,
        checksumProblems: run.checks.get(g.spec.name)!.problems.length,
        hostFrames: g.m.hostFrames, balloonFrames: g.m.balloon.size,
        balloonMaxFrames: Math.max(...run.series.filter((r) => r.guest === g.spec.name).map((r) => r.balloonFrames as number)),
        swappedPages: g.m.vm.p2m.count(P2M.SWAPPED, P2M.SWAPPED), outOfFramesExits: g.m.outOfFrames, doorbellRings: g.m.balloon.doorbellRings,
      })),
      host: {
        hostMiB: p.hostMiB, guestMiB: p.guests.reduce((s, g) => s + g.memMiB, 0),
        swapOuts: sw?.swapOuts ?? 0, swapIns: sw?.swapIns ?? 0, sharingSaved: h.sharing?.stats.saved ?? 0,
        sharingScanned: h.sharing?.stats.scanned ?? 0, cowBreaks: h.sharing?.stats.cowBreaks ?? 0,
        rebalances: h.mgr.stats.rebalances, ballooned: h.mgr.stats.ballooned, emergencySwaps: h.mgr.stats.emergencySwaps,
      },
      steadyStateActivity: active,
      steadyStateStart: start ? { ...start, problems: start.problems.length } : null,
      end: { ...end, problems: end.problems.length },
    };
    console.log(JSON.stringify(summary, null, 2));
    if (failures.length) process.exitCode = 1;
  } finally { h.close(); }
}

await main();
