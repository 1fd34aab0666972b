// Active-memory sampling (ESX paper §5.3): estimate the fraction f of a VM's memory the
// guest actively uses, without guest involvement, from a few invalidated mappings.
//
// Per VM and per sampling period (default 30 s of VM time, 100 samples):
//   1. at the period's start pick n distinct gfns uniformly among the PRESENT gfns that
//      are not SHARED, not PAGE_TABLE and not already TRAPPED (the ones a trap can watch
//      without interfering with copy-on-write or shadow page-table tracking);
//   2. set P2M.TRAPPED on each: the p2m listeners remove the EPT entry (INVEPT) and zap
//      the shadow leaves, so the guest's next access to the page exits;
//   3. the exit reaches vm.resolve → this pager, which clears TRAPPED (the mapping comes
//      back) and counts a touch t;
//   4. at the period's end the remaining traps are cleared and f = t / n.
//
// Smoothing: three exponentially weighted moving averages of f, as in the paper —
//   fast    ← fast + gFast·(f − fast)           (gFast = 1/2: follows a step within ~3 periods)
//   slow    ← slow + gSlow·(f − slow)           (gSlow = 1/8: time constant ~8 periods)
//   partial = fast + gFast·(t_now/n − fast)     (the fast average as if the period ended now)
//   estimate = max(fast, slow, partial)
// The paper gives no gains; these are our picks (powers of two, so averages of exact
// fractions stay exact). The max responds quickly to increases (fast, and partial within
// the current period) and slowly to decreases (slow). Until a VM's first period ends
// the estimate is 1 (unknown: treat all memory as active, so it is not taxed).
//
// Traps never outlive their purpose: p2m.map and p2m.unmap drop TRAPPED by construction
// (a swapper, sharer or balloon that remaps or unmaps the gfn needs nothing from us); a
// p2m listener sees that and marks the sample "lost". A lost sample counts as touched
// if the gfn becomes present again within the period (an access brought it back from
// swap or re-backed it), as untouched otherwise. `untrap` releases one trap explicitly,
// and every period end clears all the remaining ones.

import { requirePageable } from '../monitor/paging.js';
import { Rng } from '../../util/rng.js';
import type { Gfn } from '../../core/addr.js';
import { P2M } from '../monitor/p2m.js';
import { OutOfFramesError } from '../monitor/frames.js';
import type { Vm, VmPager } from '../monitor/vm.js';

export interface SamplerOptions {
  /** Seed of the sample choice (each VM gets its own stream derived from it and its id). */
  seed?: number;
  /** Samples per period (default 100). */
  samples?: number;
  /** Period length in seconds of VM time (default 30). */
  periodSeconds?: number;
  /** Gain of the fast moving average (default 1/2). */
  fastGain?: number;
  /** Gain of the slow moving average (default 1/8). */
  slowGain?: number;
  /** Starting value of the averages; default: the first period's f. */
  initial?: number;
  /** Modeled cycles of handling one trapped touch (bookkeeping only; the exit is charged by the vCPU). */
  trapCycles?: number;
  /** Called after each period end (e.g. to recompute allocation targets). */
  onPeriod?: (vm: Vm, r: PeriodResult) => void;
}

/** What one sampling period measured. */
export interface PeriodResult {
  /** Gfns sampled (n; fewer than `samples` when the VM has fewer candidates). */
  sampled: number;
  /** Samples touched (t). */
  touched: number;
  /** Samples whose trap someone else removed (remap / unmap) and that did not come back. */
  lost: number;
  /** t / n, or null when nothing could be sampled (the averages are then left alone). */
  fraction: number | null;
  /** VM time at which the period ended. */
  endedAt: number;
}

export interface SamplerEstimates {
  fast: number | null;
  slow: number | null;
  /** The fast average updated with the current period's touches so far. */
  partial: number | null;
  /** max(fast, slow, partial); 1 before the first period ends. */
  estimate: number;
  periods: number;
  last: PeriodResult | null;
  /** The current period: samples armed and touched so far, and its start (VM seconds). */
  current: { sampled: number; touched: number; startedAt: number };
}

const TRAPPED = 1, TOUCHED = 2, LOST = 3;
type SampleState = typeof TRAPPED | typeof TOUCHED | typeof LOST;

interface PerVm {
  rng: Rng;
  startedAt: number;
  samples: Map<number, SampleState>;
  touched: number;
  fast: number | null;
  slow: number | null;
  periods: number;
  last: PeriodResult | null;
  unsubscribe: () => void;
}

/** Gfns a sampling trap may watch: present, private, not a page table, not trapped already. */
const CANDIDATE_MASK = P2M.PRESENT | P2M.SHARED | P2M.PAGE_TABLE | P2M.TRAPPED;

