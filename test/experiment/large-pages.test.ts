// The large-pages experiment (issue 17 item 3): sharing splits exactly the chunks holding a
// zero page, the STLB's reach falls to its 4 KiB capacity, and the defragmenter at the
// largest allowance restores every chunk at a cost of exactly one frame per zero page.
import { describe, expect, it } from 'vitest';
import { runLargePages, largePagesParams } from '../../src/experiment/large-pages.js';
import { parseExperimentScenario } from '../../src/experiment/registry.js';
import { ScenarioError } from '../../src/scenario/schema.js';
import { Machine } from '../../src/core/machine.js';
import { readCache } from '../../src/core/tlb-view.js';
import '../../src/experiment/catalogue.js';

const ctx = { seed: 3, progress: () => {} };

describe('large-pages experiment', () => {
  it('splits, then restores every chunk at one frame per zero page', async () => {
    const p = largePagesParams.parse({ vmMiB: 32, workingSetMiB: 24, maxZeroPagesPerChunk: 8, maxSharedParts: [0, 8], accesses: 20_000 });
    const out = await runLargePages(p, ctx);
    const [before, split, d0, d8] = out.series.phases as Record<string, number>[];
    const zeros = Number(out.summary['zero pages in the data']);
    const m = await Machine.create({ memoryBytes: 1 << 20 });
    const l2 = readCache(m.core, m.createCpu().ptr, 'l2');
    const l2Entries = l2.sets * l2.ways;

    expect(before).toMatchObject({ largeChunks: 12, tlbMissesPer1000: 0, stlbReachMiB: 24, framesUsed: 8192 });
    const splitChunks = 12 - split.largeChunks;
    // Seed 3 splits enough chunks that their 4 KiB pages exceed the STLB (else misses would vanish after warm-up).
    expect(splitChunks * 512).toBeGreaterThan(l2Entries);
    // The STLB fills with 4 KiB entries: reach = its capacity × 4 KiB. (The unsplit chunks'
    // 2 MiB entries hit in the L1 2 MiB TLB, so their STLB copies age out under LRU.)
    expect(split.stlbReachMiB).toBeCloseTo((l2Entries * 4096) / 2 ** 20, 2);
    expect(split.tlbMissesPer1000).toBeGreaterThan(100);
    expect(d0).toMatchObject({ restored: 0, largeChunks: split.largeChunks });
    // Every data chunk back, each zero page un-shared (a frame each) and copied into its slot.
    expect(d8).toMatchObject({ restored: splitChunks, largeChunks: 12, unshared: zeros, copied: zeros, tlbMissesPer1000: 0, stlbReachMiB: 24 });
    expect(split.framesSavedBySharing - d8.framesSavedBySharing).toBe(zeros);
    expect(d8.framesUsed - split.framesUsed).toBe(zeros);
    expect(d8.defragCycles).toBeGreaterThanOrEqual(zeros * 1000);
  });

  it('is deterministic for a seed', async () => {
    const p = largePagesParams.parse({ vmMiB: 8, workingSetMiB: 4, maxSharedParts: [2], accesses: 5_000 });
    const a = await runLargePages(p, ctx), b = await runLargePages(p, ctx);
    expect(a.series).toEqual(b.series);
  });

  it('validation names the field and the sizes', () => {
    const bad = (o: object) => () => parseExperimentScenario({ kind: 'large-pages', name: 'x', ...o }, 'lp.json');
    expect(bad({ workingSetMiB: 3 })).toThrow(ScenarioError);
    expect(bad({ workingSetMiB: 3 })).toThrow(/workingSetMiB: must be a multiple of 2 MiB/);
    expect(bad({ vmMiB: 16, workingSetMiB: 16 })).toThrow(/workingSetMiB: 16 MiB of data from gpa 2 MiB does not fit a 16 MiB VM \(at most 14 MiB\)/);
    expect(bad({ maxSharedParts: [513] })).toThrow(/maxSharedParts\[0\]/);
  });
});
