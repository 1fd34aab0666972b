// Valgrind lackey traces (`valgrind --tool=lackey --trace-mem=yes prog`), one access a line:
//
//   "I  0401ab70,3"      instruction fetch   (kind "I", two spaces)
//   " L 1fff000778,8"    data load           (kind " L")
//   " S 1fff000778,8"    data store          (kind " S")
//   " M 1fff000778,8"    modify: a load then a store of the same bytes
//        └─ address ─┘└ size (decimal bytes)
//
// Valgrind's own lines ("==pid== …", "--pid-- …"), "#" comments and blank lines are skipped;
// anything else is an error naming the field (kind, address or size), so a truncated or
// foreign file is refused rather than half-replayed. Addresses are the program's user
// addresses and must lie in user space, as the replayers map them one-to-one.

import type { AccessBatch } from '../core/batch.js';

export type TraceKind = 'I' | 'L' | 'S' | 'M';
export interface TraceRecord { kind: TraceKind; addr: number; size: number }
/** Records by kind, all records, and distinct 4 KiB pages touched (a record may span two). */
export interface TraceCounts { I: number; L: number; S: number; M: number; accesses: number; pages: number }

/** The lowest and one past the highest address a trace may touch (page 0 stays unmapped). */
export const USER_BOTTOM = 0x1000;
export const USER_TOP = 0x7fff_ffff_f000;
/** The largest access a line may describe: one page (lackey's largest are vector moves). */
export const MAX_ACCESS = 4096;

export interface TraceLineProblem { field: 'kind' | 'address' | 'size'; message: string }

const KIND = /^(I|\s[LSM])\s+/;

/** One line: a record, null for a line to skip, or the problem with the field it is in. */
export function parseLackeyLine(line: string): TraceRecord | null | TraceLineProblem {
  if (line.length === 0 || line[0] === '#' || line.startsWith('==') || line.startsWith('--') || line.trim() === '') return null;
  const k = KIND.exec(line);
  if (!k) return { field: 'kind', message: `expected "I  addr,size" or " L"/" S"/" M addr,size" (lackey --trace-mem=yes), got ${quote(line)}` };
  const kind = k[1].trim() as TraceKind;
  const rest = line.slice(k[0].length).trimEnd();
  const comma = rest.indexOf(',');
  const hex = comma < 0 ? rest : rest.slice(0, comma), dec = comma < 0 ? '' : rest.slice(comma + 1);
  if (!/^[0-9a-fA-F]{1,16}$/.test(hex)) return { field: 'address', message: `${quote(hex)} is not a hexadecimal address` };
  const addr = parseInt(hex, 16);
  if (!/^\d{1,9}$/.test(dec)) return { field: 'size', message: comma < 0 ? 'missing (expected "addr,size")' : `${quote(dec)} is not a decimal byte count` };
  const size = Number(dec);
  if (size < 1 || size > MAX_ACCESS) return { field: 'size', message: `${size} bytes is outside 1 … ${MAX_ACCESS}` };
  if (addr < USER_BOTTOM || addr + size > USER_TOP) {
    return { field: 'address', message: `0x${hex} + ${size} bytes is outside user space (0x1000 … 0x${USER_TOP.toString(16)})` };
  }
  return { kind, addr, size };
}

/** Whether parseLackeyLine's answer is a problem. */
export function isProblem(r: TraceRecord | TraceLineProblem | null): r is TraceLineProblem {
  return r !== null && 'field' in r;
}

/** Parses a whole trace held in a string (small traces, tests); throws at the first bad line. */
export function parseLackey(text: string, source = 'trace'): TraceRecord[] {
  const out: TraceRecord[] = [];
  text.split('\n').forEach((line, i) => {
    const r = parseLackeyLine(line.replace(/\r$/, ''));
    if (isProblem(r)) throw new TraceLineError(source, i + 1, r);
    if (r) out.push(r);
  });
  return out;
}

/** A bad line: "file:line: field: message". */
export class TraceLineError extends Error {
  constructor(readonly file: string, readonly line: number, readonly problem: TraceLineProblem) {
    super(`${file}:${line}: ${problem.field}: ${problem.message}`);
    this.name = 'TraceLineError';
  }
}

/** Counts by kind and distinct pages of `pageBytes` (default 4 KiB) a record list touches. */
export function traceCounts(recs: Iterable<TraceRecord>, offset = 0, pageBytes = 4096): TraceCounts {
  const c = new TraceCounter(pageBytes);
  for (const r of recs) c.add(r, offset);
  return c.counts();
}

/** Accumulates TraceCounts one record at a time (streamed traces). */
export class TraceCounter {
  private readonly c: TraceCounts = { I: 0, L: 0, S: 0, M: 0, accesses: 0, pages: 0 };
  private readonly seen = new Set<number>();
  constructor(readonly pageBytes = 4096) {}
  add(r: TraceRecord, offset = 0): void {
    this.c[r.kind]++;
    this.c.accesses++;
    const first = Math.floor((r.addr + offset) / this.pageBytes), last = Math.floor((r.addr + offset + r.size - 1) / this.pageBytes);
    for (let p = first; p <= last; p++) this.seen.add(p);
  }
  counts(): TraceCounts { return { ...this.c, pages: this.seen.size }; }
}

// Store values cycle through 256 preallocated BigInts: no BigInt is made per access.
const STORE_VALUES = Array.from({ length: 256 }, (_, i) => BigInt(i));

/**
 * Appends one record to a batch at virtual address `va`: pieces of at most 8 bytes that stay
 * within a 4 KiB page; a modify is a load then a store. Returns the number of ops added.
 */
export function pushRecord(b: AccessBatch, kind: TraceKind, va: number, size: number, seq: number): number {
  let ops = 0;
  const value = STORE_VALUES[seq & 0xff];
  for (let a = va; a < va + size;) {
    const n = Math.min(8, va + size - a, 4096 - (a % 4096));
    if (kind === 'I') b.fetch(a, n);
    else if (kind === 'L') b.load(a, n);
    else if (kind === 'S') b.store(a, value, n);
    else { b.load(a, n).store(a, value, n); ops++; }
    ops++;
    a += n;
  }
  return ops;
}

/** The most ops pushRecord may add for one record (a page-crossing modify of MAX_ACCESS bytes). */
export const MAX_OPS_PER_RECORD = 2 * (MAX_ACCESS / 8 + 1);

function quote(s: string): string {
  return JSON.stringify(s.length > 60 ? s.slice(0, 57) + '...' : s);
}
