// The TLB-coherence checker: reports uses of cached translations whose leaf entry
// changed in memory (other than A/D) without an invalidation — the missing INVLPG.

import { describe, it, expect } from 'vitest';
import { Cpu, PTE, PAGE_2M } from '../../src/index.js';
import { env, paOf, PWU, type EnvOptions } from '../helpers/tables.js';

const VA = 0x7000_0000n;
const OLD = 0x40_0000n, NEW = 0x50_0000n;
const on: EnvOptions = { cpu: { coherenceChecker: true } };

describe('coherence checker', () => {
  it('reports a stale frame once, with va, entry address, cached and current values', async () => {
    const { cpu, t } = await env(on);
    t.map(VA, OLD);
    paOf(cpu, VA);
    const entryPa = t.entryPa(VA, 1);
    t.map(VA, NEW); // no INVLPG
    expect(paOf(cpu, VA + 0x10n)).toBe(OLD + 0x10n); // the stale translation is still used
    const want = { va: VA + 0x10n, entryPa, cached: OLD | PWU | PTE.A, now: NEW | PWU };
    expect(cpu.staleUses()).toEqual([want]);
    expect(cpu.counters().staleUses).toBe(1);
    expect(Cpu.describeStale(cpu.staleUses()[0])).toContain('0x70000010');
    paOf(cpu, VA + 0x20n);
    paOf(cpu, VA + 0x30n, { write: true });
    expect(cpu.staleUses()).toEqual([want]);
  });

  it('reports nothing when INVLPG comes between the change and the access', async () => {
    const { cpu, t } = await env(on);
    t.map(VA, OLD);
    paOf(cpu, VA);
    t.map(VA, NEW);
    cpu.invlpg(VA);
    expect(paOf(cpu, VA)).toBe(NEW);
    expect(cpu.staleUses()).toEqual([]);
    expect(cpu.counters().staleUses).toBe(0);
  });

  it('does not report A/D-only changes', async () => {
    const { cpu, t } = await env(on);
    t.map(VA, OLD, { flags: PWU | PTE.D });
    paOf(cpu, VA, { write: true });
    t.modify(VA, 1, 0n, PTE.A | PTE.D); // software clears A and D without INVLPG
    paOf(cpu, VA);
    paOf(cpu, VA, { write: true });
    t.modify(VA, 1, PTE.A | PTE.D);
    paOf(cpu, VA);
    expect(cpu.staleUses()).toEqual([]);
  });

  it('reports a rights change (R/W cleared) and a retargeted 2 MiB page', async () => {
    const { cpu, t } = await env(on);
    t.map(VA, OLD);
    t.map(0x4000_0000n, 0x60_0000n, { size: PAGE_2M });
    paOf(cpu, VA);
    paOf(cpu, 0x4000_0000n);
    t.modify(VA, 1, 0n, PTE.W);
    t.map(0x4000_0000n, 0x80_0000n, { size: PAGE_2M });
    expect(paOf(cpu, VA + 8n)).toBe(OLD + 8n);
    expect(paOf(cpu, 0x4012_3456n)).toBe(0x72_3456n);
    expect(cpu.staleUses().map((s) => [s.va, s.entryPa])).toEqual([
      [VA + 8n, t.entryPa(VA, 1)], [0x4012_3456n, t.entryPa(0x4000_0000n, 2)]]);
    expect(cpu.staleUses()[1].now).toBe(0x80_0000n | PWU | PTE.PS);
  });

  it('reports a stale use found through the batch engine', async () => {
    const { m, cpu, t } = await env(on);
    t.map(VA, OLD);
    const b = m.createBatch(4);
    b.load(VA);
    cpu.execute(b);
    t.map(VA, NEW);
    m.memory.write64(OLD + 8n, 0x1234n);
    b.clear().load(VA + 8n);
    expect(cpu.execute(b).exit).toEqual({ reason: 'end' });
    expect(b.value(0)).toBe(0x1234n);
    expect(cpu.staleUses().map((s) => s.va)).toEqual([VA + 8n]);
  });

  it('reports a stale use once even when it is served from the L2 and refilled into the L1', async () => {
    const { cpu, t } = await env({ cpu: { coherenceChecker: true, tlb: { l1d4k: { entries: 4, ways: 4 } } } });
    for (let i = 0n; i < 5n; i++) t.map(VA + i * 0x1000n, OLD + i * 0x1000n);
    for (let i = 0n; i < 5n; i++) paOf(cpu, VA + i * 0x1000n); // VA leaves the 4-entry L1
    t.map(VA, NEW);
    paOf(cpu, VA); // L2 hit: reported, and refilled into the L1
    paOf(cpu, VA); // L1 hit on the same stale translation
    expect(cpu.counters().l2Hit4k).toBe(1);
    expect(cpu.staleUses()).toHaveLength(1);
  });

  it('keeps the most recent uses, oldest first, when more than the ring holds', async () => {
    const { cpu, t } = await env(on);
    const n = 70;
    for (let i = 0; i < n; i++) t.map(VA + BigInt(i) * 0x1000n, OLD + BigInt(i) * 0x1000n);
    for (let i = 0; i < n; i++) paOf(cpu, VA + BigInt(i) * 0x1000n);
    for (let i = 0; i < n; i++) t.map(VA + BigInt(i) * 0x1000n, NEW);
    for (let i = 0; i < n; i++) paOf(cpu, VA + BigInt(i) * 0x1000n);
    expect(cpu.counters().staleUses).toBe(n);
    const uses = cpu.staleUses();
    expect(uses.length).toBe(64);
    expect(uses[0].va).toBe(VA + BigInt(n - 64) * 0x1000n);
    expect(uses[63].va).toBe(VA + BigInt(n - 1) * 0x1000n);
  });

  it('reports nothing while off, and can be switched at run time', async () => {
    const { cpu, t } = await env();
    t.map(VA, OLD);
    t.map(VA + 0x1000n, OLD);
    paOf(cpu, VA);
    paOf(cpu, VA + 0x1000n);
    t.map(VA, NEW);
    t.map(VA + 0x1000n, NEW);
    expect(paOf(cpu, VA)).toBe(OLD);
    expect(cpu.staleUses()).toEqual([]);
    expect(cpu.counters().staleUses).toBe(0);
    cpu.setCoherenceChecker(true);
    expect(paOf(cpu, VA + 0x1000n)).toBe(OLD);
    expect(cpu.staleUses().map((s) => s.va)).toEqual([VA + 0x1000n]);
    cpu.setCoherenceChecker(false);
    t.map(VA + 0x2000n, OLD);
    paOf(cpu, VA + 0x2000n);
    t.map(VA + 0x2000n, NEW);
    paOf(cpu, VA + 0x2000n);
    expect(cpu.counters().staleUses).toBe(1);
  });
});
