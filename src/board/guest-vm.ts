// A whole guest machine on the hypervisor: one VM, its port bus with the backdoor port
// and the strict balloon device, a booted guest kernel running a workload, and the
// kernel's balloon driver over the kernel's own frame allocator. It is a Runnable, so
// several of them share a CPU on the scheduler's virtual clock, and the balloon driver
// polls the device once per simulated second on that clock (as vmw_balloon's worker).
// The poll is a timer interrupt that wakes the guest: the driver's work (its hypercalls,
// its page allocations and the guest page-outs they cause) runs in the guest's next
// slice and is charged to the guest's CPU like any other guest work.
//
//   Scheduler ── step(budget) ──▶ GuestVm ── Kernel.step ──▶ Vcpu.run ──▶ MMU core
//        │                           │  IO exits ─▶ PortBus; port 0x5670 with the vCPU's
//        │                           │  registers ─▶ BackdoorInl ─▶ BalloonDevice
//        └─ every 1 s: balloon due ─▶ (next slice) driver.tick()   host exits ─▶ hostExit
//
// Time: the kernel's clock follows the scheduler's (so workloads that read k.now() see the
// shared simulated time, not only their own CPU time). A HLT blocks the guest until its
// next timer tick (`tickSeconds`), as a tickful kernel idles between interrupts.

import type { Hypervisor } from '../hypervisor/monitor/hypervisor.js';
import type { Vm } from '../hypervisor/monitor/vm.js';
import type { VmMode } from '../hypervisor/monitor/types.js';
import type { AccessBatch } from '../core/batch.js';
import type { CpuOptions } from '../core/cpu.js';
import type { Runnable, Scheduler } from '../hypervisor/policy/scheduler.js';
import { PortBus } from '../devices/bus.js';
import { BackdoorInl } from '../devices/backdoor-inl.js';
import { classifyBalloonExit, type BalloonDevice, type BalloonViolation } from '../devices/balloon.js';
import { createBalloonDevice } from './balloon.js';
import { BalloonStats } from '../devices/balloon-stats.js';
import type { Kernel, Workload } from '../../guests/kernel/kernel.js';
import { bootKernel, vmPlatform, type BootKernelOptions } from './boot.js';
import { BalloonDriver, type PinnedAllocator } from '../../guests/kernel/balloon.js';
import { DIRECT_MAP, type GuestExit } from '../../guests/kernel/kcpu.js';

export interface GuestVmOptions {
  hv: Hypervisor;
  name: string;
  memoryBytes: number | bigint;
  mode: Exclude<VmMode, 'native'>;
  workload: Workload;
  /** Cycles per simulated second; must equal the scheduler's (default 2e9). */
  hz?: number;
  /** Timer tick of the guest kernel: a HLT idles until the next one (default 4 ms). */
  tickSeconds?: number;
  /** Load a balloon driver (default true). */
  balloon?: boolean;
  /**
   * Capabilities the driver requests (default basic | batched | 2 MiB). With 2 MiB pages the
   * driver rounds a change up to whole 2 MiB pages, as vmw_balloon does, so the balloon can
   * overshoot a small target by up to 511 frames (its deflate slack then keeps it there).
   */
  balloonCapabilities?: number;
  /** Let balloon allocations make the guest page out (Linux's sleeping allocation; default true). */
  balloonReclaims?: boolean;
  kernel?: Partial<Omit<BootKernelOptions, 'hv' | 'vm' | 'bus' | 'onHostExit' | 'hz' | 'reclaimHost' | 'backdoor'>>;
  cpu?: CpuOptions;
  /** EPT accessed/dirty flags (default on; guest walks then write-touch page-table pages). */
  eptAd?: boolean;
  /**
   * The host pool ran dry while this guest needed a frame: free some (swap, balloon) and
   * return how many; 0 means nothing could be freed and the run fails with a clear error.
   */
  reclaim?(g: GuestVm, need: number): number;
}

export interface GuestVmCounters {
  /** Guest touches of ballooned pages the device caught. */
  balloonTouches: number;
  /** OUT_OF_FRAMES exits handled by reclaiming host frames. */
  outOfFrames: number;
  /** Slices this guest was offered while blocked (reclamation state "low"). */
  blockedSlices: number;
}

