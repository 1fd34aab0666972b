// The page-sharing scanner: which guest frames to look at next, and how many. Each
// registered VM has a seeded random permutation of its gfns, reshuffled every pass; a
// per-VM and a system-wide rate (pages per simulated second, ESX's Mem/ShareScanVM and
// Mem/ShareScanTotal) turn elapsed virtual time into a scan allowance. Whole pages of
// allowance not used (nothing eligible) are dropped; fractions carry over.
// The scanner only picks pages; hashing and matching them is sharing.ts's job.

import type { Gfn } from '../../core/addr.js';
import { Rng } from '../../util/rng.js';
import { frameField } from '../monitor/p2m.js';
import type { Vm } from '../monitor/vm.js';

/** Per-VM scan state, shared with the content table (its hints) and the COW pager (shared count). */
export interface ScannedVm {
  readonly vm: Vm;
  /** Scan order: a permutation of the VM's gfns, reshuffled every pass. */
  order: Int32Array;
  cursor: number;
  /** Fractional scan allowance carried to the next tick. */
  credit: number;
  /** Gfns mapped to shared frames. */
  shared: number;
  /** Pages of this VM hashed. */
  scanned: number;
  /** gfn → key of its hint in the content table. */
  readonly hints: Map<number, number>;
}

/** A scanned page: its VM, gfn and current frame; key is filled in by hashing. */
export interface Cand { st: ScannedVm; gfn: number; hfn: number; key: number }

const EPS = 1e-9;
const PASS_END = -1;
const NONE = -2;

export class SharingScanner {
  private readonly rng: Rng;
  private clock = 0;
  private totalCredit = 0;
  private rr = 0; // round-robin start, so a binding total rate is shared fairly
  constructor(
    private readonly ratePerVm: number,
    private readonly rateTotal: number,
    seed: number,
    /** Whether a p2m word is a page the scanner may pick. */
    private readonly eligible: (w: number) => boolean,
    /** Where completed passes over a VM's memory are counted (page sharing's counters). */
    private readonly counters: { passes: number },
  ) {
    this.rng = new Rng(seed);
  }

  /** The simulated time of the last tick, in seconds. */
  get now(): number { return this.clock; }

  /** A fresh scan state for vm, its order shuffled. */
  newVm(vm: Vm): ScannedVm {
    const order = new Int32Array(vm.frameCount);
    for (let i = 0; i < order.length; i++) order[i] = i;
    this.shuffle(order);
    return { vm, order, cursor: 0, credit: 0, shared: 0, scanned: 0, hints: new Map() };
  }

  /** The VM grew (memory hot-add): its new gfns join the current pass after the gfns not yet scanned. */
  grow(st: ScannedVm): void {
    const old = st.order.length, frames = st.vm.frameCount;
    if (frames <= old) return;
    const order = new Int32Array(frames);
    order.set(st.order);
    const fresh = order.subarray(old);
    for (let i = 0; i < fresh.length; i++) fresh[i] = old + i;
    this.shuffle(fresh);
    st.order = order;
  }

  /**
   * Advances the clock to nowSeconds and hands the pages the rates allow to `process`,
   * in chunks of at most `batch`. Returns pages scanned.
   */
  tick(nowSeconds: number, vms: Iterable<ScannedVm>, batch: number, process: (chunk: Cand[]) => void): number {
    if (!Number.isFinite(nowSeconds) || nowSeconds < this.clock) {
      throw new RangeError(`page sharing clock cannot go from ${this.clock} s to ${nowSeconds} s`);
    }
    const dt = nowSeconds - this.clock;
    this.clock = nowSeconds;
    this.totalCredit += dt * this.rateTotal;
    let total = Math.floor(this.totalCredit + EPS);
    this.totalCredit = Math.max(0, this.totalCredit - total);
    const sts = this.live(vms);
    const budget = sts.map((st) => {
      st.credit += dt * this.ratePerVm;
      const b = Math.floor(st.credit + EPS);
      st.credit = Math.max(0, st.credit - b);
      return b;
    });
    let scanned = 0;
    while (total > 0) {
      const chunk = this.collect(sts, budget, Math.min(total, batch));
      if (chunk.length === 0) break;
      process(chunk);
      total -= chunk.length;
      scanned += chunk.length;
    }
    if (sts.length > 0) this.rr = (this.rr + 1) % sts.length;
    return scanned;
  }

  private live(vms: Iterable<ScannedVm>): ScannedVm[] {
    const sts = [...vms].filter((s) => !s.vm.isDestroyed);
    const k = sts.length === 0 ? 0 : this.rr % sts.length;
    return [...sts.slice(k), ...sts.slice(0, k)];
  }

  /**
   * Up to `max` distinct eligible pages, round-robin over VMs with budget left. A VM
   * whose pass ends stops contributing to this batch, so no gfn appears twice in it.
   */
  private collect(sts: ScannedVm[], budget: number[], max: number): Cand[] {
    const out: Cand[] = [];
    const open = sts.map((_, i) => budget[i] > 0);
    const taken = sts.map(() => 0);
    let any = true;
    while (out.length < max && any) {
      any = false;
      for (let i = 0; i < sts.length && out.length < max; i++) {
        if (!open[i]) continue;
        const g = this.nextGfn(sts[i], taken[i] > 0);
        if (g < 0) { open[i] = false; if (g === NONE) budget[i] = 0; continue; }
        const w = sts[i].vm.p2m.raw(g as Gfn);
        out.push({ st: sts[i], gfn: g, hfn: frameField(w), key: 0 });
        taken[i]++;
        if (--budget[i] === 0) open[i] = false;
        any = true;
      }
    }
    return out;
  }

  /** The VM's next eligible gfn in scan order; PASS_END if its pass ends mid-batch; NONE if it has none. */
  private nextGfn(st: ScannedVm, midBatch: boolean): number {
    const p2m = st.vm.p2m;
    for (let skipped = 0; skipped <= st.order.length;) {
      if (st.cursor === st.order.length) {
        if (midBatch) return PASS_END;
        this.counters.passes++;
        this.shuffle(st.order);
        st.cursor = 0;
      }
      const g = st.order[st.cursor++];
      if (this.eligible(p2m.raw(g as Gfn))) return g;
      skipped++;
    }
    return NONE;
  }

  private shuffle(a: Int32Array): void {
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.rng.below(i + 1);
      const t = a[i]; a[i] = a[j]; a[j] = t;
    }
  }
}
