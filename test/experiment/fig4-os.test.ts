// Figure 4 from real guest content (kind sharing-os): VMs booting the shipped C OS with the
// same programs, scanned at ESX's default rates. Nothing is calibrated, so the check is that
// sharing finds what is there: the frames saved and the pages shared match a content census
// of every backed guest page (within the pages the still-running guests rewrote since their
// last scan), and shared memory grows with the number of VMs. Skipped, visibly, without the
// shipped OS binary.
import { describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { runOsSharingHost, sharingOsParams } from '../../src/experiment/sharing-os.js';
import { runScenario } from '../../src/experiment/runner.js';
import { parseExperimentScenario } from '../../src/experiment/registry.js';
import { renderPlotSvg } from '../../src/report/render.js';
import { ScenarioError } from '../../src/scenario/schema.js';
import { P2M } from '../../src/hypervisor/monitor/p2m.js';
import type { OsMachine } from '../../src/board/os-machine.js';
import '../../src/experiment/catalogue.js';

const ELF = fileURLToPath(new URL('../../guests/os/bin/memvisor-os.elf', import.meta.url));

/** Guest pages per distinct 4 KiB content over every backed gfn of every VM. */
function census(ms: OsMachine[]): { saved: number; shared: number } {
  const counts = new Map<string, number>();
  for (const m of ms) {
    m.vm.p2m.forEach((gfn) => {
      const key = createHash('sha1').update(m.vm.memory.read(BigInt(gfn) << 12n, 4096)).digest('hex');
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }, P2M.PRESENT, P2M.PRESENT);
  }
  let saved = 0, shared = 0;
  for (const c of counts.values()) if (c > 1) { saved += c - 1; shared += c; }
  return { saved, shared };
}

describe.skipIf(!existsSync(ELF))('Figure 4 from real guest content (sharing-os)', () => {
  it('shares what a content census of the OS guests finds, and more with more VMs', async () => {
    const p = sharingOsParams.parse({ vms: [1, 3] });
    const one = await runOsSharingHost(p, 1, 1);
    const three = await runOsSharingHost(p, 3, 1);
    for (const r of [one, three]) {
      expect(r.done).toBe(true);
      expect(r.stopped).toEqual([]); // the OS keeps running its programs while it is scanned
      r.sharing.checkInvariants();
      const c = census(r.machines);
      expect(r.saved).toBeLessThanOrEqual(c.saved);
      expect(r.saved).toBeGreaterThanOrEqual(0.95 * c.saved); // a few pages rewritten since their last scan
      expect(r.sharedGfns).toBeLessThanOrEqual(c.shared);
    }
    expect(one.zero / one.sharedGfns).toBeGreaterThan(0.5);    // one VM: mostly its zero pages
    expect(three.sharedGfns).toBeGreaterThan(3 * one.sharedGfns); // identical VMs: their pages find twins
    expect(three.saved).toBeGreaterThan(2 * one.saved);
  }, 300_000);

  it('runs through the registry with the paper\'s values beside ours, and the plots render', async () => {
    const r = await runScenario({ kind: 'sharing-os', name: 'fig4-os-tiny', vms: [1, 2], scanRatePerVm: 200, scanRateTotal: 400 });
    expect(r.series.vms.map((x) => x.vms)).toEqual([1, 2]);
    expect(Number(r.series.vms[1].reclaimedPct)).toBeGreaterThan(Number(r.series.vms[0].reclaimedPct));
    expect(r.series.paper.map((x) => x.pct)).toEqual([12.5, 67, 60]);
    expect(r.notes!.join('\n')).toMatch(/ESX 2\.5's defaults are 50 pages\/s per VM and 200 in total; this run uses 200 and 400/);
    for (const plot of r.plots) expect(await renderPlotSvg(plot, r.series)).toContain('<svg');
  }, 300_000);

  it('rejects bad scenarios, naming the field', () => {
    const bad = (o: Record<string, unknown>) => {
      try { parseExperimentScenario({ kind: 'sharing-os', name: 'bad', ...o }, 'bad.json'); } catch (e) {
        expect(e).toBeInstanceOf(ScenarioError);
        return (e as ScenarioError).problems.join('\n');
      }
      throw new Error('accepted');
    };
    expect(bad({ vms: [1, 1] })).toMatch(/^vms: each number of VMs once/m);
    expect(bad({ scanRateTotal: 10 })).toMatch(/^scanRateTotal: .*below scanRatePerVm/m);
    expect(bad({ vmMiB: 4 })).toMatch(/^vmMiB: /m);
  });
});
