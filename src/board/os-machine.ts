// A board for machine-code guests: one VM, the loaded kernel (loader.ts), the port bus
// (16550 UART, power-off ports, the balloon backdoor's one-`inl` transport, the memory
// hotplug device) and the run loop that executes the kernel on the interpreting vCPU and
// handles its exits. Memory hot-add (hotAdd, or Vm.hotAdd by anyone: the board follows
// watchResize) grows the VM, then the hotplug device's event rings the guest's vector.
//
//   OsMachine.run ──▶ vcpu.run({maxInstructions}) ──▶ exit
//      IO      port bus (UART, power) or the backdoor with the register file
//      HLT     idle: virtual time jumps to the next timer (nothing armed with IF=0: halted for good)
//      SHUTDOWN  triple fault: stop, report registers and the last exception
//      balloon touch / out of frames: as the TypeScript guests' board (guest-vm.ts): the
//               host reclaims (opts.reclaim, the memory manager's swap) and the access retries
//   the guest powers off (0x604 / 0xF4), or the instruction / virtual-time budget ends.
//
// The CPU-facing calls are gathered in the GuestCpu interface, which the interpreting vCPU
// implements (see cpuOf); the run loop's logic is independent of it.

import type { Hypervisor } from '../hypervisor/monitor/hypervisor.js';
import type { Vm } from '../hypervisor/monitor/vm.js';
import type { VmMode } from '../hypervisor/monitor/types.js';
import type { CpuOptions } from '../core/cpu.js';
import type { Runnable, Scheduler } from '../hypervisor/policy/scheduler.js';
import { PortBus } from '../devices/bus.js';
import { Uart16550, COM1, UART_PORTS } from '../devices/uart.js';
import { PowerDevice, ACPI_PM1A_CNT, DEBUG_EXIT, type PowerOff } from '../devices/power.js';
import { BackdoorInl, BACKDOOR_INL_PORT, type GprFile } from '../devices/backdoor-inl.js';
import { BalloonDevice, CAP } from '../devices/balloon.js';
import { BalloonStats } from '../devices/balloon-stats.js';
import { createBalloonDevice } from './balloon.js';
import { doorbellVector, type Doorbell } from '../devices/doorbell.js';
import { HotplugDevice } from '../devices/hotplug.js';
import type { Gfn } from '../core/addr.js';
import { loadKernel, type BootInfo, type BootRegisters, type LoadOptions } from './loader.js';
import { migrate, type MigrationOptions, type MigrationResult } from '../hypervisor/migration/migrate.js';
import { VmBalloonBackend } from '../hypervisor/pagers/balloon-backend.js';

/** What OsMachine.migrateTo takes: the link and the tracking; the board fills in the rest. */
export type OsMigrationOptions = Omit<MigrationOptions, 'vm' | 'from' | 'to' | 'hz' | 'runGuest' | 'deviceStateBytes' | 'destination'>;

/** What the board needs from the vCPU executing the guest. */
export interface GuestCpu {
  /** Loads the entry state. */
  boot(r: BootRegisters): void;
  /** Runs up to `maxInstructions`; returns why it stopped. */
  run(maxInstructions: number): CpuExit;
  /** The general registers (for the backdoor) and RIP. */
  gprs(): GprFile & { rip: bigint; rflags: bigint };
  /** Writes general registers before the vCPU resumes. */
  setGprs(r: Partial<GprFile>): void;
  /** Completes a pending IN with `value`. */
  setIoData(value: bigint): void;
  /** Makes an external interrupt pending (delivered when IF allows). */
  injectInterrupt(vector: number): void;
  /** Guest instructions retired so far. */
  instructions(): number;
  /** The TSC rate the vCPU reports in CPUID 0x15/0x16 (the guest times its APIC timer by it). */
  setTscHz?(hz: number): void;
  /** The virtual TSC (cycles); advanceTo moves it forward while the guest is halted. */
  tsc(): bigint;
  advanceTo(tsc: bigint): void;
  /** TSC of the next local-APIC timer expiry, or null when no timer is armed. */
  nextTimer(): bigint | null;
  /** The registers and the last exception, for a triple-fault report. */
  dump(): Record<string, string>;
  counters(): Record<string, number>;
}

