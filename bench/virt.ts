// Virtualization figures for npm run bench: 2D walks, shadow fills, end-to-end guest
// accesses per translation mode. Same method as index.ts: medians, one process.

import { PageTableBuilder, FrameBump, type AccessBatch } from '../src/index.js';
import { GuestMachine, MODES, type Mode } from '../src/experiment/modes.js';
import { Rng } from '../src/util/rng.js';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';

const GUEST = 0x800_0000n;
const VBASE = 0x7f00_0000_0000;
const DATA = 0x100_0000n;
const OPS = 1 << 14;

async function guest(mode: Mode, hostPage: 4096 | 2097152, cpu: Parameters<typeof GuestMachine.create>[1]['cpu'], pages: number) {
  const gm = await GuestMachine.create(mode, { guestBytes: GUEST, hostPage, cpu });
  const pt = new PageTableBuilder(gm.gmem, new FrameBump(gm.gmem, 0x10_0000n, DATA), 4);
  pt.mapRange(BigInt(VBASE), DATA, pages * 4096, 4096);
  gm.start(pt.root);
  return gm;
}

function ops(gm: GuestMachine, pages: number, kind: 'load' | 'translate', seed = 7): AccessBatch {
  const b = gm.m.createBatch(OPS);
  const rng = new Rng(seed);
  for (let i = 0; i < OPS; i++) b.set(i, kind, VBASE + rng.below(pages) * 4096 + rng.below(512) * 8, 8);
  return b;
}

// A full garbage collection on demand: --expose-gc set at run time, its gc() taken from a
// fresh context (the global one was made before the flag).
v8.setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const noFault = (x: { cr2: bigint }): number => { throw new Error(`guest #PF at ${x.cr2.toString(16)}`); };

export async function virtBench(rate: (fn: () => number) => number): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  const PAGES = 16384; // 64 MiB
  // 2D walks: every op walks (no TLBs); uncached = 24 refs, cached = nested TLB + PSCs.
  const noTlbs = { l1i4k: false, l1i2m: false, l1d4k: false, l1d2m: false, l1d1g: false, l2: false } as const;
  for (const [key, cpu] of [['Uncached', { tlb: false as const, psc: false }], ['Cached', { tlb: noTlbs }]] as const) {
    const gm = await guest('nested', 4096, cpu, PAGES);
    const b = ops(gm, PAGES, 'translate');
    const exec = () => { gm.run(b, noFault); return OPS; };
    exec();
    gm.resetStats();
    out[`walks2D${key}PerSec`] = rate(exec);
    const c = gm.cpu.counters();
    out[`walks2D${key}RefsPerWalk`] = c.walkRefs / c.walks;
  }
  // Shadow fills: one touch per page of a fresh region, each a hidden fault. A fresh
  // machine per run; the first run is a warm-up (lets V8 tier the fill path up, as rate()
  // does for every other figure), the median of the next five is reported.
  {
    const runs: number[] = [];
    for (let r = 0; r < 6; r++) {
      const gm = await guest('shadow', 2097152, {}, PAGES);
      const b = gm.m.createBatch(PAGES);
      for (let i = 0; i < PAGES; i++) b.set(i, 'load', VBASE + i * 4096, 8);
      gc(); // the previous run's machine (192 MiB of Wasm memory) is collected here, not in the timed window
      const t0 = process.hrtime.bigint();
      gm.run(b, noFault);
      const dt = Number(process.hrtime.bigint() - t0) / 1e9;
      if (r > 0) runs.push(gm.shadow!.stats.hiddenFaults / dt);
    }
    out.shadowFillsPerSec = runs.sort((a, b) => a - b)[2];
  }
  // End to end, a working set beyond TLB reach: random loads over 64 MiB with the default
  // TLBs, per mode (the first run, untimed, fills the shadow tables).
  for (const mode of MODES) {
    const gm = await guest(mode, 4096, {}, PAGES);
    const b = ops(gm, PAGES, 'load');
    const exec = () => { gm.run(b, noFault); return OPS; };
    exec();
    out[`guestRandomLoads${mode[0].toUpperCase()}${mode.slice(1)}PerSec`] = rate(exec);
  }
  // End to end, TLB-friendly: random loads over 32 pages, per mode.
  for (const mode of MODES) {
    const gm = await guest(mode, 2097152, {}, 32);
    const b = ops(gm, 32, 'load');
    const exec = () => { gm.run(b, noFault); return OPS; };
    exec();
    out[`guestLoads${mode[0].toUpperCase()}${mode.slice(1)}PerSec`] = rate(exec);
  }
  return out;
}
