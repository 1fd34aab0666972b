// The hypervisor's swap store: a real file on disk cut into fixed 4 KiB slots (ESX keeps
// one swap file per VM or per host; here one file may serve several VMs).
//
// File layout: slot i occupies bytes [i·4096, (i+1)·4096); nothing else is in the file.
//
//   offset 0        4096       8192              capacity·4096
//   ┌──────────────┬──────────┬───── ··· ───────┬┐
//   │ slot 0 page  │ slot 1   │                 ││   (sparse until written)
//   └──────────────┴──────────┴───── ··· ───────┴┘
//
// The metadata stays in memory, as a real swapper keeps its swap map in RAM:
// - a free list of slots: a LIFO stack (a freed slot is the next one handed out) that
//   starts in ascending order, so allocation is O(1) and deterministic; with a position
//   index, so a run of contiguous free slots (allocRun, for clustered writes) can be taken
//   out of it in O(run);
// - a per-slot checksum of the bytes written: the first 8 bytes of the page's SHA-256
//   (node:crypto, native and fast enough for 4 KiB), kept as a u64. A read recomputes it
//   and throws SwapChecksumError on a mismatch, so a damaged file is never handed to a
//   guest as its memory.
//
// All I/O is synchronous (fs.readSync / fs.writeSync at explicit offsets): results do not
// depend on I/O timing, and the simulated clock charges the disk cost separately. The
// file operations go through a SwapIo (node:fs by default), so a test can inject faults
// (ENOSPC, EIO, short reads, flipped bits) into one swap file without touching fs itself.
// Any failed or short transfer throws SwapIoError naming the file, slot and cause.
//
// Slot numbers go in the 24-bit frame field of a p2m entry, so capacity is at most 2^24
// slots (64 GiB of swap).

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createHash } from 'node:crypto';

export const SLOT_BYTES = 4096;
/** The p2m entry's frame field holds the slot: 24 bits. */
export const MAX_SLOTS = 1 << 24;

/** The file operations a SwapFile uses; nodeSwapIo by default. Transfers return bytes moved. */
export interface SwapIo {
  /** Creates or truncates `path` for reading and writing; returns a descriptor. */
  open(path: string): number;
  truncate(fd: number, bytes: number): void;
  write(fd: number, data: Uint8Array, position: number): number;
  read(fd: number, into: Uint8Array, position: number): number;
  close(fd: number): void;
}

export const nodeSwapIo: SwapIo = {
  open: (p) => fs.openSync(p, 'w+'),
  truncate: (fd, n) => fs.ftruncateSync(fd, n),
  write: (fd, data, pos) => fs.writeSync(fd, data, 0, data.length, pos),
  read: (fd, into, pos) => fs.readSync(fd, into, 0, into.length, pos),
  close: (fd) => fs.closeSync(fd),
};

export interface SwapFileOptions {
  /** File operations (default nodeSwapIo): tests inject I/O faults here. */
  io?: SwapIo;
  /** Number of 4 KiB slots (1..2^24). */
  capacity: number;
  /**
   * The swap file's path. It is created or truncated, and left in place by close().
   * Default: `swap` in a new temporary directory (os.tmpdir()/memvisor-swap-XXXXXX),
   * which close() removes.
   */
  path?: string;
}

/** writes and reads count slots; writeOps counts disk transfers (a clustered write moves several slots in one). */
export interface SwapFileStats { reads: number; writes: number; writeOps: number; bytesRead: number; bytesWritten: number }

/** Every slot is in use. */
export class SwapFullError extends Error {
  constructor(readonly file: string, readonly capacity: number) {
    super(`swap file ${file} is full (${capacity} slots of 4 KiB in use)`);
    this.name = 'SwapFullError';
  }
}

/** A slot's bytes on disk no longer match what was written (the file was damaged). */
export class SwapChecksumError extends Error {
  constructor(readonly file: string, readonly slot: number, readonly expected: bigint, readonly actual: bigint) {
    super(`swap slot ${slot} in ${file} is corrupt: checksum ${hex64(actual)} read, ${hex64(expected)} written`);
    this.name = 'SwapChecksumError';
  }
}

/** A read or write of a slot failed or moved fewer than 4096 bytes (the slot's state is unchanged). */
export class SwapIoError extends Error {
  constructor(readonly file: string, readonly slot: number, readonly op: 'read' | 'write', detail: string,
              readonly cause?: unknown) {
    super(`swap slot ${slot} in ${file}: ${op} failed: ${detail}`);
    this.name = 'SwapIoError';
  }
}

