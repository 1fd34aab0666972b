// The guest kernels (idle, toucher, throughput, shared, patterns) boot and run under every
// mode with identical guest-visible results; a random fork/write/read mix under memory
// pressure never loses data.
import { describe, it, expect } from 'vitest';
import { Hypervisor } from '../../src/hypervisor/index.js';
import { Rng } from '../../src/util/rng.js';
import { PATTERNS } from '../../src/workload/patterns.js';
import { IdleKernel, IDLE_BASE } from '../../guests/idle.js';
import { Toucher } from '../../guests/toucher.js';
import { Throughput } from '../../guests/throughput.js';
import { PatternKernel } from '../../guests/patterns.js';
import { commonWord, COMMON_BASE, ZERO_BASE } from '../../guests/shared.js';
import { bootShared } from '../../src/board/shared.js';
import type { Kernel, Workload } from '../../guests/kernel/kernel.js';
import { bootKernel, dataHash, MODES } from './setup.js';

const MiB = 2 ** 20;
const snapshot = (k: Kernel) => ({ counters: JSON.parse(JSON.stringify(k.counters)), hash: dataHash(k), user: k.frames.count('user') });

async function runIn(mode: (typeof MODES)[number], w: () => Workload, seconds: number, mem = 8) {
  const { k } = await bootKernel(mode, mem);
  const wl = w();
  k.start(wl);
  k.runFor(seconds);
  return { k, wl };
}

describe('workloads agree across native, shadow and nested', () => {
  it('idle: boots, touches little, halts every tick (idle time advances the clock)', async () => {
    const snaps = [];
    for (const mode of MODES) {
      const { k } = await runIn(mode, () => new IdleKernel(4, 200), Infinity);
      expect(k.counters.halts).toBe(200);
      expect(k.idleCycles).toBeGreaterThan(k.clock / 2);
      expect(k.frames.count('user')).toBe(4);
      expect(k.readUser(IDLE_BASE, 1)[0]).toBeGreaterThan(0n);
      snaps.push(snapshot(k));
    }
    expect(snaps[1]).toEqual(snaps[0]); expect(snaps[2]).toEqual(snaps[0]);
  });

  it.each(MODES)('toucher (%s): the touched set moves every shiftSeconds of simulated time (Figure 6)', async (mode) => {
    const { k, wl } = await runIn(mode, () => new Toucher({ regionPages: 96, setPages: 32, shiftSeconds: 0.5, seconds: 2, seed: 3 }), 5);
    const t = (wl as Toucher).touched;
    expect(t.length).toBe(4);
    t.forEach((s, w) => expect([...s].every((p) => p >= 32 * w % 96 && p < 32 * w % 96 + 32)).toBe(true));
    expect(k.now()).toBeGreaterThanOrEqual(2);
    expect(k.counters.faults.demandZero).toBe(new Set(t.flatMap((s) => [...s])).size);
  });

  it('toucher shifting by batches: same pages in every mode', async () => {
    const snaps = [];
    for (const mode of MODES) {
      const o = { regionPages: 96, setPages: 32, shiftSeconds: 0, shiftBatches: 20, maxBatches: 100, seed: 3 };
      const { k, wl } = await runIn(mode, () => new Toucher(o), Infinity);
      const t = (wl as Toucher).touched;
      expect(t.length).toBeGreaterThanOrEqual(4);
      expect([...t[0]].every((p) => p < 32)).toBe(true);
      expect([...t[1]].every((p) => p >= 32 && p < 64)).toBe(true);
      expect(k.counters.faults.demandZero).toBe(new Set(t.flatMap((s) => [...s])).size);
      snaps.push({ ...snapshot(k), windows: t.map((s) => [...s].sort((a, b) => a - b)) });
    }
    expect(snaps[1]).toEqual(snaps[0]); expect(snaps[2]).toEqual(snaps[0]);
  });

  it('throughput: a work-units-per-simulated-second score, higher native than virtualized', async () => {
    const scores: Record<string, number> = {};
    const snaps = [];
    for (const mode of MODES) {
      const { k, wl } = await runIn(mode, () => new Throughput({ units: 2000, cachePages: 128 }), Infinity);
      expect((wl as Throughput).units).toBe(2000);
      scores[mode] = (wl as Throughput).score(k);
      expect(k.counters.io).toBe(Math.floor(2000 / 32));
      snaps.push(snapshot(k));
    }
    expect(scores.native).toBeGreaterThan(scores.nested);
    expect(scores.native).toBeGreaterThan(scores.shadow);
    expect(snaps[1]).toEqual(snaps[0]); expect(snaps[2]).toEqual(snaps[0]);
  });

  it.each(PATTERNS)('pattern %s: same faults and data in every mode', async (pattern) => {
    const snaps = [];
    for (const mode of MODES) {
      const { k, wl } = await runIn(mode, () => new PatternKernel({ pattern, bytes: 256 * 4096, ops: 20_000, writeRatio: 0.3, seed: 11 }), Infinity);
      expect((wl as PatternKernel).done).toBe(20_000);
      expect(k.counters.faults.demandZero).toBeGreaterThan(0);
      snaps.push(snapshot(k));
    }
    expect(snaps[1]).toEqual(snaps[0]); expect(snaps[2]).toEqual(snaps[0]);
  });

  it('patterns under memory pressure swap identically in every mode', async () => {
    const snaps = [];
    for (const mode of MODES) {
      const { k } = await runIn(mode, () => new PatternKernel({ pattern: 'zipf', bytes: 1200 * 4096, ops: 30_000, writeRatio: 0.5, seed: 5 }), Infinity, 4);
      expect(k.counters.swapOuts).toBeGreaterThan(0);
      snaps.push(snapshot(k));
    }
    expect(snaps[1]).toEqual(snaps[0]); expect(snaps[2]).toEqual(snaps[0]);
  });
});

