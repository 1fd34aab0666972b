// npm run bench: MMU-core throughput, printed as JSON. Every figure is the median of
// REPS runs taken in this one process. A ratio (…Over…) is the median of per-rep ratios
// of two figures measured back to back (pair()), so a burst of load from other processes
// hits both sides of one ratio rather than one side of it. Nothing here asserts a speed.
//
// Batches are 16 Ki ops (384 KiB, cache-resident) executed ROUNDS times per run, so the
// figures measure the engine rather than streaming the op buffer from DRAM.

import os from 'node:os';
import { Machine, CR0, CR4, EFER, PageTableBuilder, FrameBump, type Cpu, type AccessBatch } from '../src/index.js';
import { Rng } from '../src/util/rng.js';
import { virtBench } from './virt.js';
import { cpuBench } from './cpu.js';
import { scaleBench } from './scale.js';
import { osBench } from './os.js';
import { FrameOps } from '../src/core/hash.js';

const REPS = Number(process.env.BENCH_REPS ?? 7);
const OPS = 1 << 14;
const ROUNDS = 64;
const VBASE = 0x7f00_0000_0000;
const DATA = 0x400_0000n; // data frames from 64 MiB
const REGION_PAGES = 16384; // 64 MiB mapped

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

// Warm-up: runs fn for WARM_MS first. V8 starts Wasm on its baseline tier (Liftoff) and
// swaps in optimized code when a background compile lands, which on a busy machine can
// take many calls (raw loads measured 52 M/s before it, 1.7 G/s after).
const WARM_MS = 300;
function warm(...fns: Array<() => number>): void {
  const until = performance.now() + WARM_MS;
  do for (const fn of fns) fn(); while (performance.now() < until);
}

function rate(fn: () => number): number {
  warm(fn);
  const runs: number[] = [];
  for (let r = 0; r < REPS; r++) {
    const t0 = process.hrtime.bigint();
    let n = 0;
    for (let k = 0; k < ROUNDS; k++) n += fn();
    runs.push(n / (Number(process.hrtime.bigint() - t0) / 1e9));
  }
  return median(runs);
}

/** Two rates measured back to back in every rep; their medians and the median ratio a / b. */
function pair(a: () => number, b: () => number): { a: number; b: number; ratio: number } {
  warm(a, b);
  const ra: number[] = [], rb: number[] = [], ratios: number[] = [];
  const once = (fn: () => number): number => {
    const t0 = process.hrtime.bigint();
    let n = 0;
    for (let k = 0; k < ROUNDS; k++) n += fn();
    return n / (Number(process.hrtime.bigint() - t0) / 1e9);
  };
  for (let r = 0; r < REPS; r++) {
    const x = once(a), y = once(b);
    ra.push(x); rb.push(y); ratios.push(x / y);
  }
  return { a: median(ra), b: median(rb), ratio: median(ratios) };
}

function addressSpace(m: Machine, levels: 4 | 5): bigint {
  const top = levels === 4 ? 0x100_0000n : 0x200_0000n;
  const pt = new PageTableBuilder(m.memory, new FrameBump(m.memory, top, top + 0x100_0000n), levels);
  pt.mapRange(BigInt(VBASE), DATA, REGION_PAGES * 4096, 4096, { accessed: true, dirty: true });
  return pt.root;
}

function cpuFor(m: Machine, root: bigint, levels: 4 | 5, opts: Parameters<Machine['createCpu']>[0] = {}): Cpu {
  const cpu = m.createCpu(opts);
  cpu.setRegisters({ cr0: CR0.PG | CR0.WP, cr3: root, cr4: CR4.PAE | (levels === 5 ? CR4.LA57 : 0n), efer: EFER.LME | EFER.NXE });
  return cpu;
}

