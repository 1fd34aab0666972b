// TLB and paging-structure-cache semantics (SDM Vol. 3A §4.10; shared/reference
// x86-paging-ept-shadow.md §2). "Cached" is observed architecturally: a leaf is
// retargeted in memory without invalidation, and a cached translation still gives
// the old frame.

import { describe, it, expect } from 'vitest';
import { CR4, CR3_NOFLUSH, PTE, PFEC, PAGE_2M, type Cpu } from '../../src/index.js';
import { env, paOf, Tables, PWU, type Env, type EnvOptions } from '../helpers/tables.js';

const VA = 0x1000n;
const OLD = 0x40_0000n, NEW = 0x50_0000n;
const G = PWU | PTE.G;

/** Maps each va to OLD + i pages, translates it, then retargets it to NEW + i pages. */
function prime(e: Env, vas: bigint[], flags: bigint[] = vas.map(() => PWU)): void {
  vas.forEach((va, i) => e.t.map(va, OLD + BigInt(i) * 0x1000n, { flags: flags[i] }));
  vas.forEach((va, i) => expect(paOf(e.cpu, va)).toBe(OLD + BigInt(i) * 0x1000n));
  vas.forEach((va, i) => e.t.map(va, NEW + BigInt(i) * 0x1000n, { flags: flags[i] }));
}

/** Whether the translation of va (index i in prime) is still the cached one. */
function cached(cpu: Cpu, va: bigint, i = 0): boolean {
  const pa = paOf(cpu, va);
  if (pa === OLD + BigInt(i) * 0x1000n) return true;
  expect(pa).toBe(NEW + BigInt(i) * 0x1000n);
  return false;
}

describe('TLB invalidation', () => {
  it('a changed PTE is not seen until INVLPG', async () => {
    const e = await env();
    prime(e, [VA, VA + 0x1000n]);
    expect(cached(e.cpu, VA)).toBe(true);
    e.cpu.invlpg(VA + 0x1000n); // another page: VA stays (the model invalidates exactly)
    expect(cached(e.cpu, VA)).toBe(true);
    e.cpu.invlpg(VA + 0xfffn);
    expect(cached(e.cpu, VA)).toBe(false);
    expect(e.cpu.counters().invlpg).toBe(2);
  });

  it('global pages survive MOV to CR3; non-global ones and G without CR4.PGE do not', async () => {
    const e = await env({ cr4: CR4.PGE });
    prime(e, [VA, VA + 0x1000n], [G, PWU]);
    const cr3 = e.cpu.getRegisters().cr3;
    expect(e.cpu.writeCr3(cr3)).toEqual({ ok: true });
    expect(cached(e.cpu, VA, 0)).toBe(true);
    expect(cached(e.cpu, VA + 0x1000n, 1)).toBe(false);
    const f = await env();
    prime(f, [VA], [G]);
    f.cpu.writeCr3(f.cpu.getRegisters().cr3);
    expect(cached(f.cpu, VA)).toBe(false);
  });

  it('global pages are dropped by INVLPG, by toggling CR4.PGE and by INVPCID type 2', async () => {
    const ops: [string, (cpu: Cpu) => void][] = [
      ['invlpg', (cpu) => cpu.invlpg(VA)],
      ['PGE off', (cpu) => expect(cpu.writeCr4(cpu.getRegisters().cr4 & ~CR4.PGE).ok).toBe(true)],
      ['invpcid 2', (cpu) => expect(cpu.invpcid(2, 0).ok).toBe(true)],
      ['flushTlb', (cpu) => cpu.flushTlb()],
    ];
    for (const [name, op] of ops) {
      const e = await env({ cr4: CR4.PGE });
      prime(e, [VA], [G]);
      op(e.cpu);
      expect(cached(e.cpu, VA), name).toBe(false);
    }
    const e = await env(); // turning PGE on flushes too
    prime(e, [VA]);
    e.cpu.writeCr4(e.cpu.getRegisters().cr4 | CR4.PGE);
    expect(cached(e.cpu, VA)).toBe(false);
  });

  it('a page fault drops the TLB and PSC entries it used: the retry sees memory', async () => {
    const spurious = { ok: false, fault: 'PF', errorCode: PFEC.P | PFEC.W };
    const a = await env();
    a.t.map(VA, OLD, { flags: PTE.P | PTE.U });
    paOf(a.cpu, VA);
    a.t.map(VA, OLD); // R/W 0 -> 1 without INVLPG
    expect(a.cpu.translate(VA, { write: true })).toMatchObject(spurious); // stale TLB entry
    expect(paOf(a.cpu, VA, { write: true })).toBe(OLD);
    const g = await env({ cr4: CR4.PGE }); // a global entry too
    g.t.map(VA, OLD, { flags: PTE.P | PTE.U | PTE.G });
    paOf(g.cpu, VA);
    g.t.map(VA, OLD, { flags: G });
    expect(g.cpu.translate(VA, { write: true })).toMatchObject(spurious);
    expect(paOf(g.cpu, VA, { write: true })).toBe(OLD);
    const b = await env();
    b.t.map(VA, OLD);
    b.t.map(VA + 0x1000n, OLD + 0x1000n);
    b.t.modify(VA, 2, 0n, PTE.W);
    paOf(b.cpu, VA);
    b.t.modify(VA, 2, PTE.W); // the PDE becomes writable without INVLPG
    expect(b.cpu.translate(VA + 0x1000n, { write: true })).toMatchObject(spurious); // stale PDE cache
    expect(paOf(b.cpu, VA + 0x1000n, { write: true })).toBe(OLD + 0x1000n);
  });

  it('a 2 MiB page is invalidated by INVLPG of any address inside it', async () => {
    const e = await env();
    e.t.map(0x4000_0000n, 0x60_0000n, { size: PAGE_2M });
    expect(paOf(e.cpu, 0x4000_1000n)).toBe(0x60_1000n);
    e.t.map(0x4000_0000n, 0x80_0000n, { size: PAGE_2M });
    e.cpu.invlpg(0x4020_0000n); // the next 2 MiB page
    expect(paOf(e.cpu, 0x4000_1000n)).toBe(0x60_1000n);
    e.cpu.invlpg(0x401f_f123n);
    expect(paOf(e.cpu, 0x4000_1000n)).toBe(0x80_1000n);
  });
});

