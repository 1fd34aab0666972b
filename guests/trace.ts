// Trace replay: a real program's memory trace in valgrind lackey format
// (`valgrind --tool=lackey --trace-mem=yes prog`: "I  addr,size" fetches, " L", " S",
// " M" data loads, stores and modifies, addresses in hex). The program's user addresses
// are mapped one-to-one (plus an optional page-aligned offset) into one demand-paged
// region of a fresh address space, so its pages fault in on first touch.
// An access is split into pieces of at most 8 bytes that stay within a page; a modify
// is a load then a store. The replayed count of each kind is the trace's line count.
import type { AccessBatch } from '../src/core/batch.js';
import type { Kernel, Workload } from './kernel/kernel.js';

export type TraceKind = 'I' | 'L' | 'S' | 'M';
export interface TraceRecord { kind: TraceKind; addr: number; size: number }
export interface TraceStats { I: number; L: number; S: number; M: number; accesses: number; pages: number }

const LINE = /^(I| L| S| M)\s+([0-9a-fA-F]+),(\d+)\s*$/;
export const USER_TOP = 0x7fff_ffff_f000;

/** Parses lackey output; valgrind's own lines ("==pid==", "--pid--") and comments are skipped. */
export function parseLackey(text: string): TraceRecord[] {
  const out: TraceRecord[] = [];
  for (const line of text.split('\n')) {
    const m = LINE.exec(line);
    if (m) out.push({ kind: m[1].trim() as TraceKind, addr: parseInt(m[2], 16), size: Number(m[3]) });
  }
  return out;
}

/** Counts by kind and distinct 4 KiB pages touched (a record may span two pages). */
export function traceStats(recs: TraceRecord[], offset = 0): TraceStats {
  const s: TraceStats = { I: 0, L: 0, S: 0, M: 0, accesses: recs.length, pages: 0 };
  const pages = new Set<number>();
  for (const r of recs) {
    s[r.kind]++;
    for (let p = Math.floor((r.addr + offset) / 4096); p <= Math.floor((r.addr + offset + r.size - 1) / 4096); p++) pages.add(p);
  }
  s.pages = pages.size;
  return s;
}

export class TraceReplay implements Workload {
  readonly name = 'trace';
  /** What was replayed so far (filled as batches are built). */
  readonly replayed: TraceStats = { I: 0, L: 0, S: 0, M: 0, accesses: 0, pages: 0 };
  private readonly pages = new Set<number>();
  private at = 0;
  constructor(readonly records: TraceRecord[], readonly o: { offset?: number; recordsPerBatch?: number } = {}) {
    if ((o.offset ?? 0) % 4096) throw new RangeError('trace offset must be page-aligned');
  }

  init(k: Kernel): void {
    const as = k.createAddressSpace();
    k.mmap(as, 0x1000n, BigInt(USER_TOP - 0x1000), { write: true, exec: true });
    k.switchTo(as);
  }

  fill(_k: Kernel, b: AccessBatch): boolean {
    if (this.at >= this.records.length) return false;
    const end = Math.min(this.records.length, this.at + (this.o.recordsPerBatch ?? 400));
    for (; this.at < end; this.at++) {
      const r = this.records[this.at];
      const va = r.addr + (this.o.offset ?? 0);
      if (va < 0x1000 || va + r.size > USER_TOP) throw new RangeError(`trace address 0x${va.toString(16)} outside user space`);
      this.replayed[r.kind]++;
      this.replayed.accesses++;
      for (let a = va; a < va + r.size;) {
        const n = Math.min(8, va + r.size - a, 4096 - (a % 4096));
        this.pages.add(Math.floor(a / 4096));
        if (r.kind === 'I') b.fetch(a, n);
        else if (r.kind === 'L') b.load(a, n);
        else if (r.kind === 'S') b.store(a, BigInt(this.at & 0xff), n);
        else b.load(a, n).store(a, BigInt(this.at & 0xff), n);
        a += n;
      }
    }
    this.replayed.pages = this.pages.size;
    return true;
  }
}
