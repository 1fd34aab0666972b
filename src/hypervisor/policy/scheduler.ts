// A proportional-share scheduler on a virtual clock (stride scheduling, as ESX's CPU
// scheduler and the paper's share-based allocation): each runnable's virtual time is its
// usage divided by its shares; the one furthest behind runs next for a time slice.
// Policies (balloon polling, sampling periods, reallocation) hang timers on the same
// clock, so a run is a deterministic function of its inputs and seed.

/** Something that runs on the virtual clock: a vCPU with its guest kernel, typically. */
export interface Runnable {
  readonly name: string;
  /** Runs for about `budget` cycles (it may overshoot by its unit of work); returns the cycles used (0: idle or halted). */
  step(budget: number): number;
  /** While idle: the clock time at which it wants to run again (Infinity: only an event wakes it). */
  nextWake?(): number;
}

interface Entry { r: Runnable; shares: number; usage: number; pass: number; order: number }
/** A timer; period 0: fires once. */
interface Timer { at: number; period: number; fn: (now: number) => void; order: number }

export interface SchedulerOptions {
  /** Cycles per simulated second (default 2e9: a 2 GHz core). */
  hz?: number;
  /** Time slice in cycles (default 1 ms of simulated time). */
  slice?: number;
}

export class Scheduler {
  /** The virtual clock, in cycles. */
  now = 0;
  readonly hz: number;
  readonly slice: number;
  private entries: Entry[] = [];
  private timers: Timer[] = [];
  private seq = 0;

  constructor(o: SchedulerOptions = {}) {
    this.hz = o.hz ?? 2e9;
    this.slice = o.slice ?? Math.round(this.hz / 1000);
    if (!(this.hz > 0) || !(this.slice > 0)) throw new RangeError('hz and slice must be positive');
  }

  /** Simulated seconds since the start. */
  get seconds(): number { return this.now / this.hz; }

  add(r: Runnable, shares = 1000): void {
    if (!(shares > 0)) throw new RangeError(`${r.name}: shares must be positive, got ${shares}`);
    // A newcomer starts at the current minimum pass, so it cannot claim back time it never waited for.
    const pass = this.entries.length ? Math.min(...this.entries.map((e) => e.pass)) : 0;
    this.entries.push({ r, shares, usage: 0, pass, order: this.seq++ });
  }

  setShares(r: Runnable, shares: number): void {
    if (!(shares > 0)) throw new RangeError(`${r.name}: shares must be positive, got ${shares}`);
    this.entry(r).shares = shares;
  }

  /** Cycles a runnable has used. */
  usage(r: Runnable): number { return this.entry(r).usage; }

  /**
   * Calls fn every `seconds` of simulated time (first call one period from now) with the
   * time it was due (the clock may be past it by the rest of a guest's batch).
   */
  every(seconds: number, fn: (now: number) => void): void {
    const period = Math.round(seconds * this.hz);
    if (!(period > 0)) throw new RangeError('timer period must be positive');
    this.timers.push({ at: this.now + period, period, fn, order: this.seq++ });
  }

  /**
   * Calls fn once, `cycles` from now (0: at the next timer check), with the time it was due
   * (a disk transfer's completion, say: the swap daemon's writes).
   */
  after(cycles: number, fn: (now: number) => void): void {
    if (!(Number.isFinite(cycles) && cycles >= 0)) throw new RangeError(`timer delay must be >= 0 cycles, got ${cycles}`);
    this.timers.push({ at: this.now + Math.round(cycles), period: 0, fn, order: this.seq++ });
  }

  /** Runs until the clock has advanced by `seconds` of simulated time. */
  runFor(seconds: number): void {
    const end = this.now + Math.round(seconds * this.hz);
    while (this.now < end) {
      this.fireTimers();
      const until = Math.min(end, this.nextTimer(), this.nextWake());
      const used = this.runSlice(Math.min(this.slice, until - this.now));
      // Nobody wanted the CPU: the clock jumps to the next event.
      this.now = used > 0 ? this.now + used : until;
    }
    this.fireTimers();
  }

  private runSlice(budget: number): number {
    const ready = [...this.entries].sort((a, b) => a.pass - b.pass || a.order - b.order);
    for (const e of ready) {
      // A runnable may overshoot its budget (a guest finishes its batch): it is charged
      // what it used, so the cost model, not the slice, decides how much work fits a second.
      const used = Math.max(0, e.r.step(budget));
      if (used === 0) continue; // idle: the next one gets the slice
      e.usage += used;
      e.pass += used / e.shares;
      return used;
    }
    return 0;
  }

  /** The earliest future wake-up an idle runnable asked for. */
  private nextWake(): number {
    let w = Infinity;
    for (const e of this.entries) {
      const t = e.r.nextWake?.() ?? Infinity;
      if (t > this.now && t < w) w = t;
    }
    return w;
  }

  private nextTimer(): number {
    return this.timers.reduce((m, t) => Math.min(m, t.at), Infinity);
  }

  private fireTimers(): void {
    for (;;) {
      const due = this.timers.filter((t) => t.at <= this.now).sort((a, b) => a.at - b.at || a.order - b.order)[0];
      if (!due) return;
      const at = due.at; // the scheduled time: a batch may have carried the clock past it
      if (due.period === 0) this.timers.splice(this.timers.indexOf(due), 1);
      else due.at += due.period;
      due.fn(at);
    }
  }

  private entry(r: Runnable): Entry {
    const e = this.entries.find((x) => x.r === r);
    if (!e) throw new Error(`${r.name} is not on this scheduler`);
    return e;
  }
}
