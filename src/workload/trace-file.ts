// Reading a lackey trace file as a stream, synchronously: a guest workload's fill() and a
// scenario's validation are synchronous, so records are pulled a chunk at a time and no more
// than one chunk of the file is held. Plain files are read with readSync. Gzip files (found
// by their magic bytes, whatever the name) are inflated by node:zlib in a worker thread that
// hands each inflated chunk over through a SharedArrayBuffer; the caller blocks on
// Atomics.wait until the next one is ready. Hand-off area layout:
//
//   Int32 [0] state: 0 empty (worker may write) | 1 chunk ready | 2 end of file | 3 error
//   Int32 [1] byte length of the chunk (or of the UTF-8 error message)
//   Int32 [2] 1 once the reader is closed (the worker stops)
//   bytes [16 … 16+CHUNK) the chunk
//
// A bad line throws a TraceLineError "file:line: field: message".

import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { TraceCounter, TraceLineError, isProblem, parseLackeyLine, type TraceCounts, type TraceRecord } from './lackey.js';

/** Bytes per chunk (plain reads and inflated gzip hand-offs alike). */
export const TRACE_CHUNK = 1 << 16;
/** How long to wait for the inflating worker before calling it stuck. */
const WORKER_TIMEOUT_MS = 120_000;

interface ByteSource { next(): Uint8Array | null; close(): void }

/** Whether a file starts with the gzip magic bytes 1f 8b. */
export function isGzip(path: string): boolean {
  const fd = openSync(path, 'r');
  try {
    const b = new Uint8Array(2);
    return readSync(fd, b, 0, 2, 0) === 2 && b[0] === 0x1f && b[1] === 0x8b;
  } finally { closeSync(fd); }
}

function plainSource(path: string, chunk: number): ByteSource {
  let fd: number | null = openSync(path, 'r');
  const buf = new Uint8Array(chunk);
  return {
    next() {
      if (fd === null) return null;
      const n = readSync(fd, buf, 0, chunk, null);
      if (n === 0) { this.close(); return null; }
      return buf.subarray(0, n);
    },
    close() { if (fd !== null) { closeSync(fd); fd = null; } },
  };
}

// The worker: CommonJS evaluated from this string, so it runs the same from the TypeScript
// sources, the built package and under test runners. Every failure is reported in the
// hand-off area (the caller is blocked and would not see a worker 'error' event).
const INFLATE_WORKER = `
const { workerData } = require('node:worker_threads');
const fs = require('node:fs'), zlib = require('node:zlib');
const { path, sab, chunk } = workerData;
const ctrl = new Int32Array(sab, 0, 4), data = new Uint8Array(sab, 16, chunk);
let done = false;
function put(state, bytes) {
  while (Atomics.load(ctrl, 0) !== 0 && Atomics.load(ctrl, 2) === 0) Atomics.wait(ctrl, 0, Atomics.load(ctrl, 0), 1000);
  if (Atomics.load(ctrl, 2) !== 0) { done = true; return false; }
  data.set(bytes, 0);
  Atomics.store(ctrl, 1, bytes.length);
  Atomics.store(ctrl, 0, state);
  Atomics.notify(ctrl, 0);
  return true;
}
function fail(e) {
  if (done) return;
  done = true;
  put(3, Buffer.from(String(e && e.message || e)).subarray(0, chunk));
  process.exit(0);
}
try {
  const input = fs.createReadStream(path), gunzip = zlib.createGunzip();
  input.on('error', fail); gunzip.on('error', fail);
  gunzip.on('data', (buf) => {
    for (let at = 0; at < buf.length && !done; at += chunk) {
      if (!put(1, buf.subarray(at, at + chunk))) { input.destroy(); gunzip.destroy(); process.exit(0); }
    }
  });
  gunzip.on('end', () => { if (!done) { done = true; put(2, new Uint8Array(0)); } process.exit(0); });
  input.pipe(gunzip);
} catch (e) { fail(e); }
`;

