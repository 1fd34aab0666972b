// A managed host for the paper experiments: a hypervisor whose VM pool holds `vmPoolMiB`,
// a scheduler, the memory manager with the mechanisms asked for, and GuestVms on it.

import { Hypervisor } from '../hypervisor/monitor/hypervisor.js';
import { Scheduler } from '../hypervisor/policy/scheduler.js';
import { MemoryManager, type ManagerOptions } from '../hypervisor/policy/manager.js';
import { HostSwap } from '../hypervisor/pagers/swap.js';
import { PageSharing, type SharingOptions } from '../hypervisor/pagers/sharing.js';
import { ActiveSampler, type SamplerOptions } from '../hypervisor/pagers/sampling.js';
import { GuestVm, type GuestVmOptions } from '../board/guest-vm.js';
import { modelOverhead, type VmAllocation, type PoolSpec, type OverheadModel } from '../hypervisor/policy/policy.js';
import { tableReserveFrames } from '../hypervisor/monitor/paging.js';
import type { VmMode } from '../hypervisor/monitor/types.js';
import { MiB } from './units.js';

export { MiB };
const HV_MIB = 4; // the smallest hypervisor region (EPT and shadow tables, overhead memory)

/**
 * MiB of hypervisor region that holds the overhead admission control reserves for these
 * VMs (their EPT and shadow pools, Vm.tableReserve), at least HV_MIB. The region sits on
 * top of the VM pool, so its size changes no VM's budget.
 */
export function hypervisorMiBFor(vms: readonly { memMiB: number; mode: VmMode }[], overhead?: OverheadModel): number {
  const frames = vms.reduce((a, v) => a + tableReserveFrames(Math.ceil(v.memMiB * 256), v.mode) +
    (overhead ? modelOverhead(overhead, Math.ceil(v.memMiB * 256)) : 0), 0);
  return Math.max(HV_MIB, Math.ceil(frames / 256));
}
/** Default slots of a managed host's swap file (256 MiB): admission reserves max − min of every VM in it. */
export const SWAP_SLOTS = 1 << 16;

export interface HostOptions {
  seed: number;
  vmPoolMiB: number;
  hz: number;
  tau?: number;
  balancePeriod?: number;
  balloon?: boolean;
  balloonFirst?: boolean;
  swap?: boolean;
  /** Swap file slots (default SWAP_SLOTS); ESX sizes swap by max − min of the VMs, so large hosts need more. */
  swapSlots?: number;
  sharing?: SharingOptions | false;
  sampler?: SamplerOptions | false;
  balloonPerRound?: number;
  swapPerRound?: number;
  pools?: PoolSpec;
  watchFreeMemory?: boolean;
  /** The VMs that will be added: the hypervisor region is sized for their overhead (hypervisorMiBFor). */
  vms?: readonly { memMiB: number; mode: VmMode }[];
  /** Per-VM overhead memory beyond the paging structures (ESX: fixed + per MiB); default none. */
  overhead?: OverheadModel;
}

export interface ManagedHost {
  hv: Hypervisor; sched: Scheduler; mgr: MemoryManager; guests: GuestVm[];
  swap?: HostSwap; sharing?: PageSharing; sampler?: ActiveSampler;
  add(o: Omit<GuestVmOptions, 'hv' | 'hz' | 'reclaim'>, alloc: VmAllocation, shares?: number): GuestVm;
  close(): void;
}

export async function managedHost(o: HostOptions): Promise<ManagedHost> {
  const hvMiB = hypervisorMiBFor(o.vms ?? [], o.overhead);
  const hv = await Hypervisor.create({ hostMemoryBytes: (o.vmPoolMiB + hvMiB) * MiB, hypervisorBytes: hvMiB * MiB });
  const sched = new Scheduler({ hz: o.hz, slice: Math.round(o.hz / 100) });
  const swap = o.swap === false ? undefined : new HostSwap(hv, { seed: o.seed, capacity: o.swapSlots ?? SWAP_SLOTS });
  const sharing = o.sharing === false || o.sharing === undefined ? undefined : new PageSharing(hv, { seed: o.seed, ...o.sharing });
  const sampler = o.sampler === false ? undefined : new ActiveSampler({ seed: o.seed, ...o.sampler });
  const mo: ManagerOptions = {
    hv, sched, tau: o.tau, balancePeriod: o.balancePeriod, balloon: o.balloon, balloonFirst: o.balloonFirst, swap, sharing, sampler,
    balloonPerRound: o.balloonPerRound, swapPerRound: o.swapPerRound, pools: o.pools,
    watchFreeMemory: o.watchFreeMemory, overhead: o.overhead,
  };
  const mgr = new MemoryManager(mo);
  const guests: GuestVm[] = [];
  return {
    hv, sched, mgr, guests, swap, sharing, sampler,
    add(go, alloc, shares) {
      const g = new GuestVm({ ...go, hv, hz: o.hz, reclaim: (gv, need) => mgr.reclaimNow(gv, need) });
      try {
        mgr.add(g, alloc);
      } catch (e) {
        hv.destroyVm(g.vm); // refused by admission control: it must not run (or hold frames) unmanaged
        throw e;
      }
      g.attach(sched, shares ?? alloc.shares);
      swap?.watchGuest(g.vm, g.kernel.swap); // double paging: the guest pages out what the host swapped
      guests.push(g);
      return g;
    },
    close() { swap?.close(); },
  };
}
