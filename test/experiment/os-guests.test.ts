// The os-guests kind: memvisor-os guests (the shipped C kernel) on an overcommitted host
// under the memory manager. One small run (two 16 MiB guests on 18 MiB for VMs) is shared
// by the checks: the balloon follows the manager's targets, frame accounting is exact,
// every checksum line matches the model, one guest never maps another's frames, and the
// same seed gives the same run.
import { beforeAll, describe, expect, it } from 'vitest';
import '../../src/experiment/catalogue.js';
import { parseExperimentScenario } from '../../src/experiment/registry.js';
import { osGuestsParams, runOsGuests, type OsGuestsParams, type OsGuestsRun } from '../../src/experiment/os-guests.js';
import { osGuestsReport } from '../../src/experiment/os-guests-report.js';
import { validateResult } from '../../src/report/result.js';
import { auditFrames, type FrameAudit } from '../helpers/frames-audit.js';

const SCENARIO = {
  kind: 'os-guests', name: 'small', seed: 7, hostMiB: 18, seconds: 7, recordSeconds: 0.25,
  guests: [
    // Hot: 4 MiB rewritten and re-read every 300 ms; random with its own seed.
    { name: 'hot', memMiB: 16, cmdline: 'run=toucher:4:40:300,random:2:20000:11' },
    // Takes what it is given three times, then sits idle (the sleeper keeps it up): idle memory the tax reclaims.
    { name: 'cache', memMiB: 16, cmdline: 'run=pagecache:6:1:3,toucher:4:3,random:2:20000:99,sleeper:30' },
  ],
  policy: { balancePeriod: 1, samplePeriod: 1, shareScanRate: 200 },
};

const params = (over: Record<string, unknown> = {}): OsGuestsParams => parseExperimentScenario({ ...SCENARIO, ...over }).params as OsGuestsParams;