export type CpuExit =
  | { reason: 'IO'; port: number; size: number; direction: 'in' | 'out'; value: bigint }
  | { reason: 'HLT' }
  | { reason: 'SHUTDOWN' }
  | { reason: 'BUDGET' }
  /** The guest touched a page it gave to the balloon (without deflating it first). */
  | { reason: 'BALLOON_TOUCH'; gpa: bigint; gva?: bigint }
  /** The host's frame pool ran dry while backing a guest access (the access did not complete). */
  | { reason: 'OUT_OF_FRAMES'; pool: 'vm' | 'hypervisor'; gpa?: bigint }
  | { reason: 'OTHER'; name: string; detail?: string };

const NEVER = 1n << 62n;

export type StopReason = 'power-off' | 'timeout' | 'triple-fault' | 'halted' | 'error';

export interface OsRunResult {
  stop: StopReason;
  /** Power-off status (0x604: 0; 0xF4: the code written), else null. */
  status: number | null;
  powerOff: PowerOff | null;
  instructions: number;
  /** Virtual seconds (TSC / hz). */
  seconds: number;
  /** Triple fault or error: what the vCPU looked like. */
  dump?: Record<string, string>;
  message?: string;
}

export interface OsMachineOptions {
  hv: Hypervisor;
  /** The machine's name (for the scheduler and the memory manager; default the load path or "os"). */
  name?: string;
  kernel: Uint8Array;
  memoryBytes: number | bigint;
  mode: VmMode;
  load?: LoadOptions;
  /** Where console bytes go (default: kept only). */
  console?: (byte: number) => void;
  /** TSC frequency: cycles per virtual second (default 2e9). */
  hz?: number;
  /** Instructions per vcpu.run call (default 1e6). */
  slice?: number;
  /** false: no balloon backdoor on port 0x5670 (an IN there floats high, as on a PC without it). */
  balloon?: boolean;
  /** Balloon capabilities the host offers (default everything Linux asks for, 0x3E). */
  balloonCapabilities?: number;
  /** TLB geometry, latencies, MAXPHYADDR of the vCPU (the coherence checker is set below). */
  cpuOptions?: Omit<CpuOptions, 'coherenceChecker'>;
  /** EPT accessed/dirty flags (nested; default on). */
  eptAd?: boolean;
  /** Report uses of stale translations (default on; costs some speed). */
  coherenceChecker?: boolean;
  /** Builds the GuestCpu for the VM's vCPU 0 (the interpreting CPU; tests may script one). */
  cpu: (vm: Vm) => GuestCpu;
  /**
   * The host's VM pool ran dry while this guest needed a frame: free some (the memory
   * manager swaps) and return how many; 0 stops the guest with a clear error.
   */
  reclaim?(m: OsMachine, need: number): number;
}

export interface Budget { instructions?: number; seconds?: number }

export class OsMachine implements Runnable {
  readonly name: string;
  /** The VM (a new one on the destination after migrateTo). */
  get vm(): Vm { return this.vmNow; }
  private vmNow: Vm;
  /** The host the machine runs on. */
  get hv(): Hypervisor { return this.hvNow; }
  private hvNow: Hypervisor;
  readonly bus = new PortBus();
  readonly uart: Uart16550;
  readonly power: PowerDevice;
  readonly balloon: BalloonDevice;
  readonly balloonStats: BalloonStats;
  readonly backdoor: BackdoorInl;
  /** Memory hot-add's notification to the guest (hotplug-protocol.ts). */
  readonly hotplug: HotplugDevice;
  readonly boot: BootInfo;
  /** The vCPU adapter (a new one after migrateTo). */
  get cpu(): GuestCpu { return this.cpuNow; }
  private cpuNow!: GuestCpu;
  /** Instructions retired on hosts the machine left (migrateTo). */
  private insnBefore = 0;
  readonly hz: number;
  /** Whether the vCPU reports stale translation uses. */
  readonly coherenceChecker: boolean;
  /** Exits by reason, counted by the board. */
  readonly exits: Record<string, number> = {};
  /** Guest touches of ballooned pages. */
  balloonTouches = 0;
  /** Doorbell rings that could not become an interrupt (resource id not a vector). */
  lostDoorbells = 0;
  /** OUT_OF_FRAMES exits resolved by the host's reclaim. */
  outOfFrames = 0;
  /** Set by the memory manager in the "low" state: the guest does not run. */
  blocked = false;
  /** Slices this guest was offered while blocked. */
  blockedSlices = 0;
  private result: OsRunResult | null = null;
  private sched: Scheduler | null = null;
  /** Scheduler mode: halted until this TSC. */
  private wakeAt = 0n;
  /** Stops following the VM's size (watchResize). */
  private unwatchResize: () => void = () => {};

