// The memory manager: the paper's dynamic reallocation (§6.3) tying the mechanisms to
// the policy on the scheduler's virtual clock.
//
//   every second        sharing scan (rate-limited), sampler periods, time-series record
//   on a crossing into a worse free-memory state (checked every second), and
//   every balance period
//     f_i   ← sampler estimate (active fraction; 1 when sampling is off)
//     T_i   ← computeTargets(budget, {min, max, shares, P_i = frames held, f_i}, τ)
//             (min-funding revocation with the idle memory tax; budget keeps the
//             "high" free threshold and the shared frames out)
//     state ← FreeMemoryStates(free fraction of the VM pool)   high / soft / hard / low
//     plan  ← planReclaim(state, current vs target)            balloon / swap / block
//     apply: balloon targets (inflate to shed the excess; deflate VMs below target),
//            per-VM swap targets for the swap daemon (random victims, written
//            asynchronously in clusters), block VMs above target in "low"
//   on OUT_OF_FRAMES    swap from the VM furthest above its target (any VM with swappable
//                       frames after that)
//
// The mechanisms are optional, so one host can run with only ballooning, only swapping or
// only sharing (the reclamation comparison). "Frames held" P_i counts the VM's private
// host frames; shared frames belong to page sharing and are outside every VM's P.

import type { Hypervisor } from '../monitor/hypervisor.js';
import type { Scheduler } from './scheduler.js';
import type { Vm } from '../monitor/vm.js';
import { SHARED_OWNER } from '../monitor/frames.js';
import { P2M } from '../monitor/p2m.js';
import { computePoolTargets, poolFloor } from './pools.js';
import { admit, computeTargets, flatten, mibText, validateAllocation, modelOverhead, DEFAULT_TAU, NO_OVERHEAD, type VmAllocation, type HostCapacity, type PoolSpec, type FlatPools, type OverheadModel } from './policy.js';
import { FreeMemoryStates, FREE_STATES, nextState, planReclaim, vmBudget, DEFAULT_THRESHOLDS, type FreeState, type FreeThresholds, type VmAction } from './reclaim.js';
import type { PageSharing } from '../pagers/sharing.js';
import type { HostSwap } from '../pagers/swap.js';
import type { ActiveSampler } from '../pagers/sampling.js';
import { SwapDaemon, type SwapDaemonOptions } from '../pagers/swap-daemon.js';

/**
 * What the manager needs of a VM's balloon (a BalloonDevice is one): whether its driver is
 * running, its size and target in 4 KiB frames, and a way to set the target.
 */
export interface BalloonTarget {
  readonly protocolState: 'stopped' | 'running' | 'reset-pending';
  readonly size: number;
  readonly target: number;
  setTarget(frames: number): void;
}

/** What the manager needs of a VM it manages (a GuestVm is one). */
export interface ManagedVm {
  readonly name: string;
  readonly vm: Vm;
  /** The VM's balloon device (absent: the VM cannot be ballooned). */
  readonly device?: BalloonTarget | null;
  /** Set in the "low" state for VMs above target: they do not run. */
  blocked: boolean;
  /**
   * VM execution time in seconds (ESX samples over it, §5.3): time the VM ran or sat
   * halted, not time it waited for the CPU or was blocked. Absent: the scheduler's clock.
   */
  readonly executionSeconds?: number;
}