function gzipSource(path: string, chunk: number): ByteSource {
  const sab = new SharedArrayBuffer(16 + chunk);
  const ctrl = new Int32Array(sab, 0, 4), data = new Uint8Array(sab, 16, chunk);
  const worker = new Worker(INFLATE_WORKER, { eval: true, workerData: { path, sab, chunk } });
  worker.unref();
  let ended = false;
  const out = new Uint8Array(chunk);
  const stop = () => {
    if (ended) return;
    ended = true;
    Atomics.store(ctrl, 2, 1);
    Atomics.notify(ctrl, 0);
    void worker.terminate();
  };
  return {
    next() {
      if (ended) return null;
      while (Atomics.load(ctrl, 0) === 0) {
        if (Atomics.wait(ctrl, 0, 0, WORKER_TIMEOUT_MS) === 'timed-out') { stop(); throw new Error(`${path}: gzip reader stalled`); }
      }
      const state = Atomics.load(ctrl, 0), n = Atomics.load(ctrl, 1);
      if (state === 2) { stop(); return null; }
      if (state === 3) { const msg = Buffer.from(data.subarray(0, n)).toString(); stop(); throw new Error(`${path}: not a readable gzip file: ${msg}`); }
      out.set(data.subarray(0, n), 0);
      Atomics.store(ctrl, 0, 0);
      Atomics.notify(ctrl, 0);
      return out.subarray(0, n);
    },
    close: stop,
  };
}

/** A trace file's records, one at a time, read a chunk at a time (plain or gzip). */
export class TraceReader {
  /** Lines read so far (the number of the line last parsed). */
  line = 0;
  private readonly src: ByteSource;
  private readonly decoder = new TextDecoder('latin1');
  private lines: string[] = [];
  private at = 0;
  private carry = '';
  private eof = false;

  constructor(readonly path: string, opts: { chunkBytes?: number; name?: string } = {}) {
    const chunk = opts.chunkBytes ?? TRACE_CHUNK;
    this.name = opts.name ?? path;
    this.src = isGzip(path) ? gzipSource(path, chunk) : plainSource(path, chunk);
  }
  /** How errors name the file. */
  readonly name: string;

  /** The next record, or null at the end; throws a TraceLineError at a bad line. */
  next(): TraceRecord | null {
    for (;;) {
      while (this.at < this.lines.length) {
        this.line++;
        const r = parseLackeyLine(this.lines[this.at++]);
        if (r === null) continue;
        if (isProblem(r)) { this.close(); throw new TraceLineError(this.name, this.line, r); }
        return r;
      }
      if (!this.refill()) return null;
    }
  }

  /** Stops reading (the gzip worker ends); next() then returns null. */
  close(): void { this.src.close(); this.lines = []; this.at = 0; this.carry = ''; this.eof = true; }

  private refill(): boolean {
    if (this.eof) return false;
    const bytes = this.src.next();
    let text: string;
    if (bytes === null) {
      this.eof = true;
      if (this.carry === '') return false;
      text = this.carry; this.carry = '';
      this.lines = [text];
    } else {
      text = this.carry + this.decoder.decode(bytes);
      const cut = text.lastIndexOf('\n');
      this.carry = text.slice(cut + 1);
      this.lines = cut < 0 ? [] : text.slice(0, cut).split('\n');
    }
    for (let i = 0; i < this.lines.length; i++) if (this.lines[i].endsWith('\r')) this.lines[i] = this.lines[i].slice(0, -1);
    this.at = 0;
    return true;
  }
}

/** What a whole trace holds: counts by kind, and distinct pages for each page size. */
export interface TraceScan extends TraceCounts {
  /** Distinct 2 MiB and 1 GiB pages (pages, from TraceCounts, is 4 KiB pages). */
  pages2M: number; pages1G: number;
  lines: number;
}

const scans = new Map<string, { key: string; scan: TraceScan }>();

/**
 * Reads a whole trace once (streamed) and returns its counts; throws a TraceLineError at a bad
 * line. Cached by path, size and modification time, so validation and a run read it once each.
 */
export function scanTrace(path: string, opts: { chunkBytes?: number; name?: string } = {}): TraceScan {
  const st = statSync(path);
  const key = `${st.size}:${st.mtimeMs}:${opts.chunkBytes ?? TRACE_CHUNK}`;
  const hit = scans.get(path);
  if (hit && hit.key === key) return { ...hit.scan };
  const c4 = new TraceCounter(4096), c2 = new TraceCounter(2 ** 21), c1 = new TraceCounter(2 ** 30);
  const r = new TraceReader(path, opts);
  try {
    for (let rec = r.next(); rec; rec = r.next()) { c4.add(rec); c2.add(rec); c1.add(rec); }
  } finally { r.close(); }
  const scan: TraceScan = { ...c4.counts(), pages2M: c2.counts().pages, pages1G: c1.counts().pages, lines: r.line };
  scans.set(path, { key, scan });
  return { ...scan };
}