describe('os-guests scenario validation', () => {
  const problems = (s: Record<string, unknown>): string => {
    try { parseExperimentScenario(s); return ''; } catch (e) { return (e as Error).message; }
  };
  it('names the field of every problem', () => {
    const m = problems({ ...SCENARIO, guests: [
      { name: 'a', memMiB: 16, cmdline: 'run=toucher:20' },
      { name: 'a', memMiB: 16, cmdline: 'run=toucher:x', minMiB: 17 },
      { name: 'c', memMiB: 16, cmdline: 'shell' },
      { name: 'd', memMiB: 16, cmdline: 'run=bogus:1' },
      { name: 'e', memMiB: 16, cmdline: 'run=sleeper:1:2' },
      { name: 'f', memMiB: 16, cmdline: 'run=pagecache,random:1' },
    ] });
    expect(m).toMatch(/guests\[0\]\.cmdline: the programs map 20 MiB at once; a 16 MiB guest has about 12/);
    expect(m).toMatch(/guests\[1\]\.name: "a" is used by another guest/);
    expect(m).toMatch(/guests\[1\]\.minMiB: min 17 MiB must be <= max \(16 MiB\)/);
    expect(m).toMatch(/guests\[1\]\.cmdline: toucher:x: "x" is not a whole number/);
    expect(m).toMatch(/guests\[2\]\.cmdline: "shell" waits for console input/);
    expect(m).toMatch(/guests\[3\]\.cmdline: unknown program "bogus"/);
    expect(m).toMatch(/guests\[4\]\.cmdline: sleeper:1:2: too many arguments \(usage sleeper:seconds\)/);
    expect(m).toMatch(/guests\[5\]\.cmdline: pagecache with maxMiB 0 takes all the memory/);
  });
  it('rejects what admission control would refuse, and a single guest', () => {
    expect(problems({ ...SCENARIO, guests: SCENARIO.guests.map((g) => ({ ...g, minMiB: 12 })) }))
      .toMatch(/guests: the guests' mins \(24 MiB\) do not fit host memory \(18 MiB\)/);
    expect(problems({ ...SCENARIO, policy: { swap: false } })).toMatch(/guests\[0\]\.minMiB: with policy.swap false/);
    expect(problems({ ...SCENARIO, hostMiB: 3 })).toMatch(/hostMiB: 3 MiB cannot boot 2 guests: each kernel takes about 2 MiB/);
    expect(problems({ ...SCENARIO, guests: [SCENARIO.guests[0]] })).toMatch(/guests: Array must contain at least 2/);
    expect(problems({ ...SCENARIO, guests: [{ ...SCENARIO.guests[0], cmdline: 'run=hello' }, SCENARIO.guests[1]], extra: 1 }))
      .toMatch(/extra: unknown field for kind "os-guests"/);
    expect(osGuestsParams.safeParse(params()).success).toBe(true);
  });
});

describe('os-guests under the memory manager', () => {
  let run: OsGuestsRun, audit: FrameAudit;
  const rows = (g: string) => run.series.filter((r) => r.guest === g);
  beforeAll(async () => {
    run = await runOsGuests(params(), 7);
    audit = auditFrames(run.host.hv.frames, run.guests.map((g) => g.m.vm));
  }, 240_000);

  it('runs every mechanism: balloon, host swap (out-of-frames exits resolved), sharing', () => {
    const sw = run.host.swap!.stats();
    expect(run.host.mgr.stats.rebalances).toBeGreaterThan(0);
    expect(Math.max(...run.series.map((r) => r.balloonFrames as number))).toBeGreaterThan(0);
    expect(sw.swapOuts).toBeGreaterThan(0);
    expect(sw.swapIns).toBeGreaterThan(0);
    expect(run.host.sharing!.stats.saved).toBeGreaterThan(0);
    // The targets reach the C driver through the backdoor: SIGNALLED_WAKEUP rings its doorbell (an interrupt).
    expect(run.guests[1].m.balloon.doorbellRings).toBeGreaterThan(0);
    expect(run.guests[1].m.lostDoorbells).toBe(0);
    for (const g of run.guests) {
      expect(g.m.balloon.violationCount).toBe(0);
      expect(g.m.stopped).toBeNull(); // still running: nothing powered off or faulted
    }
  });

  it('every checksum line matches the model of its program, and each program finished its work', () => {
    for (const g of run.guests) {
      const c = run.checks.get(g.spec.name)!;
      expect(c.problems, g.spec.name).toEqual([]);
    }
    const hot = run.checks.get('hot')!, cache = run.checks.get('cache')!;
    expect(hot.units.random).toBe(1);
    expect(hot.units.toucher).toBeGreaterThanOrEqual(15);      // ~ one pass per 300 ms for 7 s
    expect(cache.units).toMatchObject({ pagecache: 3, toucher: 3, random: 1 });
    // The console's live counter (the report's work units) counts the same lines.
    for (const g of run.guests) expect(g.units).toBe(run.checks.get(g.spec.name)!.verified);
  });

  it('the balloon reaches the target the manager set: within 2 MiB above it once the target held 1 s', () => {
    const cache = rows('cache');
    const targets = new Set(cache.map((r) => r.balloonTargetFrames));
    expect(targets.size).toBeGreaterThan(1);                   // the manager moved it
    let settled = 0;
    cache.forEach((r, i) => {
      const since = cache.slice(0, i + 1).reverse().findIndex((x) => x.balloonTargetFrames !== r.balloonTargetFrames);
      const heldFor = (since < 0 ? i : since - 1) * 0.25;
      // 1 s after a change the driver (doorbell, then its 1 s worker) has inflated in whole 2 MiB pages.
      if (heldFor < 1 || (r.t as number) < 4.5) return; // the page cache's rounds hold memory until ~4 s
      const size = r.balloonFrames as number, target = r.balloonTargetFrames as number;
      expect(size, `t=${r.t}`).toBeGreaterThanOrEqual(target);
      expect(size - target, `t=${r.t}`).toBeLessThanOrEqual(512);
      settled++;
    });
    expect(settled).toBeGreaterThan(0);
    expect(cache[cache.length - 1].balloonFrames).toBeGreaterThan(0);
  });

  it('accounts for every host frame exactly, and no frame is mapped by two guests', () => {
    expect(audit.problems).toEqual([]);
    const c = run.host.hv.frames.counts();
    const byVm = run.guests.reduce((a, g) => a + g.m.hostFrames, 0);
    expect(byVm + audit.shared + c.vmFree).toBe(run.host.hv.frames.hypervisorStart);
    for (const g of run.guests) expect(audit.owned[g.m.vm.id]).toBe(g.m.hostFrames);
  });

  it('reports the series and plots it (a valid result)', () => {
    const out = osGuestsReport(params(), run);
    const res = validateResult({ ...out, scenario: 'small', seed: 7, title: out.title ?? '' });
    expect(res.plots.map((p) => p.id)).toEqual(['os-allocation', 'os-balloon', 'os-swap', 'os-sharing', 'os-instructions', 'os-units']);
    expect(res.summary['checksum problems']).toBe(0);
    expect(res.series.guests.length).toBe(run.series.length);
  });

  it('is deterministic for a seed', async () => {
    const again = await runOsGuests(params(), 7);
    try {
      expect(again.series).toEqual(run.series);
      expect(again.hostSeries).toEqual(run.hostSeries);
      expect(again.guests.map((g) => g.console())).toEqual(run.guests.map((g) => g.console()));
    } finally { again.host.close(); }
  }, 240_000);

  it('runs under shadow paging too: every checksum holds and the frame audit is exact', async () => {
    const sh = await runOsGuests(params({ mode: 'shadow', seconds: 4 }), 7);
    try {
      for (const c of sh.checks.values()) expect(c.problems).toEqual([]);
      expect(sh.checks.get('hot')!.units.toucher).toBeGreaterThanOrEqual(8);
      expect(sh.host.swap!.stats().swapIns).toBeGreaterThan(0);
      expect(auditFrames(sh.host.hv.frames, sh.guests.map((g) => g.m.vm)).problems).toEqual([]);
      for (const g of sh.guests) expect(g.m.stopped).toBeNull();
    } finally { sh.host.close(); }
  }, 240_000);
});