export interface ManagerOptions {
  hv: Hypervisor;
  sched: Scheduler;
  /** Idle memory tax rate τ in [0, 1) (default 0.75). */
  tau?: number;
  thresholds?: FreeThresholds;
  /** Seconds between reallocations (default 15, ESX's Mem/BalancePeriod). */
  balancePeriod?: number;
  sharing?: PageSharing;
  swap?: HostSwap;
  sampler?: ActiveSampler;
  /** The swap daemon that writes rebalance swap-outs (cluster size, disk); default SwapDaemon's. */
  swapDaemon?: Omit<SwapDaemonOptions, 'onSwapped'>;
  /** Use balloon devices (default true). */
  balloon?: boolean;
  /** Balloon in the hard state even with swapFirstWhenHard (for comparing techniques on one host). */
  balloonFirst?: boolean;
  /**
   * Largest balloon as a fraction of the VM's max (ESX 2.5 sched.mem.maxmemctl, default half
   * of max; vSphere's Mem.CtlMaxPercent is 65 %). Beyond it the host swaps. Default 0.5.
   */
  balloonMaxFraction?: number;
  /** The paper's hard state: swap only, no ballooning (default false: hard balloons first, see rebalance). */
  swapFirstWhenHard?: boolean;
  /** Most frames ballooned / swapped per VM per reallocation (default unlimited). */
  balloonPerRound?: number;
  swapPerRound?: number;
  /**
   * Per-VM overhead memory beyond the paging structures (ESX: a fixed part plus a per-MiB
   * part), taken from the hypervisor region at admission (default none). Admission control
   * reserves it plus the VM's table reserve (its EPT and shadow pools, Vm.tableReserve) in
   * the hypervisor region, and the VM's floor in the VM pool.
   */
  overhead?: OverheadModel;
  /** Seconds between time-series records (default 1). */
  recordPeriod?: number;
  /** Reallocate as soon as (checked every second) free memory crosses into a worse state (default true). */
  watchFreeMemory?: boolean;
  /**
   * Resource pools: a tree whose leaves name managed VMs ({ vm: name, shares }); pools have
   * shares, and optionally a min, max or limit on their members' total. Targets come from
   * min-funding revocation level by level (pools.ts): memory a pool's members leave unused
   * goes to their siblings in the pool before other pools.
   */
  pools?: PoolSpec;
}

export interface VmRecord {
  t: number; vm: string; frames: number; target: number; balloon: number; swapped: number;
  shared: number; active: number; blocked: number;
}
export interface HostRecord { t: number; free: number; state: FreeState; sharedFrames: number }

interface Entry {
  m: ManagedVm; alloc: VmAllocation; target: number; vmTime?: number; overhead: number;
  /** Frames the last reallocation asked the swap daemon for, and whether they replace balloon inflation. */
  swapWant: number; swapCoversBalloon: boolean;
  /** Stops following the VM's memory size (hot-add). */
  unwatch?: () => void;
}

export class MemoryManager {
  tau: number;
  readonly states: FreeMemoryStates;
  readonly vmSeries: VmRecord[] = [];
  readonly hostSeries: HostRecord[] = [];
  readonly stats = { rebalances: 0, eventRebalances: 0, ballooned: 0, swappedOut: 0, emergencySwaps: 0, blockedRounds: 0, memoryAddRefused: 0 };
  private readonly entries: Entry[] = [];
  private readonly pools: FlatPools | null;
  private started = false;
  private lastRebalance = -1; // scheduler time of the last reallocation
  /** Writes the rebalance's swap-outs asynchronously (absent without a swap). */
  readonly swapDaemon: SwapDaemon | null;

  constructor(private readonly o: ManagerOptions) {
    this.tau = o.tau ?? DEFAULT_TAU;
    if (o.balloonMaxFraction !== undefined && !(o.balloonMaxFraction >= 0 && o.balloonMaxFraction <= 1)) {
      throw new RangeError(`balloonMaxFraction must be in [0, 1], got ${o.balloonMaxFraction}`);
    }
    if (!(this.tau >= 0 && this.tau < 1)) throw new RangeError(`tau must be in [0, 1), got ${this.tau}`);
    this.states = new FreeMemoryStates(o.thresholds ?? DEFAULT_THRESHOLDS);
    this.pools = o.pools ? flatten(o.pools) : null;
    // Share before swap (ESX §4.3): a victim whose content is already shared is not written.
    const sharing = o.sharing;
    if (o.swap && sharing) o.swap.shareFirst = (vm, gfn) => sharing.shareNow(vm, [gfn]) > 0;
    this.swapDaemon = o.swap ? new SwapDaemon(o.swap, o.hv, o.sched, { ...o.swapDaemon, onSwapped: (vm, n) => this.swapped(vm, n) }) : null;
  }

  /** Changes the idle memory tax rate (takes effect at the next reallocation). */
  setTau(tau: number): void {
    if (!(tau >= 0 && tau < 1)) throw new RangeError(`tau must be in [0, 1), got ${tau}`);
    this.tau = tau;
  }

  /** Frames in the host's VM pool (the memory VMs and shared frames come from). */
  get totalFrames(): number { return this.o.hv.frames.hypervisorStart; }
  get freeFrames(): number { return this.o.hv.frames.counts().vmFree; }