export class GuestVm implements Runnable {
  readonly name: string;
  readonly vm: Vm;
  readonly bus = new PortBus();
  readonly device: BalloonDevice;
  /** The balloon backdoor: one `inl` on port 0x5670 with the vCPU's registers (as memvisor-os's driver uses it). */
  readonly backdoor: BackdoorInl;
  readonly balloonStats: BalloonStats;
  readonly kernel: Kernel;
  readonly driver: BalloonDriver | null;
  readonly workload: Workload;
  readonly hz: number;
  readonly counters: GuestVmCounters = { balloonTouches: 0, outOfFrames: 0, blockedSlices: 0 };
  readonly violations: BalloonViolation[] = [];
  /** Set by the memory manager in the "low" state: the guest does not run. */
  blocked = false;
  /** The workload returned false: the guest only idles from now on. */
  finished = false;
  private wakeAt = 0;         // scheduler time at which a halted guest runs again
  private sched: Scheduler | null = null;
  private readonly tick: number;
  /** Cycles the balloon driver's work used (inside this guest's slices, charged to it). */
  driverCycles = 0;
  /** The driver's timer fired: it runs at the start of the guest's next slice. */
  private balloonDue = false;
  /** VM execution time in cycles: slices run plus time halted (not time waiting for the CPU or blocked). */
  private execCycles = 0;
  private haltedSince = -1;

  constructor(private readonly o: GuestVmOptions) {
    this.name = o.name;
    this.hz = o.hz ?? 2e9;
    this.tick = Math.round((o.tickSeconds ?? 0.004) * this.hz);
    this.workload = o.workload;
    this.vm = o.hv.createVm({ memoryBytes: o.memoryBytes, mode: o.mode, cpu: o.cpu, eptAd: o.eptAd });
    this.balloonStats = new BalloonStats({ get target() { return dev.target; }, get size() { return dev.size; } },
      () => this.seconds);
    const dev = createBalloonDevice(this.vm, o.hv.frames, { events: this.balloonStats });
    this.device = dev;
    this.backdoor = new BackdoorInl(dev);
    this.kernel = bootKernel({ ...o.kernel, hv: o.hv, vm: this.vm, bus: this.bus, hz: this.hz, backdoor: this.backdoor,
      onHostExit: (x, b) => this.hostExit(x, b), reclaimHost: (n) => this.o.reclaim?.(this, n) ?? 0 }).kernel;
    const kernelFrames = () => this.kernel.frames.frameCount;
    this.driver = o.balloon === false ? null : new BalloonDriver({
      platform: vmPlatform(o.hv, this.vm, this.bus, { vcpu: o.kernel?.vcpu, onHostExit: (x) => this.hostExit(x, null), backdoor: this.backdoor }),
      alloc: this.pinnedAllocator(), batch: o.hv.machine.createBatch(1100),
      // the guest's own idea of its memory (totalram_pages), which follows a hot-add
      directMap: (gfn) => DIRECT_MAP + (BigInt(gfn) << 12n), get totalFrames() { return kernelFrames(); },
      capabilities: o.balloonCapabilities,
    });
    this.kernel.start(o.workload);
  }

  /** Simulated seconds on the clock this guest runs on. */
  get seconds(): number { return this.sched ? this.sched.seconds : this.kernel ? this.kernel.now() : 0; }

  /** Joins a scheduler: runs with `shares`, and the balloon driver polls once per second. */
  attach(s: Scheduler, shares = 1000): this {
    if (s.hz !== this.hz) throw new RangeError(`${this.name}: guest hz ${this.hz} differs from the scheduler's ${s.hz}`);
    this.sched = s;
    s.add(this, shares);
    if (this.driver) s.every(1, () => { this.balloonDue = true; });
    return this;
  }

  /**
   * VM execution time in seconds (the clock the paper samples on): the cycles the guest ran
   * plus the time it sat halted in its idle loop; time a runnable guest spent waiting for
   * the CPU behind other VMs, or blocked by the memory manager, does not count.
   */
  get executionSeconds(): number {
    const now = this.sched?.now ?? this.kernel.clock;
    const halted = this.haltedSince >= 0 ? Math.max(0, now - this.haltedSince) : 0;
    return (this.execCycles + halted) / this.hz;
  }