export class ActiveSampler implements VmPager {
  readonly name = 'active-sampler';
  readonly samples: number;
  readonly periodSeconds: number;
  readonly fastGain: number;
  readonly slowGain: number;
  private readonly seed: number;
  private readonly initial: number | null;
  private readonly trapCycles: number;
  private readonly onPeriod?: (vm: Vm, r: PeriodResult) => void;
  private readonly vms = new Map<Vm, PerVm>();
  private writing = false; // our own p2m writes: the listener ignores them

  constructor(o: SamplerOptions = {}) {
    this.seed = o.seed ?? 1;
    this.samples = o.samples ?? 100;
    this.periodSeconds = o.periodSeconds ?? 30;
    this.fastGain = o.fastGain ?? 0.5;
    this.slowGain = o.slowGain ?? 0.125;
    this.initial = o.initial ?? null;
    this.trapCycles = o.trapCycles ?? 50;
    this.onPeriod = o.onPeriod;
    if (!Number.isInteger(this.samples) || this.samples < 1) throw new RangeError(`samples must be a whole number >= 1, got ${this.samples}`);
    if (!(this.periodSeconds > 0)) throw new RangeError(`periodSeconds must be > 0, got ${this.periodSeconds}`);
    for (const [k, g] of [['fastGain', this.fastGain], ['slowGain', this.slowGain]] as const) {
      if (!(g > 0 && g <= 1)) throw new RangeError(`${k} must be in (0, 1], got ${g}`);
    }
    if (this.initial !== null && !(this.initial >= 0 && this.initial <= 1)) throw new RangeError(`initial must be in [0, 1], got ${this.initial}`);
    if (!(this.trapCycles >= 0)) throw new RangeError(`trapCycles must be >= 0, got ${this.trapCycles}`);
  }

  /** Starts sampling vm (installs this pager on it) with a period beginning at VM time `now`. */
  attach(vm: Vm, now = 0): void {
    requirePageable(vm, 'sampling needs EPT or shadow mappings to invalidate');
    if (vm.isDestroyed) throw new Error(`VM ${vm.id} was destroyed`);
    if (this.vms.has(vm)) throw new Error(`VM ${vm.id} is already sampled`);
    const s: PerVm = {
      rng: new Rng((this.seed ^ Math.imul(vm.id + 1, 0x9e3779b1)) >>> 0),
      startedAt: now, samples: new Map(), touched: 0,
      fast: this.initial, slow: this.initial, periods: 0, last: null,
      unsubscribe: vm.p2m.onChange((gfn, before, after) => this.observe(s, gfn, before, after)),
    };
    this.vms.set(vm, s);
    vm.addPager(this);
    this.arm(vm, s);
  }

  /** Stops sampling a live VM: clears its traps and forgets it (its averages too). */
  stop(vm: Vm): void {
    const s = this.state(vm);
    this.clearTraps(vm, s);
    this.detach(vm);
  }

  /** VmPager: the VM is being destroyed; drop its state without touching its p2m. */
  detach(vm: Vm): void {
    this.vms.get(vm)?.unsubscribe();
    this.vms.delete(vm);
  }

  /** True if vm is being sampled. */
  has(vm: Vm): boolean { return this.vms.has(vm); }

  /**
   * Ends the period if `now` (VM seconds) is a full period past its start; returns its
   * result. One period per call: a longer gap still ends one period (and the next
   * starts at `now`), since the samples saw all of that time.
   */
  tick(vm: Vm, now: number): PeriodResult | null {
    const s = this.state(vm);
    if (!(now >= s.startedAt)) throw new RangeError(`VM time went backwards: ${now} < period start ${s.startedAt}`);
    return now - s.startedAt >= this.periodSeconds ? this.periodEnd(vm, now) : null;
  }

  /**
   * Ends the current period now: clears the remaining traps, folds f = t/n into the
   * averages, and starts the next period at `now` with fresh samples.
   */
  periodEnd(vm: Vm, now?: number): PeriodResult {
    const s = this.state(vm);
    const endedAt = now ?? s.startedAt + this.periodSeconds;
    this.clearTraps(vm, s);
    let lost = 0;
    for (const st of s.samples.values()) if (st === LOST) lost++;
    const n = s.samples.size;
    const r: PeriodResult = { sampled: n, touched: s.touched, lost, fraction: n ? s.touched / n : null, endedAt };
    if (r.fraction !== null) this.fold(s, r.fraction);
    s.last = r;
    s.startedAt = endedAt;
    this.arm(vm, s);
    this.onPeriod?.(vm, r);
    return r;
  }