  /**
   * Admits a VM with its allocation parameters (frames) or throws with the reason:
   * the sum of mins plus overheads must fit host memory, max − min must fit the swap
   * (without a swap, as on ESX without a swap file, only max = min VMs are admitted).
   */
  add(m: ManagedVm, alloc: VmAllocation): void {
    validateAllocation(alloc, m.name);
    if (this.entries.some((e) => e.m.name === m.name)) throw new Error(`a VM named "${m.name}" is already managed`);
    if (this.entries.some((e) => e.m.vm === m.vm)) throw new Error(`${m.name}: VM ${m.vm.id} is already managed`);
    if (alloc.max > m.vm.frameCount) throw new RangeError(`${m.name}: max ${alloc.max} frames is above its memory size ${m.vm.frameCount}`);
    if (this.pools && !this.pools.shares.has(m.name)) throw new Error(`${m.name} is not in the resource-pool tree`);
    const frames = this.o.hv.frames;
    const host: HostCapacity = {
      frames: this.totalFrames, overheadFrames: frames.total - frames.hypervisorStart,
      swapFrames: this.o.swap ? this.o.swap.file.capacity : 0,
    };
    const memory = modelOverhead(this.o.overhead ?? NO_OVERHEAD, m.vm.frameCount);
    const overhead = memory + m.vm.tableReserve;
    const a = admit(host, this.entries.map((e) => ({ ...e.alloc, overhead: e.overhead })), { ...alloc, overhead });
    if (!a.ok) throw new Error(`${m.name} not admitted: ${a.reason}`);
    if (this.o.pools) { // a pool's min reserves memory for its members together
      const floor = poolFloor(this.o.pools, [...this.entries.map((e) => ({ id: e.m.name, alloc: e.alloc })), { id: m.name, alloc }]
        .map((v) => ({ ...v, pages: 0, activeFraction: 1 })));
      if (floor > this.totalFrames) {
        throw new Error(`${m.name} not admitted: not enough unreserved memory: the pools' mins and the VMs' floors would reserve ` +
          `${mibText(floor)}, host has ${mibText(this.totalFrames)}`);
      }
    }
    try { // all or nothing: a mechanism that refuses the VM leaves no trace in the others
      this.o.sharing?.addVm(m.vm);
      this.o.sampler?.attach(m.vm, m.executionSeconds ?? this.o.sched.seconds);
      this.o.swap?.attach(m.vm);
      // Overhead memory is taken last: allocOverhead is all or nothing, so a failure here leaves none.
      if (memory > m.vm.stats.overheadFrames) m.vm.allocOverhead(memory - m.vm.stats.overheadFrames);
    } catch (e) {
      if (this.o.sampler?.has(m.vm)) this.o.sampler.stop(m.vm);
      this.o.sharing?.detach(m.vm);
      throw e;
    }
    const e: Entry = { m, alloc, target: alloc.max, vmTime: m.executionSeconds, overhead, swapWant: 0, swapCoversBalloon: false };
    e.unwatch = m.vm.watchResize((old, now) => this.memoryAdded(e, now - old));
    this.entries.push(e);
    this.retarget();
  }

  /**
   * Memory hot-add (Vm.hotAdd): the VM's max grows by the frames added (ESX sizes max by
   * the configured memory), min and shares stay, and the targets are recomputed. Admission
   * is asked again with the larger max and the larger overhead (more EPT to map the new
   * gfns); if the host cannot admit it, max stays and memoryAddRefused counts it.
   */
  private memoryAdded(e: Entry, added: number): void {
    const alloc = { ...e.alloc, max: Math.min(e.m.vm.frameCount, e.alloc.max + added) };
    const frames = this.o.hv.frames;
    const host: HostCapacity = {
      frames: this.totalFrames, overheadFrames: frames.total - frames.hypervisorStart,
      swapFrames: this.o.swap ? this.o.swap.file.capacity : 0,
    };
    const memory = modelOverhead(this.o.overhead ?? NO_OVERHEAD, e.m.vm.frameCount);
    const overhead = memory + e.m.vm.tableReserve;
    const others = this.entries.filter((x) => x !== e).map((x) => ({ ...x.alloc, overhead: x.overhead }));
    if (!admit(host, others, { ...alloc, overhead }).ok) { this.stats.memoryAddRefused++; return; }
    if (memory > e.m.vm.stats.overheadFrames) e.m.vm.allocOverhead(memory - e.m.vm.stats.overheadFrames);
    e.alloc = alloc;
    e.overhead = overhead;
    this.retarget();
  }

