// The "host" scenario kind: VMs with min/max/shares and pools under the memory manager;
// impossible parameters are refused before anything runs, naming the field.
import { describe, it, expect } from 'vitest';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import '../../src/experiment/catalogue.js';
import { runScenario } from '../../src/experiment/runner.js';
import { parseExperimentScenario } from '../../src/experiment/registry.js';
import { runCli } from '../helpers/cli-bin.js';

const base = { kind: 'host', name: 'h', hostMiB: 12, seconds: 8,
  vms: [{ name: 'a', memMiB: 8, workload: { type: 'filler' } }, { name: 'b', memMiB: 8, workload: { type: 'filler' } }] };
const problems = (json: object): string => { try { parseExperimentScenario(json); return ''; } catch (e) { return String((e as Error).message); } };

describe('host scenarios', () => {
  it('refuse impossible parameters, naming the field', () => {
    expect(problems({ ...base, vms: [base.vms[0], { ...base.vms[1], minMiB: 6, maxMiB: 5 }] })).toMatch(/vms\[1\]\.minMiB: min 6 MiB must be <= max \(5 MiB\)/);
    expect(problems({ ...base, vms: [{ ...base.vms[0], maxMiB: 9 }, base.vms[1]] })).toMatch(/vms\[0\]\.maxMiB: max 9 MiB is above the VM's memory/);
    expect(problems({ ...base, vms: base.vms.map((v) => ({ ...v, minMiB: 7 })) })).toMatch(/vms: the VMs' mins and reservations \(14 MiB\) do not fit host memory \(12 MiB\)/);
    expect(problems({ ...base, vms: [base.vms[0], { ...base.vms[1], name: 'a' }] })).toMatch(/vms\[1\]\.name: "a" is used by another VM/);
    expect(problems({ ...base, vms: [{ ...base.vms[0], pool: 'gold' }, base.vms[1]] })).toMatch(/vms\[0\]\.pool: no pool named "gold"/);
    expect(problems({ ...base, policy: { balloon: false, swap: false } })).toMatch(/policy\.swap: the VMs' memory \(16 MiB\) overcommits the host \(12 MiB\)/);
    // The swap file is sized by max − min of the VMs (as ESX sizes its .vswp files): 400 MiB of VMs on 64 MiB is admissible.
    expect(problems({ ...base, hostMiB: 64, vms: [{ name: 'a', memMiB: 200, workload: { type: 'idle' } }, { name: 'b', memMiB: 200, workload: { type: 'idle' } }] })).toBe('');
    expect(problems({ ...base, pools: [{ name: 'p', shares: 1, limitMiB: 2 }], vms: [{ ...base.vms[0], minMiB: 4, pool: 'p' }, base.vms[1]] }))
      .toMatch(/pools\[0\]\.limitMiB: limit 2 MiB is below its VMs' mins and reservations \(4 MiB\)/);
    expect(problems({ ...base, vms: [{ ...base.vms[0], workload: { type: 'phased', phases: [{ seconds: 1, fraction: 0.0001 }] } }, base.vms[1]] }))
      .toMatch(/vms\[0\]\.workload\.phases\[0\]\.fraction: 0\.0001 of 8 MiB is less than one page/);
    expect(problems({ ...base, vms: [{ ...base.vms[0], maxMiB: 0.001 }, base.vms[1]] })).toMatch(/vms\[0\]\.maxMiB/);
    expect(problems({ ...base, policy: { swap: false } })).toMatch(/vms\[0\]\.minMiB: with policy.swap false there is no swap to reserve max − min/);
    expect(problems({ ...base, vms: [{ ...base.vms[0], workload: { type: 'sleepy' } }, base.vms[1]] })).toMatch(/vms\[0\]\.workload/);
    expect(problems({ ...base, vms: [{ ...base.vms[0], minMiB: 2, limitMiB: 1 }, base.vms[1]] })).toMatch(/vms\[0\]\.limitMiB: limit 1 MiB must be >= min and reservation \(2 MiB\)/);
    expect(problems({ ...base, vms: [{ ...base.vms[0], reservationMiB: 9 }, base.vms[1]] })).toMatch(/vms\[0\]\.reservationMiB: reservation 9 MiB must be <= max and limit \(8 MiB\)/);
    expect(problems(base)).toBe('');
  });

  it('the CLI exits non-zero on an impossible scenario and writes nothing', () => {
    const dir = mkdtempSync(join(tmpdir(), 'memvisor-host-'));
    const file = join(dir, 'bad.json'), out = join(dir, 'out');
    writeFileSync(file, JSON.stringify({ ...base, vms: base.vms.map((v) => ({ ...v, minMiB: 7 })) }));
    try {
      const r = runCli(['run', file, '--out', out, '--quiet']);
      expect(r.status).not.toBe(0);
      expect(r.stderr).toMatch(/vms: the VMs' mins/);
      expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
      expect(existsSync(out)).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);

  it('runs two VMs under the manager; a pool limit caps its member', async () => {
    // 12 s: past its 4 MiB balloon limit the rest is swapped by the swap daemon, whose
    // clustered writes take disk time while the filler faults some pages back.
    const r = await runScenario({ ...base, seconds: 12, pools: [{ name: 'small', shares: 1, limitMiB: 3 }],
      vms: [base.vms[0], { ...base.vms[1], pool: 'small' }], policy: { sampling: false, balancePeriod: 1 } });
    const last = (vm: string) => r.series.allocation.filter((x) => x.vm === vm).at(-1)!;
    expect(last('b').targetMiB).toBeLessThanOrEqual(3);
    expect(last('a').targetMiB).toBeGreaterThan(last('b').targetMiB as number);
    expect(last('b').MiB).toBeLessThanOrEqual(3.1); // reclaimed down to its pool's limit
    expect(r.plots.map((p) => p.id)).toEqual(['allocation', 'reclaimed']);
  }, 60_000);

  it('hierarchical pools: an idle VM\'s memory goes to its sibling in the pool first (targets as level-by-level min-funding gives them)', async () => {
    // Pools A and B with equal shares. A: a VM that fills 90 % and then sits idle, and a
    // toucher working on half its memory; B: two such touchers. Targets are checked against
    // the closed forms of level-by-level min-funding at τ = 0.75 with the sampled active
    // fractions (the last record), to 2 % (integer frames and 0.01 MiB rounding).
    const fill = { type: 'toucher', regionFraction: 0.9, setFraction: 0.5, shiftSeconds: 1000 };
    const r = await runScenario({ kind: 'host', name: 'pools', hostMiB: 40, seconds: 30, seed: 3, policy: { balancePeriod: 2 },
      pools: [{ name: 'A', shares: 1 }, { name: 'B', shares: 1 }],
      vms: [
        { name: 'a-idle', memMiB: 16, pool: 'A', workload: { type: 'filler', fraction: 0.9 } },
        { name: 'a-busy', memMiB: 16, pool: 'A', workload: fill },
        { name: 'b1', memMiB: 16, pool: 'B', workload: fill },
        { name: 'b2', memMiB: 16, pool: 'B', workload: fill },
      ] });
    const last = (vm: string) => r.series.allocation.filter((x) => x.vm === vm).at(-1)! as Record<string, number>;
    const [idle, busy, b1, b2] = ['a-idle', 'a-busy', 'b1', 'b2'].map(last);
    const budget = idle.targetMiB + busy.targetMiB + b1.targetMiB + b2.targetMiB;
    // The price of a page at the sampled active fraction f, τ = 0.75: f + 4 (1 − f).
    const cost = (f: number) => f + 4 * (1 - f);
    const ratio = (x: number, y: number) => Math.abs(x / y - 1);
    // Level 1: each pool pays its most active member's price; equal shares, so P_A / P_B = cost(f_B) / cost(f_A).
    const fA = Math.max(idle.active, busy.active), fB = Math.max(b1.active, b2.active);
    expect(ratio((idle.targetMiB + busy.targetMiB) / (b1.targetMiB + b2.targetMiB), cost(fB) / cost(fA))).toBeLessThan(0.02);
    // Level 2: a-busy / a-idle = cost(f_idle) / cost(f_busy); b1 / b2 likewise.
    expect(ratio(busy.targetMiB / idle.targetMiB, cost(idle.active) / cost(busy.active))).toBeLessThan(0.02);
    expect(ratio(b1.targetMiB / b2.targetMiB, cost(b2.active) / cost(b1.active))).toBeLessThan(0.02);
    expect(idle.active).toBeLessThan(0.2);
    expect(busy.active).toBeGreaterThan(0.35);
    // Flat min-funding (no pools) would give each VM budget · (1 / cost_i) / Σ (1 / cost_j):
    // the idle VM's memory spread over all three. With pools its sibling gets more than that, B's VMs less.
    const all = [idle, busy, b1, b2], inv = all.reduce((a, v) => a + 1 / cost(v.active), 0);
    const flat = (v: Record<string, number>) => budget / cost(v.active) / inv;
    expect(busy.targetMiB).toBeGreaterThan(1.05 * flat(busy));
    expect(b1.targetMiB).toBeLessThan(flat(b1));
    expect(b2.targetMiB).toBeLessThan(flat(b2));
  }, 240_000);

  it('overcommits as ESX does: 64 VMs × 256 MiB (16 GiB configured) on a 2 GiB host run, holding frames only for touched pages', async () => {
    const { readFileSync } = await import('node:fs');
    const file = fileURLToPath(new URL('../../scenarios/overcommit-64.json', import.meta.url));
    const sc = JSON.parse(readFileSync(file, 'utf8'));
    expect(sc.vms.length * sc.vms[0].memMiB).toBe(16 * 1024);
    expect(sc.hostMiB).toBe(2048);
    const r = await runScenario({ ...sc, seconds: 1 });
    const last = new Map(r.series.allocation.map((x) => [x.vm, x]));
    expect(last.size).toBe(64);
    const held = [...last.values()].reduce((s, x) => s + (x.MiB as number), 0);
    expect(held).toBeGreaterThan(0);
    expect(held).toBeLessThan(2048); // far below the 16 GiB configured
    expect(r.summary['host memory for VMs (MiB)']).toBe(2048);
  }, 240_000);

  it('two-vms.json, the template of a host of your own, overcommits and reclaims; its description states its real shares', async () => {
    const { readFileSync } = await import('node:fs');
    const sc = JSON.parse(readFileSync(fileURLToPath(new URL('../../scenarios/two-vms.json', import.meta.url)), 'utf8'));
    const web = sc.vms.find((v: { name: string }) => v.name === 'web'), idle = sc.vms.find((v: { name: string }) => v.name === 'idle');
    const pool = sc.pools.find((q: { name: string }) => q.name === idle.pool);
    const configured = sc.vms.reduce((a: number, v: { memMiB: number }) => a + v.memMiB, 0);
    expect(configured).toBeGreaterThan(sc.hostMiB);
    // Every number the description gives is the file's.
    expect(sc.description).toContain(`${configured} MiB of VMs on ${sc.hostMiB} MiB`);
    expect(sc.description).toContain(`has ${web.shares} shares, twice the ${pool.shares} of the ${pool.name} pool (limited to ${pool.limitMiB} MiB)`);
    expect(web.shares).toBe(2 * pool.shares);
    expect(sc.description).toContain(`cache wants ${web.memMiB * web.workload.cacheFraction} MiB`);
    expect(sc.description).toContain(`filled ${Math.round(idle.workload.fraction * 100)} % of its memory`);
    expect(sc.description).toContain(`τ = ${sc.policy.tau}`);
    const r = await runScenario(sc);
    // Reclamation shows: the idle VM is ballooned and the host swaps, and it ends far below what it filled.
    expect(Number(r.summary['idle: balloon MiB'])).toBeGreaterThan(4);
    expect(Number(r.summary['host swap-outs'])).toBeGreaterThan(0);
    const [held] = String(r.summary['idle: MiB held / target']).split(' / ').map(Number);
    expect(held).toBeLessThan(idle.memMiB * idle.workload.fraction / 2);
    expect(r.series.allocation.some((x) => x.vm === 'idle' && Number(x.balloonMiB) > 0)).toBe(true);
    expect(r.plots.find((x) => x.id === 'allocation')!.caption).toMatch(/τ = 0\.75\) over 20 MiB for 32 MiB of VMs\.$/);
    expect(r.plots.find((x) => x.id === 'reclaimed')!.caption).toMatch(/^What the manager took back from each VM/);
  }, 120_000);
});
