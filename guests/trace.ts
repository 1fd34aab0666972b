// Trace replay: a real program's memory trace in valgrind lackey format (parsed by
// src/workload/lackey.ts). The program's user addresses are mapped one-to-one (plus an
// optional page-aligned offset) into one demand-paged region of a fresh address space, so
// its pages fault in on first touch. An access is split into pieces of at most 8 bytes that
// stay within a page; a modify is a load then a store. The replayed count of each kind is
// the trace's line count. Records come from an array or from a source pulled a batch at a
// time (a TraceReader streaming a file), so a long trace is never held whole.
import type { AccessBatch } from '../src/core/batch.js';
import { parseLackey, pushRecord, USER_BOTTOM, USER_TOP, type TraceCounts, type TraceKind, type TraceRecord } from '../src/workload/lackey.js';
import type { Kernel, Workload } from './kernel/kernel.js';

export { parseLackey, USER_TOP, type TraceKind, type TraceRecord };
export type TraceStats = TraceCounts;
export { traceCounts as traceStats } from '../src/workload/lackey.js';

/** Records pulled one at a time; null at the end. */
export interface TraceSource { next(): TraceRecord | null; close?(): void }

function arraySource(recs: readonly TraceRecord[]): TraceSource {
  let i = 0;
  return { next: () => (i < recs.length ? recs[i++] : null) };
}

export class TraceReplay implements Workload {
  readonly name = 'trace';
  /** What was replayed so far (filled as batches are built). */
  readonly replayed: TraceStats = { I: 0, L: 0, S: 0, M: 0, accesses: 0, pages: 0 };
  /** Whether the whole trace has been replayed. */
  done = false;
  private readonly pages = new Set<number>();
  /** Where records come from. */
  readonly src: TraceSource;
  private at = 0;
  constructor(records: readonly TraceRecord[] | TraceSource, readonly o: { offset?: number; recordsPerBatch?: number } = {}) {
    if ((o.offset ?? 0) % 4096) throw new RangeError('trace offset must be page-aligned');
    this.src = Array.isArray(records) ? arraySource(records) : (records as TraceSource);
  }

  /** Releases the source (a streamed file) before the end of the trace. */
  close(): void { this.src.close?.(); }

  init(k: Kernel): void {
    const as = k.createAddressSpace();
    k.mmap(as, BigInt(USER_BOTTOM), BigInt(USER_TOP - USER_BOTTOM), { write: true, exec: true });
    k.switchTo(as);
  }

  fill(_k: Kernel, b: AccessBatch): boolean {
    if (this.done) return false;
    const n = this.o.recordsPerBatch ?? 400;
    let i = 0;
    for (; i < n; i++) {
      const r = this.src.next();
      if (r === null) { this.done = true; this.src.close?.(); break; }
      const va = r.addr + (this.o.offset ?? 0);
      if (va < USER_BOTTOM || va + r.size > USER_TOP) throw new RangeError(`trace address 0x${va.toString(16)} outside user space`);
      this.replayed[r.kind]++;
      this.replayed.accesses++;
      for (let p = Math.floor(va / 4096); p <= Math.floor((va + r.size - 1) / 4096); p++) this.pages.add(p);
      pushRecord(b, r.kind, va, r.size, this.at++);
    }
    this.replayed.pages = this.pages.size;
    return i > 0;
  }
}