  /** Stops managing a VM (before it is destroyed); returns whether it was managed. */
  remove(m: ManagedVm): boolean {
    const i = this.entries.findIndex((e) => e.m === m);
    if (i < 0) return false;
    this.entries[i].unwatch?.();
    this.entries.splice(i, 1);
    this.swapDaemon?.forget(m.vm);
    if (this.o.sampler?.has(m.vm) && !m.vm.isDestroyed) this.o.sampler.stop(m.vm);
    m.blocked = false;
    this.retarget();
    return true;
  }

  /** Hangs the periodic work on the scheduler's clock. */
  start(): this {
    if (this.started) throw new Error('the memory manager is already started');
    this.started = true;
    this.retarget();
    const s = this.o.sched;
    s.every(1, (now) => this.second(now / s.hz));
    s.every(this.o.balancePeriod ?? 15, () => this.rebalance());
    s.every(this.o.recordPeriod ?? 1, (now) => this.record(now / s.hz));
    this.record(s.seconds);
    return this;
  }

  /** Forgets VMs destroyed without remove(): the timers must not touch them. */
  private prune(): void {
    for (const e of this.entries.filter((x) => x.m.vm.isDestroyed)) this.remove(e.m);
  }

  private second(now: number): void {
    this.prune();
    this.o.sharing?.tick(now);
    // Sampling periods run on each VM's execution time, not on the shared clock.
    if (this.o.sampler) for (const e of this.entries) this.o.sampler.tick(e.m.vm, this.vmTime(e, now));
    // A blocked VM runs again as soon as reclamation brought it down to its target.
    for (const e of this.entries) if (e.m.blocked && this.held(e) <= e.target) e.m.blocked = false;
    // Crossing into a worse free-memory state is an event: reallocate now, not at the period's end
    // (unless a reallocation just ran at this very instant).
    const rank = FREE_STATES.indexOf(this.states.state);
    if ((this.o.watchFreeMemory ?? true) && this.lastRebalance !== this.o.sched.now && FREE_STATES.indexOf(nextState(this.states.state, this.freeFrames / this.totalFrames, this.states.thresholds)) > rank) {
      this.stats.eventRebalances++;
      this.rebalance();
    }
  }

  /**
   * VM e's execution time at the timer's due time `now` (seconds): the timer may fire late
   * by the rest of a guest's batch, time the VM may have run; never earlier than last time.
   */
  private vmTime(e: Entry, now: number): number {
    if (e.m.executionSeconds === undefined) return now;
    const late = Math.max(0, this.o.sched.seconds - now);
    e.vmTime = Math.max(e.vmTime ?? 0, e.m.executionSeconds - late);
    return e.vmTime;
  }

  /** Recomputes every VM's target (after a VM joins or leaves, and at each reallocation). */
  private retarget(): void {
    const targets = this.computeTargets();
    for (const e of this.entries) e.target = targets.get(e.m.name)!;
  }

  /** Private host frames VM `e` holds now (its P). */
  private held(e: Entry): number { return this.o.hv.frames.usedBy(e.m.vm.id); }

  activeFraction(m: ManagedVm): number { return this.o.sampler?.has(m.vm) ? this.o.sampler.estimate(m.vm) : 1; }

  /** Targets from min-funding revocation with the idle tax. */
  computeTargets(): Map<string, number> {
    const shared = this.o.hv.frames.usedBy(SHARED_OWNER);
    return this.targetsFor(vmBudget(this.totalFrames, shared, this.o.thresholds ?? DEFAULT_THRESHOLDS));
  }

  private targetsFor(budget: number): Map<string, number> {
    const vms = this.entries.map((e) => ({ id: e.m.name, alloc: e.alloc, pages: this.held(e), activeFraction: this.activeFraction(e.m) }));
    // With pools, min-funding revocation runs level by level (pools.ts): a pool's members
    // divide the pool's memory first. Every VM must be in the tree.
    if (this.o.pools) return computePoolTargets(budget, this.o.pools, vms, this.tau).frames;
    return computeTargets(budget, vms, this.tau).frames;
  }

