// A guest whose memory is mostly filled with a known mix of page contents, for the page
// sharing experiment (the paper's Figure 4, identical VMs). Four classes of pages, each a
// region of its own in one address space:
//
//   zero     read but never written: demand-zero pages (shareable within one VM already)
//   dup      copies of a few templates (page q holds template q mod `dupTemplates`): the
//            duplicate content one OS instance has by itself (shareable within one VM)
//   common   the same bytes in every instance and distinct within one (a shared library's
//            data, the page cache of the same files): shareable only across VMs
//   private  different in every page of every instance: never shareable
//
// Each written page gets `wordsPerPage` words at its start (the rest stays zero from the
// demand-zero fault); the first word alone makes pages of different content differ:
//
//   common  page q word i: commonWord(q, i)               (< 2^32, odd)
//   dup     template t word i: 0xd0d0 << 48 | t << 16 | i (+1)
//   private page q word i: (instance + 1) << 40 | q << 12 | i  (+ 1 << 60)
//
// The pages are filled in that order (zero, dup, common, private) several per batch; then
// the guest only halts from timer tick to timer tick.
import type { AccessBatch } from '../src/core/batch.js';
import type { Kernel, Workload } from './kernel/kernel.js';
import { commonWord } from './shared.js';

export const MIX_ZERO = 0x5000_0000n, MIX_DUP = 0x5400_0000n, MIX_COMMON = 0x5800_0000n, MIX_PRIVATE = 0x5c00_0000n;

export interface PageMixOptions {
  zeroPages: number;
  dupPages: number;
  /** Distinct contents among the dup pages (min(dupTemplates, dupPages) of them are used). */
  dupTemplates: number;
  commonPages: number;
  privatePages: number;
  /** Which VM this is: private contents depend on it. */
  instance: number;
  /** Words written at the start of each written page, 1..512 (default 32). */
  wordsPerPage?: number;
}

export const dupWord = (t: number, i: number): bigint => (0xd0d0n << 48n) | (BigInt(t) << 16n) | BigInt(i + 1);
export const privateWord = (instance: number, q: number, i: number): bigint =>
  (1n << 60n) | (BigInt(instance + 1) << 40n) | (BigInt(q) << 12n) | BigInt(i);

interface Region { base: bigint; pages: number; word: (q: number, i: number) => bigint | null }

export class PageMix implements Workload {
  readonly name = 'page-mix';
  private readonly regions: Region[];
  private readonly words: number;
  private region = 0;
  private page = 0;
  /** Idle timer ticks run after the fill. */
  ticks = 0;
  /** Simulated seconds (kernel clock) at which the last page was filled; null until then. */
  filledAt: number | null = null;

  constructor(readonly o: PageMixOptions) {
    for (const k of ['zeroPages', 'dupPages', 'dupTemplates', 'commonPages', 'privatePages', 'instance'] as const) {
      if (!Number.isInteger(o[k]) || o[k] < 0) throw new RangeError(`page-mix: ${k} must be a whole number >= 0, got ${o[k]}`);
    }
    if (o.dupPages > 0 && o.dupTemplates < 1) throw new RangeError('page-mix: dupTemplates must be >= 1 when dupPages > 0');
    this.words = o.wordsPerPage ?? 32;
    if (!Number.isInteger(this.words) || this.words < 1 || this.words > 512) {
      throw new RangeError(`page-mix: wordsPerPage must be 1..512, got ${this.words}`);
    }
    this.regions = [
      { base: MIX_ZERO, pages: o.zeroPages, word: () => null },
      { base: MIX_DUP, pages: o.dupPages, word: (q, i) => dupWord(q % o.dupTemplates, i) },
      { base: MIX_COMMON, pages: o.commonPages, word: (q, i) => commonWord(q, i) },
      { base: MIX_PRIVATE, pages: o.privatePages, word: (q, i) => privateWord(o.instance, q, i) },
    ];
  }

  /** Every page of every class has been filled. */
  get filled(): boolean { return this.filledAt !== null; }

  /** Distinct dup contents in use. */
  get dupContents(): number { return Math.min(this.o.dupTemplates, this.o.dupPages); }

  init(k: Kernel): void {
    for (const r of this.regions) if (r.pages > 0) k.mmap(k.current, r.base, BigInt(r.pages * 4096));
  }

  fill(k: Kernel, b: AccessBatch): boolean {
    if (this.region < this.regions.length) { this.fillSome(k, b); return true; }
    // Idle: HLT until the next timer tick, touching no memory. (Running even a few
    // instructions would walk the guest page tables after every INVEPT, and with EPT A/D
    // on a guest paging-structure access counts as a write: a shared page-table page on
    // that walk would be copied on write after every re-share, a churn, not a level.)
    this.ticks++;
    b.hlt();
    return true;
  }

  /** Fills pages until the batch would overflow (a zero page is one load, others `words` stores). */
  private fillSome(k: Kernel, b: AccessBatch): void {
    while (this.region < this.regions.length) {
      const r = this.regions[this.region];
      if (this.page >= r.pages) { this.region++; this.page = 0; continue; }
      const first = r.word(this.page, 0);
      const cost = first === null ? 1 : this.words;
      if (b.length + cost > b.capacity) return;
      const va = Number(r.base) + this.page * 4096;
      if (first === null) b.load(va);
      else for (let i = 0; i < this.words; i++) b.store(va + i * 8, r.word(this.page, i)!);
      this.page++;
    }
    this.filledAt = k.now();
  }
}
