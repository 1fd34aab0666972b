// Scale figures for npm run bench: how the wall-clock cost of one simulated second grows
// with the number of VMs, one balance period's policy work for 256 VMs × 1 GiB, and the
// overcommitted host (64 VMs × 256 MiB configured = 16 GiB on 2 GiB of host memory).

import { managedHost, MiB, type ManagedHost } from '../src/experiment/host.js';
import { IdleKernel } from '../guests/idle.js';
import { Filler } from '../guests/filler.js';
import type { Workload } from '../guests/kernel/kernel.js';
import { computeTargets, type TargetVm } from '../src/hypervisor/policy/policy.js';
import { planReclaim } from '../src/hypervisor/policy/reclaim.js';

const HZ = 2e6;
const VM_MIB = 256;

/**
 * A fleet whose work per simulated second is per VM (so the cost should grow linearly):
 * idle VMs and VMs that filled 2 % of their memory once and then idle, all under the
 * manager with sampling and page sharing. A busy VM would take all the CPU left over,
 * whatever the number of VMs, and hide the per-VM cost.
 */
function workloadFor(i: number, frames: number): Workload {
  return i % 2 === 1 ? new Filler(Math.floor(frames * 0.02)) : new IdleKernel();
}

/** n VMs of VM_MIB each on a host of hostMiB (swap sized by max − min, as ESX does). */
export async function fleet(n: number, hostMiB: number, seed = 1): Promise<ManagedHost> {
  const frames = VM_MIB * 256;
  const h = await managedHost({ seed, vmPoolMiB: hostMiB, hz: HZ, swapSlots: Math.max(1 << 16, n * frames),
    sharing: {}, sampler: { periodSeconds: 5 }, vms: Array.from({ length: n }, () => ({ memMiB: VM_MIB, mode: 'nested' as const })) });
  for (let i = 0; i < n; i++) {
    h.add({ name: `vm${i}`, memoryBytes: frames * 4096, mode: 'nested', balloon: true, workload: workloadFor(i, frames) },
      { min: 0, max: frames, shares: VM_MIB * 10 });
  }
  h.mgr.start();
  return h;
}

/** Wall-clock seconds per simulated second, after `warm` simulated seconds. */
export function secondCost(h: ManagedHost, seconds: number, warm = 1): number {
  h.sched.runFor(warm);
  const t0 = process.hrtime.bigint();
  h.sched.runFor(seconds);
  return Number(process.hrtime.bigint() - t0) / 1e9 / seconds;
}

/** One balance period's policy work for n VMs of `gib` GiB: targets, then the reclaim plan. */
export function balancePeriodMs(n: number, gib: number, reps = 5): { ms: number; stepwiseMsPerMove: number } {
  const frames = gib * 262144;
  const vms: TargetVm[] = Array.from({ length: n }, (_, i) => ({
    id: `vm${i}`, alloc: { min: (i % 4) * 16384, max: frames, shares: 1000 + (i % 7) * 250 },
    pages: Math.floor(frames * (0.2 + 0.6 * ((i * 37) % 101) / 101)), activeFraction: ((i * 13) % 11) / 10,
  }));
  const host = Math.floor(n * frames * 0.25);
  const runs: number[] = [];
  for (let r = 0; r < reps; r++) {
    const t0 = process.hrtime.bigint();
    const t = computeTargets(host, vms, 0.75);
    planReclaim('hard', vms.map((v) => ({ id: v.id, current: v.pages, target: t.frames.get(v.id)!, balloonable: v.pages })), {});
    runs.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  // The one-page-per-step method, timed over a bounded number of moves (the full run would
  // take n·frames·0.75 of them).
  const moves = 20000;
  const t0 = process.hrtime.bigint();
  computeTargets(host, vms, 0.75, { method: 'stepwise', maxMoves: moves });
  const stepwiseMsPerMove = Number(process.hrtime.bigint() - t0) / 1e6 / moves;
  return { ms: runs.sort((a, b) => a - b)[runs.length >> 1], stepwiseMsPerMove };
}

export async function scaleBench(): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  const bp = balancePeriodMs(256, 1);
  out.balancePeriod256x1GiBMs = bp.ms;
  out.balancePeriod256x1GiBStepwiseEstimateMs = bp.stepwiseMsPerMove * 256 * 262144 * 0.75;
  for (const n of [1, 4, 16, 64]) {
    const h = await fleet(n, 2048);
    try { out[`simSecondWallSec${n}Vms`] = secondCost(h, 2, 6); } finally { h.close(); } // after the fill and first sharing passes
  }
  out.simSecondPerVmGrowth64over16 = (out.simSecondWallSec64Vms / 64) / (out.simSecondWallSec16Vms / 16);
  return out;
}