describe('PCIDs', () => {
  const pcidEnv = (o: EnvOptions = {}) => env({ ...o, cr4: CR4.PCIDE | (o.cr4 ?? 0n) });

  it('PCID 1 entries survive a switch to PCID 2 and back only with CR3 bit 63', async () => {
    const e = await pcidEnv();
    const root = e.t.root;
    e.cpu.writeCr3(root | 1n);
    prime(e, [VA]);
    e.cpu.writeCr3(root | 2n);
    expect(e.cpu.getRegisters().cr3).toBe(root | 2n);
    e.cpu.writeCr3(root | 1n | CR3_NOFLUSH);
    expect(e.cpu.getRegisters().cr3).toBe(root | 1n);
    expect(cached(e.cpu, VA)).toBe(true);
    e.cpu.writeCr3(root | 2n);
    e.cpu.writeCr3(root | 1n);
    expect(cached(e.cpu, VA)).toBe(false);
  });

  it('a global entry made under PCID 1 serves PCID 2, even after a PCID-2 flush', async () => {
    const e = await pcidEnv({ cr4: CR4.PGE });
    e.cpu.writeCr3(e.t.root | 1n);
    prime(e, [VA, VA + 0x1000n], [G, PWU]);
    e.cpu.writeCr3(e.t.root | 2n);
    expect(cached(e.cpu, VA, 0)).toBe(true);
    expect(cached(e.cpu, VA + 0x1000n, 1)).toBe(false);
  });

  it('the same va translates through each PCID\'s own tables', async () => {
    const e = await pcidEnv();
    const t2 = new Tables(e.m.memory, 4, 0x80_0000n);
    e.t.map(VA, OLD);
    t2.map(VA, NEW);
    e.cpu.writeCr3(e.t.root | 1n);
    expect(paOf(e.cpu, VA)).toBe(OLD);
    e.cpu.writeCr3(t2.root | 2n);
    expect(paOf(e.cpu, VA)).toBe(NEW);
    const walks = e.cpu.counters().walks;
    e.cpu.writeCr3(e.t.root | 1n | CR3_NOFLUSH);
    expect(paOf(e.cpu, VA)).toBe(OLD);
    e.cpu.writeCr3(t2.root | 2n | CR3_NOFLUSH);
    expect(paOf(e.cpu, VA)).toBe(NEW);
    expect(e.cpu.counters().walks).toBe(walks); // both served from the TLB
  });

  // Cached before the operation: PCID 2 va1; PCID 1 va1, va2 and global vg.
  const V1 = 0x1000n, V2 = 0x2000n, VG = 0x3000n;
  async function fourEntries() {
    const e = await pcidEnv({ cr4: CR4.PGE });
    e.cpu.writeCr3(e.t.root | 1n);
    prime(e, [V1, V2, VG], [PWU, PWU, G]);
    e.t.map(V1, OLD); // PCID 2 caches va1 -> OLD too
    e.cpu.writeCr3(e.t.root | 2n);
    expect(paOf(e.cpu, V1)).toBe(OLD);
    e.t.map(V1, NEW);
    return e;
  }
  async function survivors(e: Env): Promise<Record<string, boolean>> {
    e.cpu.writeCr3(e.t.root | 2n | CR3_NOFLUSH);
    const p2v1 = cached(e.cpu, V1);
    e.cpu.writeCr3(e.t.root | 1n | CR3_NOFLUSH);
    return { p2v1, p1v1: cached(e.cpu, V1, 0), p1v2: cached(e.cpu, V2, 1), vg: cached(e.cpu, VG, 2) };
  }

  it.each([
    ['type 0, PCID 1, va1', 0, 1, V1, { p2v1: true, p1v1: false, p1v2: true, vg: true }],
    ['type 0, PCID 1, global va', 0, 1, VG, { p2v1: true, p1v1: true, p1v2: true, vg: true }],
    ['type 0, PCID 2, va1', 0, 2, V1, { p2v1: false, p1v1: true, p1v2: true, vg: true }],
    ['type 1, PCID 1', 1, 1, 0n, { p2v1: true, p1v1: false, p1v2: false, vg: true }],
    ['type 2', 2, 0, 0n, { p2v1: false, p1v1: false, p1v2: false, vg: false }],
    ['type 3', 3, 0, 0n, { p2v1: false, p1v1: false, p1v2: false, vg: true }],
  ] as const)('INVPCID %s drops exactly its scope', async (_n, type, pcid, va, want) => {
    const e = await fourEntries();
    expect(e.cpu.invpcid(type, pcid, va)).toEqual({ ok: true });
    expect(await survivors(e)).toEqual(want);
  });

  it('INVPCID with a bad type, PCID or address is #GP and drops nothing', async () => {
    const e = await fourEntries();
    const GP = { ok: false, fault: 'GP' };
    expect(e.cpu.invpcid(4, 0)).toEqual(GP);
    expect(e.cpu.invpcid(1, 0x1000)).toEqual(GP);
    expect(e.cpu.invpcid(2, 0x1000)).toEqual(GP);
    expect(e.cpu.invpcid(0, 1, 0x0000_8000_0000_0000n)).toEqual(GP);
    expect(await survivors(e)).toEqual({ p2v1: true, p1v1: true, p1v2: true, vg: true });
    const f = await env(); // PCIDE=0: types 0 and 1 accept only PCID 0
    expect(f.cpu.invpcid(0, 1, VA)).toEqual(GP);
    expect(f.cpu.invpcid(1, 1)).toEqual(GP);
    expect(f.cpu.invpcid(1, 0)).toEqual({ ok: true });
    expect(f.cpu.invpcid(3, 0)).toEqual({ ok: true });
  });
});

