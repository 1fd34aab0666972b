// npm run bench:ab -- a.wasm b.wasm [...]: the miss-path figures of several builds of the
// MMU core, measured in one process with the builds taking turns, so a change is judged
// against its base under the same load (a figure from another run, or another moment, can
// differ by more than the change). Make the base build with, for example:
//   git worktree add /tmp/base <commit> && npx asc /tmp/base/assembly/index.ts \
//     --config asconfig.json --target release --outFile /tmp/base.wasm
// The builds must share this checkout's ABI (src/core/abi.ts checks it). Prints JSON: per
// build and figure, the median and best of REPS rounds, in ns per op of process CPU time
// (robust when other processes share the cores). Asserts nothing.
// The builds' machines are made in the order given, and the first one's can measure a few
// percent faster (seen on the 2D walks: where its memory lands). Run both orders
// (`-- b.wasm a.wasm` too) and trust a difference only if it shows in both.
//
//   randomLoad, randomTranslate   random 8-byte ops over 64 MiB, default TLBs and PSCs
//   bareWalk                      random translates over 64 MiB, every cache off
//   walk2DUncached, walk2DCached  random translates of a nested guest (bench/virt.ts's)

import { readFileSync } from 'node:fs';
import { Machine, CR0, CR4, EFER, PageTableBuilder, FrameBump, type AccessBatch, type CpuOptions } from '../src/index.js';
import { GuestMachine } from '../src/experiment/modes.js';
import { setCoreSource } from '../src/core/wasm.js';
import { Rng } from '../src/util/rng.js';

const OPS = 1 << 14, VBASE = 0x7f00_0000_0000, PAGES = 16384, ROUNDS = 16;
const REPS = Number(process.env.REPS ?? 9);
const noTlbs = { l1i4k: false, l1i2m: false, l1d4k: false, l1d2m: false, l1d1g: false, l2: false } as const;

function randomOps(m: Machine, kind: 'load' | 'translate', seed: number): AccessBatch {
  const b = m.createBatch(OPS);
  const rng = new Rng(seed);
  for (let i = 0; i < OPS; i++) b.set(i, kind, VBASE + rng.below(PAGES) * 4096 + rng.below(512) * 8, 8);
  return b;
}

async function native(): Promise<Record<string, () => void>> {
  const m = await Machine.create({ memoryBytes: 256 * 2 ** 20 });
  const pt = new PageTableBuilder(m.memory, new FrameBump(m.memory, 0x100_0000n, 0x200_0000n), 4);
  pt.mapRange(BigInt(VBASE), 0x400_0000n, PAGES * 4096, 4096, { accessed: true, dirty: true });
  const cpu = (o: CpuOptions) => {
    const c = m.createCpu(o);
    c.setRegisters({ cr0: CR0.PG | CR0.WP, cr3: pt.root, cr4: CR4.PAE, efer: EFER.LME | EFER.NXE });
    return c;
  };
  const loads = randomOps(m, 'load', 42), xlates = randomOps(m, 'translate', 42);
  const on = cpu({}), bare = cpu({ tlb: false, psc: false });
  return { randomLoad: () => on.execute(loads), randomTranslate: () => on.execute(xlates), bareWalk: () => bare.execute(xlates) };
}

async function nested(cpu: CpuOptions): Promise<() => void> {
  const gm = await GuestMachine.create('nested', { guestBytes: 0x800_0000n, hostPage: 4096, cpu });
  const pt = new PageTableBuilder(gm.gmem, new FrameBump(gm.gmem, 0x10_0000n, 0x100_0000n), 4);
  pt.mapRange(BigInt(VBASE), 0x100_0000n, PAGES * 4096, 4096);
  gm.start(pt.root);
  const b = randomOps(gm.m, 'translate', 7);
  return () => { gm.run(b, (x) => { throw new Error(`guest #PF at ${x.cr2.toString(16)}`); }); };
}

async function figures(file: string): Promise<Record<string, () => void>> {
  setCoreSource(readFileSync(file));
  return { ...await native(), walk2DUncached: await nested({ tlb: false, psc: false }), walk2DCached: await nested({ tlb: noTlbs }) };
}

function nsPerOp(fn: () => void): number {
  const t0 = process.cpuUsage();
  for (let k = 0; k < ROUNDS; k++) fn();
  const d = process.cpuUsage(t0);
  return ((d.user + d.system) * 1e3) / (ROUNDS * OPS);
}

async function main(): Promise<void> {
  const files = process.argv.slice(2);
  if (files.length < 2) throw new Error('usage: npm run bench:ab -- a.wasm b.wasm [...]');
  const builds = [];
  for (const f of files) builds.push({ file: f, fns: await figures(f) });
  const names = Object.keys(builds[0].fns);
  for (const b of builds) for (const n of names) { const until = performance.now() + 300; while (performance.now() < until) b.fns[n](); }
  const runs: Record<string, Record<string, number[]>> = {};
  for (let r = 0; r < REPS; r++) {
    for (const n of names) for (const b of builds) ((runs[b.file] ??= {})[n] ??= []).push(nsPerOp(b.fns[n]));
  }
  const out: Record<string, Record<string, { medianNs: number; bestNs: number }>> = {};
  for (const b of builds) {
    out[b.file] = {};
    for (const n of names) {
      const v = [...runs[b.file][n]].sort((x, y) => x - y);
      out[b.file][n] = { medianNs: +v[v.length >> 1].toFixed(2), bestNs: +v[0].toFixed(2) };
    }
  }
  console.log(JSON.stringify({ reps: REPS, builds: out }, null, 2));
}

main().catch((e) => { console.error(`bench:ab: ${(e as Error).message}`); process.exit(1); });