describe('shared-content kernels', () => {
  it.each(['nested', 'shadow'] as const)('identical kernels (%s) hold identical code, zero and common pages', async (mode) => {
    const hv = await Hypervisor.create({ hostMemoryBytes: 64 * MiB });
    const { kernels } = bootShared(hv, 3, mode, 4 * MiB, { hz: 1e6 });
    for (const k of kernels) k.runFor(0.5);
    const gpaOf = (k: Kernel, va: bigint) => k.pt.translate(k.current.root, va)!;
    const page = (k: Kernel, va: bigint) => k.platform.memory.read(gpaOf(k, va) & ~0xfffn, 4096);
    for (const k of kernels.slice(1)) {
      expect(page(k, COMMON_BASE + 4096n)).toEqual(page(kernels[0], COMMON_BASE + 4096n));
      expect(page(k, ZERO_BASE).every((x) => x === 0)).toBe(true);
      expect(k.platform.memory.read(16n << 12n, 4096)).toEqual(kernels[0].platform.memory.read(16n << 12n, 4096)); // code
      expect(dataHash(k)).not.toBe(dataHash(kernels[0])); // private pages differ
    }
    expect(kernels[0].readUser(COMMON_BASE + 8n, 1)).toEqual([commonWord(0, 1)]);
  });
});

describe('fork + swap never lose data', () => {
  it.each(MODES)('a random write/read mix over two forked address spaces under pressure (%s)', async (mode) => {
    const { k } = await bootKernel(mode, 4);
    const R = 0x40_0000n, pages = 900, rng = new Rng(17);
    const a = k.current;
    k.mmap(a, R, BigInt(pages * 4096));
    const model = [new Map<number, bigint>()];
    for (let p = 0; p < pages; p++) model[0].set(p, 0n);
    const spaces = [a];
    for (let round = 0; round < 40; round++) {
      if (round === 10) { spaces.push(k.fork(a)); model.push(new Map(model[0])); }
      const s = rng.below(spaces.length);
      k.switchTo(spaces[s]);
      const b = k.batch.clear(), expect_: (bigint | null)[] = [];
      for (let i = 0; i < 64; i++) {
        const p = rng.below(pages), va = Number(R) + p * 4096 + (p % 512) * 8;
        if (rng.next() < 0.5) { const v = BigInt(round * 1000 + i + 1); b.store(va, v); model[s].set(p, v); expect_.push(null); }
        else { b.load(va); expect_.push(model[s].get(p)!); } // the model already holds earlier stores of this batch
      }
      k.runBatch(b);
      expect_.forEach((v, i) => { if (v !== null) expect(b.value(i), `as ${s} op ${i}`).toBe(v); });
    }
    expect(k.counters.swapOuts).toBeGreaterThan(0);
    expect(k.counters.cowCopies + k.counters.faults.cowReuse).toBeGreaterThan(0);
    for (let s = 0; s < spaces.length; s++) {
      k.switchTo(spaces[s]);
      for (let p = 0; p < pages; p += 7) expect(k.readUser(R + BigInt(p * 4096 + (p % 512) * 8), 1)[0]).toBe(model[s].get(p));
    }
  });
});