describe('paging-structure caches', () => {
  it('a neighbour page walks from the PDE cache; a PDPTE-cache hit skips two levels', async () => {
    const { cpu, t } = await env();
    for (const va of [0x1000n, 0x2000n, 0x20_1000n]) t.map(va, OLD + va);
    paOf(cpu, 0x1000n);
    expect(cpu.counters()).toMatchObject({ walks: 1, walkRefs: 4, pscMiss: 1, pscHitPde: 0 });
    expect(paOf(cpu, 0x2000n)).toBe(OLD + 0x2000n);
    expect(cpu.counters()).toMatchObject({ walks: 2, walkRefs: 5, pscHitPde: 1 });
    expect(paOf(cpu, 0x20_1000n)).toBe(OLD + 0x20_1000n);
    expect(cpu.counters()).toMatchObject({ walks: 3, walkRefs: 7, pscHitPde: 1, pscHitPdpte: 1 });
  });

  it('a changed PDE keeps using the cached page table until INVLPG of any address', async () => {
    const { cpu, t } = await env();
    t.map(0x1000n, OLD + 0x1000n);
    t.map(0x3000n, OLD + 0x3000n);
    t.map(0x4000n, OLD + 0x4000n);
    paOf(cpu, 0x1000n);
    const pt2 = t.alloc();
    t.mem.write64(pt2 + 3n * 8n, NEW + 0x3000n | PWU);
    t.mem.write64(pt2 + 4n * 8n, NEW + 0x4000n | PWU);
    t.set(0x1000n, 2, pt2 | PWU);
    expect(paOf(cpu, 0x3000n)).toBe(OLD + 0x3000n);
    expect(cpu.counters().pscHitPde).toBe(1);
    cpu.invlpg(0x7000_0000n);
    const refs = cpu.counters().walkRefs;
    expect(paOf(cpu, 0x4000n)).toBe(NEW + 0x4000n);
    expect(cpu.counters().walkRefs - refs).toBe(4);
    expect(cpu.counters().pscHitPde).toBe(1);
  });

  it('flushTlb drops every TLB and PSC entry', async () => {
    const e = await env({ cr4: CR4.PGE });
    prime(e, [VA, VA + 0x1000n], [G, PWU]);
    e.cpu.flushTlb();
    const refs = e.cpu.counters().walkRefs;
    expect(cached(e.cpu, VA, 0)).toBe(false);
    expect(e.cpu.counters().walkRefs - refs).toBe(4);
    expect(cached(e.cpu, VA + 0x1000n, 1)).toBe(false);
  });
});