  /** One balloon worker run (vmballoon_work); the scheduler calls it every simulated second. */
  pollBalloon(): void {
    if (!this.driver) return;
    const t0 = this.kernel.vcpu.cycles();
    this.driver.tick();
    this.driverCycles += this.kernel.vcpu.cycles() - t0;
  }

  /** Runnable: runs the guest for up to `budget` cycles of the scheduler's slice. */
  step(budget: number): number {
    const now = this.sched?.now ?? this.kernel.clock;
    if (this.blocked) { this.counters.blockedSlices++; this.endHalt(now); return 0; }
    if (now < this.wakeAt && !this.balloonDue) return 0;
    this.endHalt(now);
    this.kernel.clock = now; // the kernel's notion of time is the shared clock
    const driver = this.runDueBalloon();
    let busy = driver, halted = this.finished;
    if (!this.finished) {
      const r = this.kernel.step(Math.max(1, budget - driver));
      busy += r.busy;
      if (r.done) this.finished = true;
      halted = r.done || r.idle > 0;
    }
    // Halted in the idle loop: sleep to the next tick (for ever once the workload is done,
    // until a timer wakes it); the halted time is VM execution time.
    if (halted) { this.haltedSince = now + busy; this.wakeAt = this.finished ? Infinity : now + busy + this.tick; }
    this.execCycles += busy;
    return busy;
  }

  /**
   * A halt ends (the tick or the balloon timer woke the guest, or the manager blocked it):
   * the time halted, and waiting for the CPU after the wake-up, was VM time (an idle guest
   * would have been halted anyway).
   */
  private endHalt(now: number): void {
    if (this.haltedSince < 0) return;
    this.execCycles += Math.max(0, now - this.haltedSince);
    this.haltedSince = -1;
    this.wakeAt = Math.min(this.wakeAt, now);
  }

  /** Runs the balloon worker if its timer fired; returns the cycles it used. */
  private runDueBalloon(): number {
    if (!this.balloonDue) return 0;
    this.balloonDue = false;
    const t0 = this.kernel.vcpu.cycles();
    this.pollBalloon();
    return this.kernel.vcpu.cycles() - t0;
  }

  /** The guest allocator the balloon inflates from; it may page out (see balloonReclaims). */
  private pinnedAllocator(): PinnedAllocator {
    const k = () => this.kernel, reclaims = this.o.balloonReclaims ?? true;
    return {
      allocPinned: () => {
        let g = k().frames.allocPinned();
        while (g === null && reclaims && k().swap.evictOne()) g = k().frames.allocPinned();
        k().counters.swapOuts = k().swap.stats.swapOuts;
        return g;
      },
      free: (g) => k().frames.free(g),
      allocPinned2M: () => k().frames.allocPinned2M(),
      free2M: (g) => k().frames.free2M(g),
    };
  }

  /** Exits only the host resolves, from the kernel's and the driver's batches. */
  private hostExit(x: GuestExit, _b: AccessBatch | null): number {
    const touch = classifyBalloonExit(this.device, x);
    if (touch) {
      this.counters.balloonTouches++;
      if (this.violations.length < 64) this.violations.push(touch.violation);
      return touch.resumeAt;
    }
    if (x.reason === 'OUT_OF_FRAMES') {
      if (x.pool === 'hypervisor') throw new Error(`${this.name}: the hypervisor region is full (EPT / shadow tables); give it more hypervisorBytes`);
      this.counters.outOfFrames++;
      const freed = this.o.reclaim?.(this, 1) ?? 0;
      if (freed <= 0) {
        throw new Error(`${this.name}: host out of ${x.pool} frames and nothing can be reclaimed ` +
          '(overcommitted without balloon, sharing or swap headroom)');
      }
      return x.index;
    }
    throw new Error(`${this.name}: unexpected ${x.reason} exit at op ${x.index}`);
  }

  /** Frames of host memory the VM holds now (its own, not shared ones). */
  get hostFrames(): number { return this.o.hv.frames.usedBy(this.vm.id); }
}