  constructor(private readonly o: OsMachineOptions) {
    this.name = o.name ?? o.load?.path ?? 'os';
    this.hz = o.hz ?? 2e9;
    this.coherenceChecker = o.coherenceChecker ?? true;
    this.hvNow = o.hv;
    this.vmNow = o.hv.createVm({ memoryBytes: o.memoryBytes, mode: o.mode, eptAd: o.eptAd,
      cpu: { ...o.cpuOptions, coherenceChecker: this.coherenceChecker } });
    try {
      this.boot = loadKernel(this.vm, o.kernel, o.load);
    } catch (e) {
      o.hv.destroyVm(this.vm);
      throw e;
    }
    this.uart = new Uart16550(COM1, o.console);
    this.power = new PowerDevice();
    this.balloonStats = new BalloonStats({ get target() { return dev.target; }, get size() { return dev.size; } }, () => this.seconds);
    const dev = createBalloonDevice(this.vm, o.hv.frames, {
      events: this.balloonStats,
      hostCapabilities: o.balloonCapabilities ?? (CAP.BASIC_CMDS | CAP.BATCHED_CMDS | CAP.BATCHED_2M_CMDS | CAP.SIGNALLED_WAKEUP_CMD | CAP.TARGET_64),
      onDoorbell: (d) => this.ring(d),
    });
    this.balloon = dev;
    this.backdoor = new BackdoorInl(dev);
    this.bus.register(COM1, UART_PORTS, this.uart);
    this.bus.register(ACPI_PM1A_CNT, 2, this.power);
    this.bus.register(DEBUG_EXIT, 1, this.power);
    this.hotplug = new HotplugDevice(this.vm.frameCount, { onEvent: (v) => this.interrupt(v) });
    this.bus.register(this.hotplug.base, this.hotplug.ports, this.hotplug);
    this.followSize();
    this.cpuNow = o.cpu(this.vm);
    this.cpuNow.setTscHz?.(this.hz);
    this.cpu.boot(this.boot.registers);
  }

  /** Virtual seconds since boot. */
  get seconds(): number {
    const cpu = this.cpuNow as GuestCpu | undefined; // the balloon statistics ask before the vCPU exists
    return cpu ? Number(cpu.tsc()) / this.hz : 0;
  }

  /** The run's outcome once it stopped (power-off, triple fault, ...), else null. */
  get stopped(): OsRunResult | null { return this.result; }

  /**
   * Runs until the guest stops or the budget ends (a timeout: the budget counts from boot,
   * and a later run with a larger one continues the guest).
   */
  run(budget: Budget = {}): OsRunResult {
    const maxI = budget.instructions ?? Infinity;
    const maxTsc = budget.seconds === undefined ? Infinity : budget.seconds * this.hz;
    while (!this.result) {
      const left = maxI - this.instructions();
      if (left <= 0 || Number(this.cpu.tsc()) >= maxTsc) return this.outcome('timeout');
      this.step1(Math.min(left, this.o.slice ?? 1e6), maxTsc);
    }
    return this.result;
  }

  /** Joins a scheduler: the guest's TSC follows its clock, and a halted guest sleeps on it. */
  attach(s: Scheduler, shares = 1000): this {
    if (s.hz !== this.hz) throw new RangeError(`${this.name}: guest hz ${this.hz} differs from the scheduler's ${s.hz}`);
    this.sched = s;
    s.add(this, shares);
    return this;
  }

  /**
   * Runnable: runs about `budget` cycles (the modeled cycles: instructions plus exits) and
   * returns those used; 0 once stopped. On a scheduler the guest's TSC is the scheduler's
   * clock (time other guests ran passes for this one too) and a halted guest returns 0
   * until its next timer (or an injected interrupt). Without a scheduler the guest's TSC is
   * the only clock: a halted guest's time moves on to its next timer, at most `budget`
   * cycles per call, and that idle time counts as used.
   */
  step(budget: number): number {
    if (this.result) return 0;
    if (this.blocked) { this.blockedSlices++; return 0; }
    const now = this.sched ? BigInt(Math.floor(this.sched.now)) : null;
    if (now !== null) {
      if (now < this.wakeAt) return 0;
      if (now > this.cpu.tsc()) this.cpu.advanceTo(now);
    }
    this.wakeAt = 0n;
    const t0 = this.cpu.tsc();
    const cycles = Math.max(1, Math.round(budget));
    this.step1(cycles, now === null ? Number(t0) + cycles : Infinity, now !== null);
    return Number(this.cpu.tsc() - t0);
  }