/** Random 8-byte ops over `pages` pages of the region, at random offsets (seeded). */
function ops(m: Machine, pages: number, kind: 'load' | 'translate'): AccessBatch {
  const b = m.createBatch(OPS);
  const rng = new Rng(42);
  for (let i = 0; i < OPS; i++) b.set(i, kind, VBASE + rng.below(pages) * 4096 + rng.below(512) * 8, 8);
  return b;
}

function exec(cpu: Cpu, b: AccessBatch): number {
  const r = cpu.execute(b);
  if (r.exit.reason !== 'end') throw new Error(`bench batch exited: ${r.exit.reason}`);
  return r.completed;
}

async function main(): Promise<void> {
  const m = await Machine.create({ memoryBytes: 256 * 2 ** 20 });
  const out: Record<string, number | string> = {};
  const root4 = addressSpace(m, 4), root5 = addressSpace(m, 5);

  // TLB hits: 32 pages fit the 64-entry L1 DTLB.
  const hotLoads = ops(m, 32, 'load'), hotXlate = ops(m, 32, 'translate');
  const hit = cpuFor(m, root4, 4);
  const hitVsRaw = pair(() => exec(hit, hotLoads), () => { m.core.rawLoads(hotLoads.ptr, OPS); return OPS; });
  out.tlbHitLoadsPerSec = hitVsRaw.a;
  out.rawLoadsPerSec = hitVsRaw.b;
  out.tlbHitLoadsOverRawLoads = hitVsRaw.ratio;
  out.tlbHitTranslationsPerSec = rate(() => exec(hit, hotXlate));

  // One JS→Wasm call per access, for contrast with the batch.
  const vas = Array.from({ length: OPS }, (_, i) => BigInt(VBASE + (i % 32) * 4096));
  out.perCallTranslationsPerSec = rate(() => { for (const va of vas) hit.translate(va); return OPS; });
  out.batchedOverPerCall = out.tlbHitTranslationsPerSec / out.perCallTranslationsPerSec;

  // Walks: TLBs disabled so every op walks; translate-only ops isolate the walk.
  const cold = ops(m, REGION_PAGES, 'translate');
  const bare = cpuFor(m, root4, 4, { tlb: false, psc: false });
  const walkVsNaive = pair(() => exec(bare, cold), () => { m.core.naiveWalks(cold.ptr, OPS, root4); return OPS; });
  out.naiveWalks4LevelPerSec = walkVsNaive.b;
  out.fullWalk4OverNaive = walkVsNaive.ratio;
  for (const levels of [4, 5] as const) {
    for (const psc of [false, true]) {
      const w = cpuFor(m, levels === 4 ? root4 : root5, levels, { tlb: false, psc });
      const key = `walks${levels}Level${psc ? 'Psc' : 'NoPsc'}`;
      out[`${key}PerSec`] = levels === 4 && !psc ? walkVsNaive.a : rate(() => exec(w, cold));
      const c = (levels === 4 && !psc ? bare : w).counters();
      out[`${key}RefsPerWalk`] = c.walkRefs / c.walks;
    }
  }

  // End to end with the default TLBs: random loads over 64 MiB (mostly L2 misses), against
  // the bare walk (TLBs and PSCs off) of the same pages.
  const coldLoads = ops(m, REGION_PAGES, 'load');
  for (const levels of [4, 5] as const) {
    const cpu = cpuFor(m, levels === 4 ? root4 : root5, levels);
    const w = cpuFor(m, levels === 4 ? root4 : root5, levels, { tlb: false, psc: false });
    const p = pair(() => exec(cpu, coldLoads), () => exec(w, cold));
    out[`random64MiB${levels}LevelLoadsPerSec`] = p.a;
    out[`random64MiB${levels}LevelOverBareWalk`] = p.ratio;
    const c = cpu.counters();
    out[`random64MiB${levels}LevelWalksPer1000`] = (1000 * c.walks) / c.accesses;
  }
  // The data side alone: plain Wasm loads of the same random addresses over 64 MiB (the
  // host's caches and TLB miss them too, but the host CPU overlaps independent loads).
  out.rawRandomLoads64MiBPerSec = rate(() => { m.core.rawLoads(coldLoads.ptr, OPS); return OPS; });
  // Where a random miss's time goes: ns per random translate over 64 MiB with one kind of
  // cache on at a time (L1 = the 64-entry 4 KiB data TLB, L2 = the 1536-entry STLB).
  const off = { l1i4k: false, l1i2m: false, l1d4k: false, l1d2m: false, l1d1g: false, l2: false } as const;
  const parts = {
    bare: { tlb: false, psc: false }, psc: { tlb: false }, l1: { tlb: { ...off, l1d4k: { entries: 64, ways: 4 } }, psc: false },
    l2: { tlb: { ...off, l2: { entries: 1536, ways: 12 } }, psc: false }, all: {},
  } as const;
  for (const [k, opts] of Object.entries(parts)) {
    const cpu = cpuFor(m, root4, 4, opts as Parameters<Machine['createCpu']>[0]);
    out[`randomTranslateNs_${k}`] = 1e9 / rate(() => exec(cpu, cold));
  }
  Object.assign(out, await virtBench(rate));
  // Guest machine code on the interpreter, beside the same loops on the host CPU.
  Object.assign(out, await cpuBench(REPS));
  // The shipped C guest OS: boot to its shell prompt, and MIPS of user programs (bench/os.ts).
  if (process.env.BENCH_OS !== '0') Object.assign(out, await osBench(REPS));

  // Page sharing's scanner: batched xxHash64 over 4 KiB frames and full compares (Wasm),
  // in GB/s of frame data, beside a plain Wasm memory copy of the same frames. The frames
  // hold random bytes (untouched memory would read the OS's zero page).
  const FR = 1024;
  const ops4k = new FrameOps(m.core, Number(m.memory.size / 4096), FR);
  const hfns = Uint32Array.from({ length: FR }, (_, i) => 0x4000 + i);
  const twins = Uint32Array.from({ length: FR }, (_, i) => 0x8000 + i);
  const noise = new Uint8Array(FR * 4096);
  const rng = new Rng(9);
  for (let i = 0; i < noise.length; i += 4) { const v = rng.below(2 ** 32); noise[i] = v; noise[i + 1] = v >>> 8; noise[i + 2] = v >>> 16; noise[i + 3] = v >>> 24; }
  m.memory.write(0x4000n << 12n, noise);
  m.memory.write(0x8000n << 12n, noise); // identical twins: compares read both frames in full
  const GB = 4096 / 1e9;
  out.pagesHashedPerSec = rate(() => { ops4k.hash(hfns); return FR; });
  out.pagesComparedPerSec = rate(() => { ops4k.equal(hfns, twins); return FR; });
  const lists = m.core.allocBytes(BigInt(8 * FR));
  new Uint32Array(m.core.memory.buffer, lists, FR).set(hfns);
  new Uint32Array(m.core.memory.buffer, lists + 4 * FR, FR).set(Uint32Array.from({ length: FR }, (_, i) => 0xc000 + i));
  out.pagesCopiedPerSec = rate(() => m.core.copyFrames(lists, lists + 4 * FR, FR));
  out.hashGBPerSec = out.pagesHashedPerSec * GB;
  out.compareGBPerSec = out.pagesComparedPerSec * GB; // bytes of one side; both are read
  out.memoryCopyGBPerSec = out.pagesCopiedPerSec * GB;
  if (process.env.BENCH_SCALE !== '0') Object.assign(out, await scaleBench());
  out.opsPerBatch = OPS;
  out.reps = REPS;
  out.node = process.version;
  out.machine = `${os.cpus()[0]?.model ?? 'unknown CPU'} × ${os.cpus().length}, ${os.platform()} ${os.release()}`;
  out.loadAverage = os.loadavg()[0];
  out.date = new Date().toISOString();
  console.log(JSON.stringify(out, null, 2));
}

main().catch((e) => { console.error(e); process.exit(1); });
