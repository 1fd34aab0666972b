// The io-remap experiment (issue 17 item 4): with only the ring doing I/O, each ring page
// bounces exactly `threshold` times and every later transfer is a copy avoided; with paging
// beside it, every DMA page is counted once as a bounce, a direct transfer or a copy avoided,
// and the cycles are exactly bounces × 1000 + remaps × 1300.
import { describe, expect, it } from 'vitest';
import { runIoRemapOnce, ioRemapParams } from '../../src/experiment/io-remap.js';
import { parseExperimentScenario } from '../../src/experiment/registry.js';
import '../../src/experiment/catalogue.js';

describe('io-remap experiment', () => {
  it('ring only: each ring page bounces exactly T times, then its transfers are copies avoided', async () => {
    const p = ioRemapParams.parse({ vmMiB: 8, regionMiB: 2, setMiB: 1, ringPages: 16, ioPerBatch: 4, seconds: 3, hz: 2e7, thresholds: [3] });
    const r = await runIoRemapOnce(p, 3, 1);
    expect(r.ringTransfers).toBeGreaterThan(16 * 3);
    expect(r.pages).toBe(r.ringTransfers); // no paging: the ring is all the DMA
    expect(r).toMatchObject({ remaps: 16, bounces: 16 * 3, avoided: r.ringTransfers - 16 * 3, direct: 0, reserveEmpty: 0, reserveUsed: 16 });
    expect(r.cycles).toBe(16 * 3 * 1000 + 16 * 1300);
    const never = await runIoRemapOnce(p, 0, 1);
    expect(never).toMatchObject({ bounces: never.pages, avoided: 0, remaps: 0, cycles: never.pages * 1000 });
  });

  it('with paging: every DMA page is a bounce, a direct transfer or a copy avoided; costs exact', async () => {
    const p = ioRemapParams.parse({ seconds: 5 });
    for (const t of [0, 8, 2]) {
      const r = await runIoRemapOnce(p, t, 1);
      expect(r.pages).toBeGreaterThan(r.ringTransfers); // the guest pages too
      expect(r.bounces + r.direct + r.avoided).toBe(r.pages);
      expect(r.cycles).toBe(r.bounces * 1000 + r.remaps * 1300);
      expect(r.remaps).toBe(r.reserveUsed);
      expect(r.remaps).toBeLessThanOrEqual(256);
      if (t === 0) expect(r).toMatchObject({ avoided: 0, remaps: 0 });
    }
  });

  it('validation names the field', () => {
    const bad = (o: object) => () => parseExperimentScenario({ kind: 'io-remap', name: 'x', ...o }, 'io.json');
    expect(bad({ setMiB: 20 })).toThrow(/setMiB: 20 MiB does not fit the 16 MiB region/);
    expect(bad({ reserveMiB: 32 })).toThrow(/reserveMiB: the reserve \(32 MiB\) must fit in low memory \(16 MiB\)/);
    expect(bad({ thresholds: [-1] })).toThrow(/thresholds\[0\]/);
  });
});