const hex64 = (v: bigint): string => `0x${v.toString(16).padStart(16, '0')}`;

/** First 8 bytes of SHA-256, little-endian, as a u64 (the per-slot checksum). */
export function slotChecksum(data: Uint8Array): bigint {
  const d = createHash('sha256').update(data).digest();
  return d.readBigUInt64LE(0);
}

export class SwapFile {
  readonly path: string;
  readonly capacity: number;
  readonly stats: SwapFileStats = { reads: 0, writes: 0, writeOps: 0, bytesRead: 0, bytesWritten: 0 };
  private fd: number | null;
  private readonly io: SwapIo;
  private readonly tempDir: string | null;
  private readonly stack: Int32Array;     // free slots; top = stack[top-1]
  private readonly pos: Int32Array;       // slot → its index in stack, -1 when allocated
  private runCursor = 0;                  // where allocRun's next-fit scan starts
  private readonly allocated: Uint8Array; // 1 = in use
  private readonly sums: BigUint64Array;  // checksum of the bytes last written to each slot
  private readonly written: Uint8Array;   // 1 = the slot holds a write since its allocation
  private top: number;

  constructor(o: SwapFileOptions) {
    const n = o.capacity;
    if (!Number.isInteger(n) || n < 1 || n > MAX_SLOTS) {
      throw new RangeError(`swap capacity must be 1..${MAX_SLOTS} slots (slot numbers fill a 24-bit p2m field), got ${n}`);
    }
    this.capacity = n;
    this.tempDir = o.path === undefined ? fs.mkdtempSync(path.join(os.tmpdir(), 'memvisor-swap-')) : null;
    this.path = o.path ?? path.join(this.tempDir!, 'swap');
    this.io = o.io ?? nodeSwapIo;
    this.fd = this.io.open(this.path);
    this.io.truncate(this.fd, n * SLOT_BYTES); // sparse: disk is used only by written slots
    this.stack = new Int32Array(n);
    this.pos = new Int32Array(n);
    for (let i = 0; i < n; i++) { this.stack[i] = n - 1 - i; this.pos[n - 1 - i] = i; } // slot 0 on top
    this.top = n;
    this.allocated = new Uint8Array(n);
    this.written = new Uint8Array(n);
    this.sums = new BigUint64Array(n);
  }

  /** Slots in use. */
  get inUse(): number { return this.capacity - this.top; }
  /** Free slots. */
  get freeSlots(): number { return this.top; }
  get isClosed(): boolean { return this.fd === null; }
  /** The temporary directory this file created (removed by close), or null for a given path. */
  get directory(): string | null { return this.tempDir; }

  isAllocated(slot: number): boolean { return this.validSlot(slot) && this.allocated[slot] === 1; }

  /** A free slot; throws SwapFullError when every slot is in use. */
  alloc(): number {
    this.open();
    if (this.top === 0) throw new SwapFullError(this.path, this.capacity);
    const s = this.stack[--this.top];
    this.pos[s] = -1;
    this.allocated[s] = 1;
    this.written[s] = 0;
    return s;
  }

  /**
   * `count` contiguous free slots (a cluster, written with one transfer by writeRun);
   * returns the first, or null when no such run is free. Next-fit: the scan starts where
   * the last run ended, so consecutive clusters sit side by side on disk.
   */
  allocRun(count: number): number | null {
    this.open();
    if (!Number.isInteger(count) || count < 1 || count > this.capacity) throw new RangeError(`a run must be 1..${this.capacity} slots, got ${count}`);
    if (count > this.top) return null;
    for (let tried = 0, start = this.runCursor; tried < this.capacity;) {
      if (start + count > this.capacity) { tried += this.capacity - start; start = 0; continue; }
      let len = 0;
      while (len < count && !this.allocated[start + len]) len++;
      if (len === count) {
        for (let s = start; s < start + count; s++) this.take(s);
        this.runCursor = (start + count) % this.capacity;
        return start;
      }
      tried += len + 1;
      start += len + 1;
    }
    return null;
  }

  /** Takes one particular free slot out of the stack (swap with the top, then pop). */
  private take(slot: number): void {
    const i = this.pos[slot], last = this.stack[--this.top];
    this.stack[i] = last;
    this.pos[last] = i;
    this.pos[slot] = -1;
    this.allocated[slot] = 1;
    this.written[slot] = 0;
  }

