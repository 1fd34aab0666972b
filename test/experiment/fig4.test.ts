// Figure 4 (page sharing with 1..N identical VMs): the frames saved match, exactly, both a
// content census of every backed guest page and the count the workload's parameters imply;
// sharing grows with n; the report renders; bad scenarios name their field.
import { describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { runSharingHost, sharingVmsParams, type SharingVmsParams } from '../../src/experiment/sharing-vms.js';
import { FRAME } from '../../guests/kernel/frames.js';
import type { GuestVm } from '../../src/board/guest-vm.js';
import { P2M } from '../../src/hypervisor/monitor/p2m.js';
import { runScenario } from '../../src/experiment/runner.js';
import { parseExperimentScenario } from '../../src/experiment/registry.js';
import { renderPlotSvg } from '../../src/report/render.js';
import { ScenarioError } from '../../src/scenario/schema.js';
import '../../src/experiment/catalogue.js';

const TINY = { vmMiB: 4, privateFraction: 0.2, dupTemplates: 5, wordsPerPage: 4, maxVms: 3 };
const params = (o: Partial<SharingVmsParams> = {}) => sharingVmsParams.parse({ ...TINY, ...o });

/** Content census: guest pages per distinct 4 KiB content over every backed gfn of every VM. */
function census(guests: GuestVm[]): { saved: number; shared: number } {
  const counts = new Map<string, number>();
  for (const g of guests) {
    g.vm.p2m.forEach((gfn) => {
      const key = createHash('sha1').update(g.vm.memory.read(BigInt(gfn) << 12n, 4096)).digest('hex');
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }, P2M.PRESENT, P2M.PRESENT);
  }
  let saved = 0, shared = 0;
  for (const c of counts.values()) if (c > 1) { saved += c - 1; shared += c; }
  return { saved, shared };
}

/** The guest kernel's own backed frames (image, page tables), from its allocator's records. */
function kernelOwn(g: GuestVm): number {
  let k = 0;
  g.kernel.frames.state.forEach((s, gfn) => {
    if ((s === FRAME.KERNEL || s === FRAME.TABLE) && g.vm.p2m.lookup(gfn as never) !== null) k++;
  });
  return k;
}

/** Legend label → its symbol's colour, read from a vega SVG. */
function legendColours(svg: string): Map<string, string> {
  const out = new Map<string, string>();
  const re = /role-legend-symbol"[^>]*><path[^>]*?stroke="(#[0-9a-fA-F]{3,6})"[^]*?role-legend-label"[^>]*><text[^>]*>([^<]*)<\/text>/g;
  for (const m of svg.matchAll(re)) out.set(m[2], m[1].toLowerCase());
  return out;
}

describe('Figure 4: sharing among identical VMs', () => {
  it('saves exactly the duplicates a content census finds, and what the mix parameters imply', async () => {
    const p = params();
    const frames = 1024, Z = Math.floor(0.07 * frames), D = Math.floor(0.055 * frames), C = Math.floor(0.545 * frames), T = 5;
    let before = -1;
    for (const n of [1, 2, 3]) {
      const r = await runSharingHost(p, n, 7);
      try {
        expect(r.converged).toBe(true);
        r.host.sharing!.checkInvariants();
        for (const g of r.host.guests) expect(g.kernel.swap.stats.swapOuts).toBe(0); // the mix fits: nothing paged out
        const c = census(r.host.guests);
        expect(r.stats.saved).toBe(c.saved);
        expect(r.sharedGfns).toBe(c.shared);
        expect(r.stats.zeroShared).toBe(n * Z);
        // Identical VMs: one zero frame for all zero pages, T dup frames, and every common and kernel page once.
        const K = kernelOwn(r.host.guests[0]);
        expect(r.host.guests.map(kernelOwn)).toEqual(Array(n).fill(K));
        expect(r.stats.saved).toBe((n * Z - 1) + (n * D - T) + (n - 1) * (C + K));
        expect(r.stats.saved).toBeGreaterThan(before);
        before = r.stats.saved;
      } finally {
        r.host.close();
      }
    }
  });

  it('runs through the registry: sharing grows with n toward the shareable fraction, and the plots render', async () => {
    const res = await runScenario({ kind: 'sharing-vms', name: 'fig4-tiny', ...TINY });
    const rows = res.series.vms;
    expect(rows.map((r) => r.vms)).toEqual([1, 2, 3]);
    for (const r of rows) {
      expect(r.converged).toBe(1);
      expect(r.reclaimedFrames).toBe(r.predictedReclaimedFrames);
      expect(r.sharedGfns).toBe(r.predictedSharedGfns);
      expect(r.reclaimedPct).toBeCloseTo((100 * Number(r.reclaimedMiB)) / Number(r.vmMemoryMiB), 1);
    }
    const reclaimed = rows.map((r) => Number(r.reclaimedPct));
    expect(reclaimed[1]).toBeGreaterThan(reclaimed[0]);
    expect(reclaimed[2]).toBeGreaterThan(reclaimed[1]);
    // One VM shares zero and duplicate pages only; from two on, the common data too (~ zero + dup + common).
    expect(Number(rows[0].sharedPct)).toBeCloseTo(100 * (0.07 + 0.055), 0);
    expect(Number(rows[0].zeroOfSharedPct)).toBeGreaterThan(50);
    expect(Number(rows[2].sharedPct)).toBeGreaterThan(100 * (0.07 + 0.055 + 0.545));
    expect(res.series.scan.length).toBeGreaterThan(3);
    expect(res.plots.map((x) => x.id)).toEqual(['fig4-mib', 'fig4-pct', 'fig4-scan']);
    const colours = new Map<string, string>();
    for (const plot of res.plots) {
      const svg = await renderPlotSvg(plot, res.series);
      expect(svg).toContain('<svg');
      expect(svg).toContain(plot.id === 'fig4-scan' ? 'simulated seconds' : 'number of VMs');
      expect(svg.match(/<path/g)!.length).toBeGreaterThan(10);
      // One colour per metric across the three plots, and every legend label whole (not cut to "…").
      const legend = legendColours(svg);
      expect(legend.size).toBe(plot.id === 'fig4-mib' ? 4 : 3);
      for (const [label, colour] of legend) {
        expect(label).not.toMatch(/…/);
        expect(colours.get(label) ?? colour).toBe(colour);
        colours.set(label, colour);
      }
    }
    expect([...colours.keys()].sort()).toEqual(['VM memory', 'reclaimed', 'shared', 'zero pages']);
    expect(new Set(colours.values()).size).toBe(4);
    // The paper's Figure 4 text is shown once (beside the first plot), not beside both.
    expect(res.plots.filter((p) => p.paper?.startsWith('Figure 4')).map((p) => p.id)).toEqual(['fig4-mib']);
    expect(res.plots.find((p) => p.id === 'fig4-pct')!.caption).toMatch(/The paper's figures are beside the first plot\.$/);
  });

  it('rejects bad scenarios, naming the field', () => {
    const bad = (o: Record<string, unknown>) => {
      try { parseExperimentScenario({ kind: 'sharing-vms', name: 'bad', ...o }, 'bad.json'); } catch (e) {
        expect(e).toBeInstanceOf(ScenarioError);
        return (e as ScenarioError).problems.join('\n');
      }
      throw new Error('accepted');
    };
    expect(bad({ maxVms: 0 })).toMatch(/^maxVms: /m);
    expect(bad({ vmMiB: 4 })).toMatch(/^privateFraction: .*need 1040 frames of the VM's 1024/m);
    expect(bad({ scanRateTotal: 10, scanRatePerVm: 20 })).toMatch(/^scanRateTotal: .*below scanRatePerVm/m);
    expect(bad({ zeroFraction: 2 })).toMatch(/^zeroFraction: /m);
    expect(bad({ maxVm: 3 })).toMatch(/^maxVm: unknown field/m);
  });
});
