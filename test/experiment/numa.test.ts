// The numa experiment (issue 17 item 2): the VM starts mostly remote; from freeAtSecond the
// balancer moves exactly pagesPerSecond pages a second until none is remote; the cost per
// load falls by exactly the remote fraction × (remote − local) DRAM cycles (± translation noise).
import { describe, expect, it } from 'vitest';
import { runNuma, numaParams } from '../../src/experiment/numa.js';
import { parseExperimentScenario } from '../../src/experiment/registry.js';
import '../../src/experiment/catalogue.js';

describe('numa experiment', () => {
  it('remote pages go home at the balancer\'s rate and the DRAM cost falls by the remote share', async () => {
    const p = numaParams.parse({ nodeMiB: 16, vmMiB: 12, workingSetMiB: 10, hogMiB: 14, freeAtSecond: 1, seconds: 6, pagesPerSecond: 1024, loadsPerSecond: 20_000 });
    const out = await runNuma(p, { seed: 2, progress: () => {} });
    const rows = out.series.timeline as Record<string, number>[];
    const pages = rows[0].pagesHome + rows[0].pagesRemote;
    expect(pages).toBe(12 * 256);
    expect(rows[0]).toMatchObject({ pagesHome: 512, pagesRemote: 12 * 256 - 512, migrated: 0 }); // 2 MiB of the home node was free
    let remote = rows[0].pagesRemote;
    for (const r of rows.slice(1)) {
      const want = Math.min(1024, remote);
      expect(r.migrated).toBe(want);
      remote -= want;
      expect(r.pagesRemote).toBe(remote);
    }
    const last = rows[rows.length - 1];
    expect(last).toMatchObject({ remoteLoadPct: 0, remotePagePct: 0, pagesHome: pages });
    const drop = rows[0].cyclesPerLoad - last.cyclesPerLoad;
    expect(drop).toBeCloseTo((rows[0].remoteLoadPct / 100) * (350 - 225), -0.5); // within ±1.6 cycles
    expect(last.loadsPerSecond).toBeGreaterThan(rows[0].loadsPerSecond);
  });

  it('validation names the field', () => {
    const bad = (o: object) => () => parseExperimentScenario({ kind: 'numa', name: 'x', ...o }, 'numa.json');
    expect(bad({ hogMiB: 40 })).toThrow(/hogMiB: 40 MiB does not fit a 32 MiB node/);
    expect(bad({ freeAtSecond: 12 })).toThrow(/freeAtSecond: must be before the end \(12 s\)/);
    expect(bad({ vmMiB: 8, workingSetMiB: 8 })).toThrow(/workingSetMiB/);
  });
});