  /** Writes one page to an allocated slot and records its checksum. */
  write(slot: number, data: Uint8Array): void {
    const fd = this.open();
    this.checkAllocated(slot, 'write');
    if (data.length !== SLOT_BYTES) throw new RangeError(`a swap slot holds ${SLOT_BYTES} bytes, got ${data.length}`);
    // A failed write leaves the slot unwritten: its old checksum could not vouch for it.
    this.written[slot] = 0;
    this.transfer(slot, 'write', () => this.io.write(fd, data, slot * SLOT_BYTES));
    this.sums[slot] = slotChecksum(data);
    this.written[slot] = 1;
    this.stats.writes++;
    this.stats.writeOps++;
    this.stats.bytesWritten += SLOT_BYTES;
  }

  /**
   * Writes pages to the allocated slots [first, first + n) with one transfer (n = data's
   * length / 4096) and records each slot's checksum. A failed or short transfer throws
   * SwapIoError and leaves every slot of the run unwritten.
   */
  writeRun(first: number, data: Uint8Array): void {
    const fd = this.open();
    const n = data.length / SLOT_BYTES;
    if (!Number.isInteger(n) || n < 1) throw new RangeError(`a run holds whole slots of ${SLOT_BYTES} bytes, got ${data.length} bytes`);
    for (let s = first; s < first + n; s++) { this.checkAllocated(s, 'write'); this.written[s] = 0; }
    this.transfer(first, 'write', () => this.io.write(fd, data, first * SLOT_BYTES), data.length);
    for (let i = 0; i < n; i++) {
      this.sums[first + i] = slotChecksum(data.subarray(i * SLOT_BYTES, (i + 1) * SLOT_BYTES));
      this.written[first + i] = 1;
    }
    this.stats.writes += n;
    this.stats.writeOps++;
    this.stats.bytesWritten += data.length;
  }

  /** Reads an allocated, written slot and verifies its checksum (SwapChecksumError on a mismatch). */
  read(slot: number): Uint8Array {
    const fd = this.open();
    this.checkAllocated(slot, 'read');
    if (!this.written[slot]) throw new Error(`swap slot ${slot} in ${this.path} was allocated but never written`);
    const out = new Uint8Array(SLOT_BYTES);
    this.transfer(slot, 'read', () => this.io.read(fd, out, slot * SLOT_BYTES));
    const sum = slotChecksum(out);
    if (sum !== this.sums[slot]) throw new SwapChecksumError(this.path, slot, this.sums[slot], sum);
    this.stats.reads++;
    this.stats.bytesRead += SLOT_BYTES;
    return out;
  }

  /** Runs one 4 KiB transfer; any exception or short count becomes a SwapIoError. */
  private transfer(slot: number, op: 'read' | 'write', f: () => number, bytes = SLOT_BYTES): number {
    let n: number;
    try {
      n = f();
    } catch (e) {
      const code = (e as { code?: string }).code;
      throw new SwapIoError(this.path, slot, op, code ? `${code} (${(e as Error).message})` : String(e), e);
    }
    if (n !== bytes) throw new SwapIoError(this.path, slot, op, `short ${op} (${n} of ${bytes} bytes)`);
    return n;
  }

  /** Returns a slot to the free list (its bytes stay on disk until the slot is reused). */
  free(slot: number): void {
    this.open();
    this.checkAllocated(slot, 'free');
    this.allocated[slot] = 0;
    this.written[slot] = 0;
    this.pos[slot] = this.top;
    this.stack[this.top++] = slot;
  }

  /** Closes the file; removes the temporary directory if this file created it. Idempotent. */
  close(): void {
    if (this.fd === null) return;
    this.io.close(this.fd);
    this.fd = null;
    if (this.tempDir !== null) fs.rmSync(this.tempDir, { recursive: true, force: true });
  }

  private validSlot(slot: number): boolean { return Number.isInteger(slot) && slot >= 0 && slot < this.capacity; }

  private checkAllocated(slot: number, what: string): void {
    if (!this.validSlot(slot)) throw new RangeError(`swap slot ${slot} outside ${this.path} (${this.capacity} slots)`);
    if (!this.allocated[slot]) throw new Error(`${what} of swap slot ${slot} in ${this.path}, which is not allocated`);
  }

  private open(): number {
    if (this.fd === null) throw new Error(`swap file ${this.path} is closed`);
    return this.fd;
  }
}