describe('dirty bit and counters', () => {
  it('a write hitting a TLB entry with D=0 re-walks and sets D once', async () => {
    const { cpu, t } = await env();
    t.map(VA, OLD);
    paOf(cpu, VA);
    expect(t.get(VA, 1) & PTE.D).toBe(0n);
    expect(paOf(cpu, VA + 8n, { write: true })).toBe(OLD + 8n);
    expect(t.get(VA, 1) & PTE.D).toBe(PTE.D);
    expect(cpu.counters()).toMatchObject({ dirtyRewalks: 1, walks: 2 });
    paOf(cpu, VA, { write: true });
    expect(cpu.counters()).toMatchObject({ dirtyRewalks: 1, walks: 2, l1Hit4k: 2 });
    t.map(VA + 0x1000n, OLD, { flags: PWU | PTE.D }); // D already set: no re-walk
    paOf(cpu, VA + 0x1000n);
    paOf(cpu, VA + 0x1000n, { write: true });
    expect(cpu.counters()).toMatchObject({ dirtyRewalks: 1, walks: 3 });
  });

  const pages = (n: number) => Array.from({ length: n }, (_, i) => 0x1000n * BigInt(i + 1));

  it('a 4-way L1 set evicts the least recently used entry', async () => {
    const { cpu, t } = await env({ cpu: { tlb: { l1d4k: { entries: 4, ways: 4 }, l2: false } } });
    const p = pages(5);
    p.forEach((va) => t.map(va, OLD + va));
    const touch = (i: number) => paOf(cpu, p[i]);
    [0, 1, 2, 3].forEach(touch);
    expect(cpu.counters()).toMatchObject({ l1Miss: 4, l2Miss: 4, walks: 4, l1Hit4k: 0 });
    [0, 1, 2, 3].forEach(touch);
    expect(cpu.counters()).toMatchObject({ l1Miss: 4, walks: 4, l1Hit4k: 4 });
    touch(0);   // LRU order now 1, 2, 3, 0
    touch(4);   // evicts page 1
    expect(cpu.counters()).toMatchObject({ walks: 5, l1Hit4k: 5 });
    [0, 2, 3, 4].forEach(touch);
    expect(cpu.counters()).toMatchObject({ walks: 5, l1Hit4k: 9 });
    touch(1);
    expect(cpu.counters()).toMatchObject({ walks: 6, l1Miss: 6, l1Hit4k: 9 });
  });

  it('an L1 victim is found in the L2 and refilled into the L1', async () => {
    const { cpu, t } = await env({ cpu: { tlb: { l1d4k: { entries: 4, ways: 4 }, l2: { entries: 16, ways: 4 } } } });
    const p = pages(5);
    p.forEach((va) => t.map(va, OLD + va));
    p.forEach((va) => paOf(cpu, va)); // page 1 evicted from the L1
    expect(cpu.counters()).toMatchObject({ walks: 5, l2Miss: 5, l2Hit4k: 0 });
    expect(paOf(cpu, p[0])).toBe(OLD + p[0]);
    expect(cpu.counters()).toMatchObject({ walks: 5, l1Miss: 6, l2Hit4k: 1 });
    paOf(cpu, p[0]);
    expect(cpu.counters()).toMatchObject({ l1Miss: 6, l1Hit4k: 1 });
    paOf(cpu, p[0], { fetch: true }); // the instruction TLB misses, the unified L2 hits
    expect(cpu.counters()).toMatchObject({ walks: 5, l1Miss: 7, l2Hit4k: 2 });
  });

  it('2 MiB translations hit in the L1 2 MiB TLB', async () => {
    const { cpu, t } = await env();
    t.map(0x4000_0000n, 0x60_0000n, { size: PAGE_2M });
    paOf(cpu, 0x4000_0000n);
    paOf(cpu, 0x401f_f000n);
    expect(cpu.counters()).toMatchObject({ walks: 1, walks2m: 1, l1Hit2m: 1, l1Hit4k: 0 });
  });
});