  /** One reallocation: targets, free-memory state, then balloon / swap / block. */
  rebalance(): FreeState {
    this.stats.rebalances++;
    this.lastRebalance = this.o.sched.now;
    this.prune();
    this.retarget();
    for (const e of this.entries) { e.swapWant = 0; e.swapCoversBalloon = false; }
    const state = this.states.nextFrames(this.freeFrames, this.totalFrames);
    const balloonOn = this.o.balloon ?? true;
    // Hard balloons as soft does, swapping only what the balloons cannot take, unless
    // swapFirstWhenHard (the paper's "hard: rely on paging"): a guest that keeps touching
    // its memory faults host-swapped pages straight back, so swapping alone never brings it
    // down to target (measured on Figure 7's page-cache guest); only its balloon makes the
    // guest give pages up. Low swaps and blocks, and sets the balloons (below): blocked
    // guests cannot run their balloon drivers. Without a swap, ballooning is all there is.
    const hardBalloons = balloonOn && (this.o.balloonFirst || !this.o.swapFirstWhenHard) && state === 'hard';
    const planState = !this.o.swap && state !== 'high' ? 'soft' : hardBalloons ? 'soft' : state;
    const balloonable = (e: Entry) =>
      balloonOn && e.m.device?.protocolState === 'running' ? Math.max(0, this.balloonLimit(e) - e.m.device.size) : 0;
    const opts = { balloonPerRound: this.o.balloonPerRound, swapPerRound: this.o.swapPerRound };
    const plan = planReclaim(planState, this.entries.map((e) => ({
      id: e.m.name, current: this.held(e), target: e.target, balloonable: balloonable(e) })), opts);
    this.apply(plan.actions);
    // Low swaps and blocks. An active guest (sampled f ≥ ½) would fault the swapped pages
    // straight back (it stays above target and holds the host in "low" for ever), so its
    // balloon is set as well: once it runs again it gives the excess up itself. An idle
    // one is left to the swap (whose swap-outs cancel as much pending balloon inflation:
    // swapCoversBalloon), so swap and balloon do not reclaim the same excess twice.
    if (balloonOn && planState === 'low') {
      for (const a of plan.actions) {
        const e = this.entries.find((x) => x.m.name === a.id)!, d = e.m.device;
        if (d?.protocolState !== 'running') continue;
        if (this.activeFraction(e.m) >= 0.5 && d.target <= d.size) {
          d.setTarget(Math.min(this.balloonLimit(e), d.size + a.excess));
          e.swapCoversBalloon = false; // the daemon's swap-outs, done later, must not cancel this balloon
        }
      }
    }
    // Limits (max, limit, pool limits) hold even when memory is plentiful: a VM above its
    // cap is reclaimed as in the soft state.
    if (state === 'high') {
      const caps = this.caps();
      this.apply(planReclaim('soft', this.entries.map((e) => ({
        id: e.m.name, current: this.held(e), target: caps.get(e.m.name)!, balloonable: balloonable(e) })), opts).actions);
    }
    const byName = new Map(this.entries.map((e) => [e.m.name, e]));
    // VMs below target get memory back: deflate their balloons.
    for (const b of plan.below) {
      const d = byName.get(b.id)!.m.device;
      if (d && d.target > 0) d.setTarget(Math.max(0, d.target - b.deficit));
    }
    // "low": every VM above its target stops until reclamation catches up (if anything can reclaim).
    // Only swapping reclaims from a blocked guest (its balloon driver cannot run).
    const blocked = new Set(state === 'low' && this.o.swap !== undefined
      ? this.entries.filter((e) => this.held(e) > e.target).map((e) => e.m.name) : []);
    for (const e of this.entries) e.m.blocked = blocked.has(e.m.name);
    if (blocked.size) this.stats.blockedRounds++;
    // The swap daemon's targets: what this round asks for, less what is being written now
    // (those pages are still resident, so they are in the excess the plan saw).
    for (const e of this.entries) this.swapDaemon?.setTarget(e.m.vm, Math.max(0, e.swapWant - this.swapDaemon.inFlight(e.m.vm)));
    return state;
  }

  /** The swap daemon freed n frames of vm (written out, or shared instead). */
  private swapped(vm: Vm, n: number): void {
    this.stats.swappedOut += n;
    const e = this.entries.find((x) => x.m.vm === vm);
    if (e?.swapCoversBalloon) this.swapCoversBalloon(e, n);
  }