  private step1(max: number, maxTsc: number, sleepOnHlt = false): void {
    const x = this.cpu.run(max);
    const name = x.reason === 'OTHER' ? x.name : x.reason;
    this.exits[name] = (this.exits[name] ?? 0) + 1;
    switch (x.reason) {
      case 'IO': this.io(x); break;
      case 'HLT': if (sleepOnHlt) this.sleep(); else this.halt(maxTsc); break;
      case 'SHUTDOWN': this.finish('triple-fault', 'triple fault (shutdown)'); break;
      case 'BUDGET': break;
      case 'BALLOON_TOUCH': this.balloonTouch(x); break;
      case 'OUT_OF_FRAMES': this.outOfHostFrames(x); break;
      default: this.finish('error', `unexpected exit ${x.name}${x.detail ? ': ' + x.detail : ''}`);
    }
    if (this.power.state && !this.result) this.finish('power-off');
  }

  private io(x: Extract<CpuExit, { reason: 'IO' }>): void {
    if (this.o.balloon !== false && this.backdoor.claims(x)) {
      const out = this.backdoor.handle(x, this.cpu.gprs());
      if (x.direction === 'in') this.cpu.setIoData(out.rax ?? (1n << BigInt(8 * x.size)) - 1n);
      const { rax: _status, ...rest } = out;
      if (Object.keys(rest).length) this.cpu.setGprs(rest);
      return;
    }
    const d = this.bus.deviceAt(x.port);
    const mask = (1n << BigInt(8 * x.size)) - 1n;
    if (x.direction === 'out') { if (d) d.out(x.port, x.size, x.value & mask); else this.bus.unclaimed++; return; }
    this.cpu.setIoData(d ? d.in(x.port, x.size) & mask : (this.bus.unclaimed++, mask));
  }

  /** HLT: time passes to the next timer; with none armed the guest can never wake. */
  private halt(maxTsc: number): void {
    const next = this.cpu.nextTimer();
    if (next === null) { this.finish('halted', 'HLT with no timer armed and no device interrupt to come'); return; }
    const to = Number(next) > maxTsc ? BigInt(Math.ceil(maxTsc)) : next;
    if (to > this.cpu.tsc()) this.cpu.advanceTo(to);
  }

  /** Runnable: a halted guest's next timer, in scheduler cycles. */
  nextWake(): number { return this.result || this.wakeAt >= NEVER ? Infinity : Number(this.wakeAt); }

  /** HLT on a scheduler: idle until the next timer (the scheduler's clock moves on). */
  private sleep(): void {
    const next = this.cpu.nextTimer();
    if (next === null) { this.wakeAt = NEVER; return; } // only an injected interrupt can wake it
    this.wakeAt = next;
  }

  /**
   * A touch of a ballooned gfn: the strict device records the violation, pops the balloon
   * and makes the driver reset (as ESX does); the access is retried on a fresh zeroed frame.
   */
  private balloonTouch(x: Extract<CpuExit, { reason: 'BALLOON_TOUCH' }>): void {
    this.balloonTouches++;
    this.balloon.guestTouched(x.gpa, x.gva);
  }

  /** The host pool is empty: reclaim (the access is retried on the next run) or stop. */
  private outOfHostFrames(x: Extract<CpuExit, { reason: 'OUT_OF_FRAMES' }>): void {
    const where = x.gpa !== undefined ? ` (gpa 0x${x.gpa.toString(16)})` : '';
    if (x.pool === 'hypervisor') { this.finish('error', `the hypervisor region is full (EPT / shadow tables)${where}; give it more hypervisorBytes`); return; }
    const freed = this.o.reclaim?.(this, 1) ?? 0;
    if (freed > 0) { this.outOfFrames++; return; }
    this.finish('error', `host out of vm frames${where} and nothing can be reclaimed (overcommitted without swap headroom)`);
  }

  /** SIGNALLED_WAKEUP: the doorbell becomes an interrupt at the vector the guest registered. */
  private ring(d: Doorbell): void {
    const v = doorbellVector(d);
    if (v === null) { this.lostDoorbells++; return; }
    this.interrupt(v);
  }

  /** A device interrupt; a halted guest wakes for it. */
  private interrupt(vector: number): void {
    this.cpu.injectInterrupt(vector);
    this.wakeAt = 0n;
  }

