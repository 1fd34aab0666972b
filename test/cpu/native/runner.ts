// Builds the native helper (harness.c) with the system gcc into a temp directory and runs
// cases through it. See harness.c for the protocol; this is its TypeScript end.

import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CODE_BASE, CODE_SIZE, DATA_BASE, DATA_SIZE, GS_BASE } from '../layout.js';

const SOURCE = fileURLToPath(new URL('./harness.c', import.meta.url));
const MAGIC = 0x3148564d;

export interface NativeCase {
  /** rax rcx rdx rbx rsp rbp rsi rdi r8..r15 */
  gpr: bigint[];
  rflags: bigint;
  code: Uint8Array;
}

export type Status = 'end' | 'fault' | 'crash';
export interface NativeResult {
  status: Status;
  /** Exception vector for a fault (host trap number); for a crash, the signal that killed the child. */
  vector: number;
  errorCode: bigint;
  cr2: bigint;
  gpr: bigint[];
  rip: bigint;
  rflags: bigint;
  /** Nanoseconds from entering the snippet to its end marker or fault (includes signal delivery). */
  ns: number;
  /** Data-region bytes that differ from the batch's image, by offset from the data base. */
  diff: Map<number, number>;
}

export interface Layout { codeBase: number; codeSize: number; dataBase: number; dataSize: number; gsBase: number }
export const TEST_LAYOUT: Layout = { codeBase: CODE_BASE, codeSize: CODE_SIZE, dataBase: DATA_BASE, dataSize: DATA_SIZE, gsBase: GS_BASE };

export interface Batch {
  cases: NativeCase[];
  /** Initial data region (dataSize bytes); omitted → zeros. */
  image?: Uint8Array;
}

/** Why the helper cannot run here, or undefined when it can. */
export function nativeUnavailable(): string | undefined {
  if (process.arch !== 'x64') return `host is ${process.arch}, not x86-64`;
  if (process.platform !== 'linux') return `host OS is ${process.platform}, the helper needs Linux signals`;
  try { execFileSync('gcc', ['--version'], { stdio: 'ignore' }); } catch { return 'no gcc on PATH'; }
  return undefined;
}

export class NativeHelper {
  private constructor(private readonly dir: string, readonly binary: string) {}

  /** Compiles harness.c with gcc -O2 into a fresh temp directory. */
  static build(): NativeHelper {
    const dir = mkdtempSync(join(tmpdir(), 'memvisor-native-'));
    const binary = join(dir, 'harness');
    execFileSync('gcc', ['-O2', '-Wall', '-Wextra', '-Werror', '-o', binary, SOURCE], { stdio: 'pipe' });
    return new NativeHelper(dir, binary);
  }

  dispose(): void { rmSync(this.dir, { recursive: true, force: true }); }

  /** Runs every batch (one forked child each) and returns the results in case order. */
  run(batches: Batch[], layout: Layout = TEST_LAYOUT, opts: { noDiff?: boolean } = {}): NativeResult[][] {
    const withImage = batches.some((b) => b.image);
    const input = encodeInput(batches, layout, withImage, opts.noDiff ?? false);
    const r = spawnSync(this.binary, [], { input, maxBuffer: 1 << 30 });
    if (r.error) throw r.error;
    if (r.status !== 0) throw new Error(`native helper failed (${r.status ?? r.signal}): ${r.stderr.toString()}`);
    return decodeOutput(r.stdout, batches.map((b) => b.cases.length));
  }
}

class Writer {
  private buf = Buffer.alloc(1 << 16);
  private n = 0;
  private room(k: number): void {
    if (this.n + k <= this.buf.length) return;
    const b = Buffer.alloc(Math.max(this.buf.length * 2, this.n + k));
    this.buf.copy(b, 0, 0, this.n);
    this.buf = b;
  }
  u32(v: number): void { this.room(4); this.buf.writeUInt32LE(v >>> 0, this.n); this.n += 4; }
  u64(v: bigint | number): void { this.room(8); this.buf.writeBigUInt64LE(BigInt.asUintN(64, BigInt(v)), this.n); this.n += 8; }
  bytes(b: Uint8Array): void { this.room(b.length); this.buf.set(b, this.n); this.n += b.length; }
  done(): Buffer { return this.buf.subarray(0, this.n); }
}

function encodeInput(batches: Batch[], l: Layout, withImage: boolean, noDiff: boolean): Buffer {
  const w = new Writer();
  w.u32(MAGIC);
  w.u32((withImage ? 1 : 0) | (noDiff ? 2 : 0));
  for (const v of [l.codeBase, l.codeSize, l.dataBase, l.dataSize, l.gsBase]) w.u64(v);
  w.u32(batches.length);
  for (const b of batches) {
    w.u32(b.cases.length);
    if (withImage) {
      const img = b.image ?? new Uint8Array(l.dataSize);
      if (img.length !== l.dataSize) throw new Error(`data image is ${img.length} bytes, layout says ${l.dataSize}`);
      w.bytes(img);
    }
    for (const c of b.cases) {
      if (c.gpr.length !== 16) throw new Error('a case needs 16 GPRs');
      if (c.code.length + 2 > l.codeSize && c.code.length !== l.codeSize) throw new Error(`snippet of ${c.code.length} bytes does not fit the code page`);
      for (const g of c.gpr) w.u64(g);
      w.u64(c.rflags);
      w.u32(c.code.length);
      w.bytes(c.code);
    }
  }
  return w.done();
}

const STATUS: Status[] = ['end', 'fault', 'crash'];

function decodeOutput(out: Buffer, counts: number[]): NativeResult[][] {
  let p = 0;
  const u32 = () => { const v = out.readUInt32LE(p); p += 4; return v; };
  const u64 = () => { const v = out.readBigUInt64LE(p); p += 8; return v; };
  const all: NativeResult[][] = [];
  for (const n of counts) {
    const rs: NativeResult[] = [];
    for (let i = 0; i < n; i++) {
      const status = STATUS[u32()];
      const vector = u32();
      const errorCode = u64(), cr2 = u64();
      const gpr = Array.from({ length: 16 }, u64);
      const rip = u64(), rflags = u64(), ns = Number(u64());
      const diff = new Map<number, number>();
      for (let k = u32(); k > 0; k--) { const off = u32(); diff.set(off, out[p++]); }
      rs.push({ status, vector, errorCode, cr2, gpr, rip, rflags, ns, diff });
    }
    all.push(rs);
  }
  if (p !== out.length) throw new Error(`native helper output has ${out.length - p} stray bytes`);
  return all;
}

/** The helper's source, for reports that want to show what ran. */
export function helperSource(): string { return readFileSync(SOURCE, 'utf8'); }