  /**
   * n frames of VM e were just swapped out: they cover n frames of the excess its balloon
   * was still inflating toward, so that much of the pending inflation is cancelled (else
   * swap and balloon reclaim the same excess twice, and an idle guest never takes it back).
   */
  private swapCoversBalloon(e: Entry, n: number): void {
    const d = e.m.device;
    if (d && d.target > d.size) d.setTarget(Math.max(d.size, d.target - n));
  }

  /** The largest balloon VM e may have (maxmemctl), in frames. */
  private balloonLimit(e: Entry): number {
    const f = this.o.balloonMaxFraction ?? 0.5;
    return Math.min(e.m.vm.frameCount, Math.floor(e.alloc.max * f));
  }

  /** Balloon and swap what a plan says. */
  private apply(actions: readonly VmAction[]): void {
    const byName = new Map(this.entries.map((e) => [e.m.name, e]));
    for (const a of actions) {
      const e = byName.get(a.id)!;
      if (a.balloon > 0 && e.m.device) {
        // The balloon should hold what it holds now plus the excess; repeated rounds converge
        // as the guest gives pages (idempotent while the driver catches up).
        e.m.device.setTarget(Math.min(this.balloonLimit(e), e.m.device.size + a.balloon));
        this.stats.ballooned += a.balloon;
      }
      if (a.swap > 0 && this.swapDaemon) {
        // Written by the swap daemon over the next moments (rebalance sets its targets).
        e.swapWant = Math.max(e.swapWant, a.swap);
        e.swapCoversBalloon = a.balloon === 0;
      }
    }
  }

  /** What each VM may hold whatever the free memory: its max / limit and its pools' limits. */
  private caps(): Map<string, number> {
    const ceilings = this.entries.reduce((a, e) => a + Math.min(e.alloc.max, e.alloc.limit ?? e.alloc.max), 0);
    return this.targetsFor(ceilings);
  }

  /**
   * The host pool ran dry while a VM (`_requester`) needed a frame: swap out from the VM
   * furthest above its target. Returns frames freed (0: no swap, or nothing swappable).
   */
  reclaimNow(_requester: ManagedVm, need: number): number {
    if (!this.o.swap) return 0;
    this.prune();
    // Furthest above target first; any VM with swappable frames after that (targets may be
    // stale); names break ties by code units, not locale.
    const order = this.entries.map((e) => ({ e, excess: this.held(e) - e.target }))
      .filter((x) => this.held(x.e) > 0)
      .sort((a, b) => b.excess - a.excess || (a.e.m.name < b.e.m.name ? -1 : a.e.m.name > b.e.m.name ? 1 : 0));
    for (const { e } of order) {
      const n = this.o.swap.swapOut(e.m.vm, Math.max(need, 16));
      if (n > 0) {
        this.stats.emergencySwaps += n;
        // These swap-outs count toward the swap daemon's target for the VM; they replace
        // balloon inflation only where the last plan swapped instead of ballooning (else the
        // balloon the plan asked for would be cancelled before its driver ever polled).
        const d = this.swapDaemon, left = d ? d.pending(e.m.vm) : 0;
        if (d && left > 0) d.setTarget(e.m.vm, Math.max(0, left - n));
        if (!d || e.swapCoversBalloon) this.swapCoversBalloon(e, n);
        return n;
      }
    }
    return 0;
  }

  private record(t: number): void {
    const frames = this.o.hv.frames;
    this.prune();
    for (const e of this.entries) {
      const vm = e.m.vm;
      this.vmSeries.push({
        t: round(t), vm: e.m.name, frames: this.held(e), target: e.target, balloon: e.m.device?.size ?? 0,
        swapped: vm.p2m.count(P2M.SWAPPED, P2M.SWAPPED), shared: vm.p2m.count(P2M.SHARED | P2M.PRESENT, P2M.SHARED | P2M.PRESENT),
        active: round(this.activeFraction(e.m)), blocked: e.m.blocked ? 1 : 0,
      });
    }
    this.hostSeries.push({ t: round(t), free: frames.counts().vmFree, state: this.states.state, sharedFrames: frames.usedBy(SHARED_OWNER) });
  }

  /** The VMs under management with their parameters and current targets. */
  list(): { m: ManagedVm; alloc: VmAllocation; target: number }[] { return this.entries.map((e) => ({ ...e })); }
}

const round = (x: number): number => Math.round(x * 1000) / 1000;
