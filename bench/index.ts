// npm run bench: MMU-core throughput, printed as JSON. Every figure is the median of
// REPS runs taken in this one process, so ratios between them are meaningful even on a
// noisy machine. Nothing here asserts a speed.

import { Machine, CR0, CR4, EFER, PTE, type Cpu, type AccessBatch } from '../src/index.js';

const REPS = Number(process.env.BENCH_REPS ?? 7);
const OPS = 1 << 20;
const TABLES = 0x10_0000n;      // page tables from 1 MiB
const DATA = 0x400_0000n;       // mapped data from 64 MiB (physical)
const VBASE = 0x7f00_0000_0000n; // mapped at this va

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1];
}

/** Maps `pages` 4 KiB pages (or 2 MiB pages) at VBASE → DATA with 4- or 5-level tables. */
function mapRegion(m: Machine, levels: 4 | 5, pages: number, large = false): bigint {
  let next = TABLES;
  const alloc = () => { const p = next; next += 0x1000n; m.memory.fill(p, 0, 4096); return p; };
  const root = alloc();
  const f = PTE.P | PTE.W | PTE.U;
  const step = large ? 0x20_0000n : 0x1000n;
  for (let i = 0; i < pages; i++) {
    const va = VBASE + BigInt(i) * step;
    let table = root;
    for (let level = levels; level > (large ? 2 : 1); level--) {
      const ea = table + ((va >> BigInt(3 + 9 * level)) & 511n) * 8n;
      let e = m.memory.read64(ea);
      if (!(e & PTE.P)) { e = alloc() | f; m.memory.write64(ea, e); }
      table = e & 0xf_ffff_ffff_f000n;
    }
    const leafLevel = large ? 2 : 1;
    const ea = table + ((va >> BigInt(3 + 9 * leafLevel)) & 511n) * 8n;
    m.memory.write64(ea, (DATA + BigInt(i) * step) | f | (large ? PTE.PS : 0n) | PTE.A | PTE.D);
  }
  return root;
}

function setup(m: Machine, cpu: Cpu, levels: 4 | 5, root: bigint): void {
  cpu.setRegisters({
    cr0: CR0.PG | CR0.WP, cr3: root, cr4: CR4.PAE | (levels === 5 ? CR4.LA57 : 0n),
    efer: EFER.LME | EFER.NXE, cpl: 0,
  });
}

/** A batch of random 8-byte loads over `pages` pages (xorshift, fixed seed). */
function randomLoads(m: Machine, pages: number, step = 4096, kind: 'load' | 'translate' = 'load'): AccessBatch {
  const b = m.createBatch(OPS);
  let x = 0x9e3779b9;
  const base = Number(VBASE);
  for (let i = 0; i < OPS; i++) {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
    const page = (x >>> 0) % pages;
    const off = ((x >>> 7) & 511) * 8 % step;
    b.set(i, kind, base + page * step + off, 8);
  }
  return b;
}

function rate(fn: () => number): number {
  const runs: number[] = [];
  for (let r = 0; r < REPS; r++) {
    const t0 = process.hrtime.bigint();
    const n = fn();
    const dt = Number(process.hrtime.bigint() - t0) / 1e9;
    runs.push(n / dt);
  }
  return median(runs);
}

function run(cpu: Cpu, b: AccessBatch): number {
  const r = cpu.execute(b);
  if (r.exit.reason !== 'end') throw new Error(`bench batch exited: ${JSON.stringify(r.exit, (_, v) => typeof v === 'bigint' ? v.toString(16) : v)}`);
  return r.completed;
}

async function main(): Promise<void> {
  const m = await Machine.create({ memoryBytes: 256 * 2 ** 20 });
  const out: Record<string, unknown> = {};

  // TLB hits: 32 pages fit the 64-entry L1 DTLB.
  for (const levels of [4, 5] as const) {
    const root = mapRegion(m, levels, 16384);
    const hot = randomLoads(m, 32);
    const hotXlate = randomLoads(m, 32, 4096, 'translate');
    const cold = randomLoads(m, 16384);
    const cpu = m.createCpu();
    setup(m, cpu, levels, root);
    run(cpu, hot);
    if (levels === 4) {
      out.tlbHitLoadsPerSec = rate(() => run(cpu, hot));
      out.tlbHitTranslationsPerSec = rate(() => run(cpu, hotXlate));
      out.rawLoadsPerSec = rate(() => { m.core.rawBaseline(hot.ptr, OPS); return OPS; });
      // One JS→Wasm call per access, for contrast with the batch.
      const n = 100_000;
      const vas = Array.from({ length: n }, (_, i) => BigInt.asUintN(64, hot.value(i) & 0n) + VBASE + BigInt((i % 32) * 4096));
      out.perCallTranslationsPerSec = rate(() => { for (const va of vas) cpu.translate(va); return n; });
      out.batchedOverPerCall = (out.tlbHitTranslationsPerSec as number) / (out.perCallTranslationsPerSec as number);
      out.tlbHitOverRaw = (out.tlbHitLoadsPerSec as number) / (out.rawLoadsPerSec as number);
    }
    // Walks: TLBs disabled, every access walks; with and without the PSCs.
    for (const psc of [true, false]) {
      const w = m.createCpu({ tlb: false, psc });
      setup(m, w, levels, root);
      run(w, cold);
      w.resetCounters();
      const perSec = rate(() => run(w, cold));
      const c = w.counters();
      out[`walk${levels}Level${psc ? 'Psc' : 'NoPsc'}PerSec`] = perSec;
      out[`walk${levels}Level${psc ? 'Psc' : 'NoPsc'}RefsPerWalk`] = c.walkRefs / c.walks;
    }
    // Realistic: default TLBs, 64 MiB random working set (mostly L2 misses).
    const cpu2 = m.createCpu();
    setup(m, cpu2, levels, root);
    run(cpu2, cold);
    cpu2.resetCounters();
    out[`random64MiB${levels}LevelLoadsPerSec`] = rate(() => run(cpu2, cold));
    const c2 = cpu2.counters();
    out[`random64MiB${levels}LevelWalksPer1000`] = (1000 * c2.walks) / c2.accesses;
  }
  out.opsPerRun = OPS;
  out.reps = REPS;
  out.node = process.version;
  console.log(JSON.stringify(out, null, 2));
}

main().catch((e) => { console.error(e); process.exit(1); });