  /**
   * Memory hot-add: the VM's guest-physical memory grows by `bytes` (Vm.hotAdd: a positive
   * multiple of 4096, the VM at most 64 GiB, not native), then the hotplug device tells the
   * guest (SIZE, SEQ, its vector). A bad size throws before anything changes and the guest
   * runs on. Returns the first new gfn.
   */
  hotAdd(bytes: number | bigint): Gfn {
    return this.vm.hotAdd(bytes);
  }

  /** The hotplug device follows the VM's size however it grew (watchResize). */
  private followSize(): void {
    this.unwatchResize();
    this.unwatchResize = this.vm.watchResize((_old, frames) => this.hotplug.memoryAdded(frames));
  }

  /** A final stop: the guest runs no more. */
  private finish(stop: StopReason, message?: string): OsRunResult {
    this.result = this.outcome(stop, message);
    return this.result;
  }

  private outcome(stop: StopReason, message?: string): OsRunResult {
    const p = this.power.state;
    return {
      stop, status: p?.status ?? null, powerOff: p, instructions: this.instructions(), seconds: this.seconds,
      ...(stop === 'triple-fault' || stop === 'error' ? { dump: this.cpu.dump() } : {}),
      ...(message ? { message } : {}),
    };
  }

  /** Host frames the VM holds now (its own, not shared ones). */
  get hostFrames(): number { return this.hv.frames.usedBy(this.vm.id); }

  /** Guest instructions retired since boot, on every host the machine ran on. */
  instructions(): number { return this.insnBefore + this.cpu.instructions(); }

  /**
   * Live migration to another host (src/hypervisor/migration): pre-copy while the guest
   * keeps running here, then the VM stops, its last dirty pages, vCPU state (registers,
   * pending I/O, the local APIC and its timer) and device state move, and it resumes there.
   * The device models (UART, power, balloon device, backdoor, bus) are host-independent
   * objects: they come along as they are, the balloon device rebound to the destination's
   * backend; their state is counted on the wire (deviceStateBytes). The guest's clock runs
   * on through the downtime. Not on a scheduler.
   */
  migrateTo(to: Hypervisor, o: OsMigrationOptions): MigrationResult {
    if (this.sched) throw new Error(`${this.name}: cannot migrate a machine attached to a scheduler`);
    const r = migrate({
      ...o, vm: this.vm, from: this.hv, to, hz: this.hz,
      runGuest: (s) => { if (!this.result) this.run({ seconds: this.seconds + s }); },
      deviceStateBytes: this.deviceStateBytes(),
      destination: { eptAd: this.o.eptAd, cpu: { ...this.o.cpuOptions, coherenceChecker: this.coherenceChecker } },
    });
    const done = this.instructions();
    this.hvNow = to;
    this.vmNow = r.vm;
    this.balloon.rebind(new VmBalloonBackend(r.vm, to.frames));
    this.followSize();
    this.cpuNow = this.o.cpu(r.vm);
    this.cpuNow.setTscHz?.(this.hz); // CPUID 0x15/0x16 describe the same clock on the new host
    this.insnBefore = done;
    return r;
  }

  /** Device state on the wire: UART registers and queued input, power state, the balloon's, the hotplug registers. */
  private deviceStateBytes(): number { return 16 + this.uart.pendingInput + 8 + this.balloon.stateBytes + this.hotplug.stateBytes; }

  /** The balloon as the memory manager sees it (its BalloonTarget); null without the backdoor. */
  get device(): BalloonDevice | null { return this.o.balloon === false ? null : this.balloon; }

  /** Counters for the report: the vCPU's, exits by reason, balloon and device figures. */
  counters(): Record<string, number> {
    const c: Record<string, number> = { ...this.cpu.counters() };
    for (const [k, v] of Object.entries(this.exits)) c[`exit_${k}`] = v;
    c.consoleBytes = this.uart.written;
    c.backdoorCalls = this.backdoor.calls;
    c.backdoorMisuses = this.backdoor.misuses;
    c.balloonViolations = this.balloon.violationCount;
    c.balloonTouches = this.balloonTouches;
    c.balloonSize = this.balloon.size;
    c.balloonTarget = this.balloon.target;
    c.doorbellRings = this.balloon.doorbellRings;
    c.hotplugEvents = this.hotplug.sequence;
    c.hotplugMisuses = this.hotplug.misuses;
    c.unclaimedPorts = this.bus.unclaimed;
    c.outOfFrames = this.outOfFrames;
    c.blockedSlices = this.blockedSlices;
    return c;
  }
}