  /** VmPager: ends a sampling trap on gfn (counting the touch), or null if the trap is not ours. */
  resolve(vm: Vm, gfn: Gfn, word: number, _write: boolean): number | null {
    const s = this.vms.get(vm);
    if (!s || !(word & P2M.TRAPPED) || s.samples.get(gfn) !== TRAPPED) return null;
    this.untrapOwn(vm, gfn);
    s.samples.set(gfn, TOUCHED);
    s.touched++;
    return this.trapCycles;
  }

  /**
   * Releases gfn's trap without counting a touch (for a service that needs the page
   * mapped, not accessed). Returns true if there was one of ours.
   */
  untrap(vm: Vm, gfn: Gfn): boolean {
    const s = this.state(vm);
    if (s.samples.get(gfn) !== TRAPPED) return false;
    this.untrapOwn(vm, gfn);
    s.samples.set(gfn, LOST);
    return true;
  }

  /** The active fraction estimate: max(fast, slow, partial); 1 before the first period ends. */
  estimate(vm: Vm): number { return this.estimates(vm).estimate; }

  /** The estimate in frames: estimate × base (default: the VM's backed frames), rounded. */
  activeFrames(vm: Vm, base: number = vm.p2m.backed): number {
    if (!(base >= 0)) throw new RangeError(`base must be >= 0 frames, got ${base}`);
    return Math.round(this.estimate(vm) * base);
  }

  /** All three averages, the estimate and the period counts. */
  estimates(vm: Vm): SamplerEstimates {
    const s = this.state(vm);
    const n = s.samples.size;
    const partial = s.fast === null ? null : n ? s.fast + this.fastGain * (s.touched / n - s.fast) : s.fast;
    const estimate = s.fast === null ? 1 : Math.max(s.fast, s.slow!, partial!);
    return {
      fast: s.fast, slow: s.slow, partial, estimate, periods: s.periods, last: s.last,
      current: { sampled: n, touched: s.touched, startedAt: s.startedAt },
    };
  }

  /** The gfns trapped right now for vm (ascending). */
  trapped(vm: Vm): Gfn[] {
    const s = this.state(vm);
    return [...s.samples].filter(([, st]) => st === TRAPPED).map(([g]) => g as Gfn).sort((a, b) => a - b);
  }

  private state(vm: Vm): PerVm {
    const s = this.vms.get(vm);
    if (!s) throw new Error(`VM ${vm.id} is not sampled (call attach first)`);
    return s;
  }

  private fold(s: PerVm, f: number): void {
    s.fast = s.fast === null ? f : s.fast + this.fastGain * (f - s.fast);
    s.slow = s.slow === null ? f : s.slow + this.slowGain * (f - s.slow);
    s.periods++;
  }

  /**
   * Picks this period's samples (partial Fisher–Yates over the candidates) and traps them;
   * a gfn whose trap would split a large EPT leaf with no table frame free is dropped.
   */
  private arm(vm: Vm, s: PerVm): void {
    s.samples.clear();
    s.touched = 0;
    const cands: number[] = [];
    vm.p2m.forEach((g) => { cands.push(g); }, CANDIDATE_MASK, P2M.PRESENT);
    const n = Math.min(this.samples, cands.length);
    for (let i = 0; i < n; i++) {
      const j = i + s.rng.below(cands.length - i);
      [cands[i], cands[j]] = [cands[j], cands[i]];
      s.samples.set(cands[i], TRAPPED);
    }
    this.withOwnWrites(() => {
      for (const g of [...s.samples.keys()]) {
        try {
          vm.p2m.setState(g as Gfn, P2M.TRAPPED);
        } catch (e) {
          // Trapping inside a large EPT leaf needs a table frame; without one the gfn is not sampled.
          if (!(e instanceof OutOfFramesError)) throw e;
          s.samples.delete(g);
        }
      }
    });
  }

  private clearTraps(vm: Vm, s: PerVm): void {
    for (const [g, st] of s.samples) if (st === TRAPPED) this.untrapOwn(vm, g as Gfn);
  }

  private untrapOwn(vm: Vm, gfn: Gfn): void {
    this.withOwnWrites(() => vm.p2m.setState(gfn, 0, P2M.TRAPPED));
  }

  private withOwnWrites(fn: () => void): void {
    const was = this.writing;
    this.writing = true;
    try { fn(); } finally { this.writing = was; }
  }

  /** Someone else changed a sampled gfn: a dropped trap makes it lost; its return is a touch. */
  private observe(s: PerVm, gfn: Gfn, before: number, after: number): void {
    if (this.writing) return;
    const st = s.samples.get(gfn);
    if (st === TRAPPED && before & P2M.TRAPPED && !(after & P2M.TRAPPED)) {
      s.samples.set(gfn, LOST);
    } else if (st === LOST && !(before & P2M.PRESENT) && after & P2M.PRESENT) {
      s.samples.set(gfn, TOUCHED);
      s.touched++;
    }
  }
}
