// A memory toucher whose working set follows a schedule (the paper's Figure 6 toucher
// varies its touched memory between 50 MB and 250 MB). It first writes every page of
// `prefillPages` once, as an OS zeroing its memory at boot, so the VM's backed memory is
// known and stays put; then, from begin(t0) on, it sweeps pages [0, set) of its region
// over and over, where `set` is the page count of the schedule phase in force at the
// kernel's current simulated time. Before begin() it sweeps the first phase's set.
//
// Optionally a zero page thread (Windows' ZPT finds free pages and zeroes them; the paper's
// Figure 6 shows the estimate spike it causes, then decay): at `zeroPageThreadAt` seconds
// after begin() it writes zero once into every page of the region outside the set in
// force — the memory the toucher no longer uses stands for the guest's free memory — then
// stops. Its pages count as touched: they are, for that period.
//
// Every page it touches is recorded, so takeTouched() gives the exact number of distinct
// pages touched since the last call: the real working set of a sampling period.
import type { AccessBatch } from '../src/core/batch.js';
import { Rng } from '../src/util/rng.js';
import type { Kernel, Workload } from './kernel/kernel.js';

export const PHASED_BASE = 0x4000_0000n;

export interface TouchPhase { seconds: number; pages: number }

export interface PhasedToucherOptions {
  /** Phases in order; after the last one its set stays in force. */
  phases: TouchPhase[];
  /** Pages written once at start (default: the largest phase). */
  prefillPages?: number;
  /** Pages touched per batch (default 512). */
  opsPerBatch?: number;
  /** Fraction of touches that are stores (default 0.5). */
  writeRatio?: number;
  seed?: number;
  /** Seconds after begin() at which the zero page thread zeroes the free pages once (default: never). */
  zeroPageThreadAt?: number;
}

export class PhasedToucher implements Workload {
  readonly name = 'phased-toucher';
  readonly regionPages: number;
  private readonly prefill: number;
  private readonly rng: Rng;
  private readonly marks: Uint8Array;
  private readonly touchedList: number[] = [];
  private prefilled = 0;
  private cursor = 0;
  private startAt: number | null = null;
  /** Kernel seconds at which the prefill finished (null until then). */
  prefillDoneAt: number | null = null;
  /** The zero page thread's run: kernel seconds it started and ended, pages it zeroed. */
  readonly zpt = { startedAt: null as number | null, endedAt: null as number | null, pages: 0, next: -1 };

  constructor(readonly o: PhasedToucherOptions) {
    if (o.phases.length === 0) throw new RangeError('phased-toucher: at least one phase is required');
    o.phases.forEach((p, i) => {
      if (!(p.seconds > 0)) throw new RangeError(`phased-toucher: phases[${i}].seconds must be > 0, got ${p.seconds}`);
      if (!Number.isInteger(p.pages) || p.pages < 1) throw new RangeError(`phased-toucher: phases[${i}].pages must be a whole number >= 1, got ${p.pages}`);
    });
    this.prefill = o.prefillPages ?? Math.max(...o.phases.map((p) => p.pages));
    if (!Number.isInteger(this.prefill) || this.prefill < 0) throw new RangeError(`phased-toucher: prefillPages must be a whole number >= 0, got ${this.prefill}`);
    this.regionPages = Math.max(this.prefill, ...o.phases.map((p) => p.pages));
    this.marks = new Uint8Array(this.regionPages);
    this.rng = new Rng(o.seed ?? 1);
  }

  /** The schedule starts now (kernel seconds t0); the touched record restarts too. */
  begin(t0: number): void {
    this.startAt = t0;
    this.takeTouched();
  }

  /** The phase in force at kernel time t (index; the last one after the schedule ends). */
  phaseAt(t: number): number {
    if (this.startAt === null) return 0;
    let end = this.startAt;
    for (let i = 0; i < this.o.phases.length; i++) {
      end += this.o.phases[i].seconds;
      if (t < end) return i;
    }
    return this.o.phases.length - 1;
  }

  /** Distinct pages touched since the last call (or begin), and a fresh record from now. */
  takeTouched(): number {
    const n = this.touchedList.length;
    for (const p of this.touchedList) this.marks[p] = 0;
    this.touchedList.length = 0;
    return n;
  }

  init(k: Kernel): void { k.mmap(k.current, PHASED_BASE, BigInt(this.regionPages * 4096)); }

  fill(k: Kernel, b: AccessBatch): boolean {
    const ops = this.o.opsPerBatch ?? 512;
    if (this.prefilled < this.prefill) {
      for (let i = 0; i < ops && this.prefilled < this.prefill; i++) this.touch(b, this.prefilled++, true);
      if (this.prefilled === this.prefill) this.prefillDoneAt = k.now();
      return true;
    }
    const set = this.o.phases[this.phaseAt(k.now())].pages;
    if (this.zeroPageThreadDue(k.now(), set)) return this.zeroFreePages(b, k.now(), ops);
    for (let i = 0; i < ops; i++) {
      if (this.cursor >= set) this.cursor = 0;
      this.touch(b, this.cursor++, this.rng.next() < (this.o.writeRatio ?? 0.5));
    }
    return true;
  }

  /** The zero page thread's time has come (and it has not run yet): it starts at the current set's end. */
  private zeroPageThreadDue(now: number, set: number): boolean {
    const at = this.o.zeroPageThreadAt;
    if (at === undefined || this.startAt === null || this.zpt.endedAt !== null) return false;
    if (this.zpt.next < 0) {
      if (now < this.startAt + at) return false;
      this.zpt.startedAt = now;
      this.zpt.next = set;
    }
    return true;
  }

  /** One batch of the zero page thread: a zero store into each of the next free pages. */
  private zeroFreePages(b: AccessBatch, now: number, ops: number): boolean {
    const end = Math.min(this.regionPages, this.zpt.next + ops);
    for (let page = this.zpt.next; page < end; page++) {
      if (!this.marks[page]) { this.marks[page] = 1; this.touchedList.push(page); }
      b.store(Number(PHASED_BASE) + page * 4096, 0n);
    }
    this.zpt.pages += end - this.zpt.next;
    this.zpt.next = end;
    if (end >= this.regionPages) this.zpt.endedAt = now;
    return true;
  }

  private touch(b: AccessBatch, page: number, write: boolean): void {
    if (!this.marks[page]) { this.marks[page] = 1; this.touchedList.push(page); }
    const va = Number(PHASED_BASE) + page * 4096 + this.rng.below(512) * 8;
    if (write) b.store(va, BigInt(page) + 1n); else b.load(va);
  }
}
