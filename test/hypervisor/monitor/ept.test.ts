// EPT tables as bytes in host memory: read back and decoded independently of Ept's own
// walker, for 4 KiB / 2 MiB / 1 GiB leaves, splits, unmaps, write protection, coalescing,
// invalidation calls; then the core walks them.
import { describe, it, expect, beforeEach } from 'vitest';
import fc from 'fast-check';
import { assertProperty } from '../../helpers/seeds.js';
import { Machine, EPT, type Gfn, type Hfn, type Cpu } from '../../../src/index.js';
import { HostFrames, HV_OWNER, Ept, P2m, P2M, RWX, attachToP2m } from '../../../src/hypervisor/index.js';

const ADDR = 0x000f_ffff_ffff_f000n;
const g = (n: number) => n as Gfn;
const h = (n: number) => n as Hfn;

interface Env { m: Machine; frames: HostFrames; ept: Ept; invalidations: number }
let env: Env;

beforeEach(async () => {
  const m = await Machine.create({ memoryBytes: 32 * 2 ** 20 });
  const frames = new HostFrames(m.memory, { totalFrames: 8192, hypervisorFrames: 1024 });
  env = { m, frames, ept: undefined as unknown as Ept, invalidations: 0 };
  env.ept = new Ept(m.memory, { alloc: () => frames.alloc(HV_OWNER), free: (x) => frames.free(x, HV_OWNER) },
    { onInvalidate: () => env.invalidations++ });
});

/** Decodes an EPTP (SDM 3.1): memory type, walk length, A/D enable, root. */
function decodeEptp(p: bigint) {
  return { memType: Number(p & 7n), levels: Number((p >> 3n) & 7n) + 1, ad: (p >> 6n) & 1n, root: p & ADDR, rsvd: (p >> 7n) & 31n };
}

/** Reads the entry for gpa at `level` (4 = PML4E) by walking the bytes; [entry, its hpa]. */
function entryAt(mem: Machine['memory'], root: bigint, gpa: bigint, level: number): [bigint, bigint] {
  let table = root;
  for (let l = 4; ; l--) {
    const at = table + ((gpa >> BigInt(3 + 9 * l)) & 511n) * 8n;
    const e = mem.read64(at);
    if (l === level) return [e, at];
    expect(e & 0xffn).toBe(7n);            // non-leaf: R|W|X, bits 7:3 zero
    table = e & ADDR;
  }
}

/** Fields of a leaf: rights, memory type, IPAT, PS, A, D, frame address. */
function decodeLeaf(e: bigint) {
  return { rights: e & 7n, memType: Number((e >> 3n) & 7n), ipat: (e >> 6n) & 1n, ps: (e >> 7n) & 1n,
    a: (e >> 8n) & 1n, d: (e >> 9n) & 1n, addr: e & ADDR };
}

function presentEntries(mem: Machine['memory'], table: bigint): number {
  let n = 0;
  for (let i = 0n; i < 512n; i++) if (mem.read64(table + i * 8n) & 7n) n++;
  return n;
}

describe('EPT tables in host memory', () => {
  it('has a write-back, 4-level, A/D-enabled EPTP whose root is a hypervisor frame', () => {
    const p = decodeEptp(env.ept.eptp);
    expect(p).toEqual({ memType: 6, levels: 4, ad: 1n, root: env.ept.root, rsvd: 0n });
    expect(Number(env.ept.root >> 12n)).toBeGreaterThanOrEqual(env.frames.hypervisorStart);
  });

  it('maps a 4 KiB page: four levels, one leaf with rights and WB', () => {
    const { m, ept } = env;
    ept.map(g(0x12345), h(0x777), EPT.R | EPT.X);
    const gpa = 0x12345n << 12n;
    const [leaf] = entryAt(m.memory, ept.root, gpa, 1);
    expect(decodeLeaf(leaf)).toEqual({ rights: 5n, memType: 6, ipat: 0n, ps: 0n, a: 0n, d: 0n, addr: 0x777000n });
    expect(ept.stats.tables).toBe(4);
    for (let l = 4; l >= 2; l--) expect(presentEntries(m.memory, entryAt(m.memory, ept.root, gpa, l)[0] & ADDR)).toBe(1);
    expect(ept.lookup(g(0x12345))).toMatchObject({ hfn: 0x777, rights: 5n, size: 4096, level: 1 });
    expect(ept.lookup(g(0x12346))).toBeNull();
  });

  it('maps a 2 MiB page as a PDE with PS, and a 1 GiB page as a PDPTE with PS', () => {
    const { m, ept } = env;
    ept.map(g(0x200), h(0x400), RWX, 0x200000);       // gpa 2 MiB → hpa 4 MiB
    ept.map(g(0x40000), h(0x40000), RWX, 0x40000000); // gpa 1 GiB → hpa 1 GiB
    const pde = decodeLeaf(entryAt(m.memory, ept.root, 0x200000n, 2)[0]);
    expect(pde).toEqual({ rights: 7n, memType: 6, ipat: 0n, ps: 1n, a: 0n, d: 0n, addr: 0x400000n });
    const pdpte = decodeLeaf(entryAt(m.memory, ept.root, 0x4000_0000n, 3)[0]);
    expect(pdpte).toEqual({ rights: 7n, memType: 6, ipat: 0n, ps: 1n, a: 0n, d: 0n, addr: 0x4000_0000n });
    expect(ept.stats.tables).toBe(3); // PML4, PDPT, one PD
    expect(ept.lookup(g(0x2ff))).toMatchObject({ hfn: 0x4ff, size: 0x200000, level: 2 });
    expect(ept.lookup(g(0x40123))).toMatchObject({ hfn: 0x40123, size: 0x40000000, level: 3 });
    expect(() => ept.map(g(0x201), h(0x400), RWX, 0x200000)).toThrow(/not aligned/);
  });

  it('never writes W without R, and rejects unknown bits', () => {
    expect(() => env.ept.map(g(1), h(1), EPT.W)).toThrow(/R wherever W/);
    expect(() => env.ept.map(g(1), h(1), EPT.W | EPT.X)).toThrow(/R wherever W/);
    expect(() => env.ept.map(g(1), h(1), EPT.PS | EPT.R)).toThrow();
  });

  it('splits a 2 MiB leaf when one 4 KiB page inside changes, keeping the other 511', () => {
    const { m, ept } = env;
    ept.map(g(0x200), h(0x400), RWX, 0x200000);
    expect(env.invalidations).toBe(0); // not present → present needs none
    ept.map(g(0x205), h(0x999), EPT.R);
    expect(env.invalidations).toBe(1);
    expect(ept.stats.splits).toBe(1);
    const [pde] = entryAt(m.memory, ept.root, 0x200000n, 2);
    expect(pde & 0xffn).toBe(7n); // now a table pointer
    for (let i = 0n; i < 512n; i++) {
      const leaf = decodeLeaf(m.memory.read64((pde & ADDR) + i * 8n));
      if (i === 5n) expect(leaf).toMatchObject({ rights: 1n, addr: 0x999000n, ps: 0n, memType: 6 });
      else expect(leaf).toMatchObject({ rights: 7n, addr: 0x400000n + i * 4096n, ps: 0n, memType: 6 });
    }
  });

  it('splits 1 GiB → 2 MiB → 4 KiB to unmap one page, and frees tables when coalescing back', () => {
    const { m, ept, frames } = env;
    const p2m = new P2m(m.core, 0x80000);
    attachToP2m(ept, p2m);
    ept.map(g(0x40000), h(0x40000), RWX, 0x40000000);
    ept.unmap(g(0x40201));
    expect(ept.stats.splits).toBe(2);
    expect(ept.lookup(g(0x40201))).toBeNull();
    expect(ept.lookup(g(0x40200))).toMatchObject({ size: 4096, hfn: 0x40200 });
    expect(ept.lookup(g(0x40400))).toMatchObject({ size: 0x200000, hfn: 0x40400 });
    expect(ept.lookup(g(0x7ffff))).toMatchObject({ size: 0x200000, hfn: 0x7ffff });
    const tables = ept.stats.tables, hvUsed = frames.usedBy(HV_OWNER);
    expect(tables).toBe(4);
    // Back gfns 0x600..0x7ff contiguously in the p2m (a 2 MiB run at an aligned hfn) and coalesce.
    for (let i = 0; i < 512; i++) p2m.map(g(0x600 + i), h(0x1400 + i));
    expect(ept.stats.tables).toBe(tables + 2); // a PD for the first GiB, a PT for the 4 KiB entries
    expect(ept.coalesce(p2m, [0x200000])).toBe(1);
    expect(ept.lookup(g(0x6ab))).toMatchObject({ size: 0x200000, hfn: 0x14ab, level: 2 });
    expect(ept.stats.tables).toBe(tables + 1); // the PT went back to the hypervisor pool
    expect(frames.usedBy(HV_OWNER)).toBe(hvUsed + 1);
  });

  it('follows the p2m: write-protect and shared clear W; unmap clears the entry; one invalidation each', () => {
    const { m, ept } = env;
    const p2m = new P2m(m.core, 1024);
    attachToP2m(ept, p2m);
    p2m.map(g(7), h(0x70));
    expect(decodeLeaf(ept.lookup(g(7))!.entry).rights).toBe(7n);
    expect(env.invalidations).toBe(0);
    p2m.setState(g(7), P2M.WRITE_PROTECTED);
    expect(decodeLeaf(ept.lookup(g(7))!.entry).rights).toBe(5n);
    expect(env.invalidations).toBe(1);
    p2m.setState(g(7), P2M.PAGE_TABLE); // no EPT change, no invalidation
    expect(env.invalidations).toBe(1);
    p2m.setState(g(7), P2M.SHARED, P2M.WRITE_PROTECTED);
    expect(decodeLeaf(ept.lookup(g(7))!.entry).rights).toBe(5n);
    p2m.unmap(g(7));
    expect(ept.lookup(g(7))).toBeNull();
    expect(m.memory.read64(entryAt(m.memory, ept.root, 7n << 12n, 1)[1])).toBe(0n);
    expect(env.invalidations).toBe(2);
  });

  it('frees every table on destroy', () => {
    const { ept, frames } = env;
    for (let i = 0; i < 2000; i += 37) ept.map(g(i * 300), h(i));
    expect(frames.usedBy(HV_OWNER)).toBe(ept.stats.tables);
    ept.destroy();
    expect(frames.usedBy(HV_OWNER)).toBe(0);
  });
});

describe('the core walks these tables', () => {
  function nestedCpu(): Cpu {
    const cpu = env.m.createCpu({ tlb: false, psc: false });
    cpu.setRegisters({ cr0: 0n });        // guest paging off: linear = gpa, then EPT only
    cpu.setVmcs({ mode: 'nested', eptp: env.ept.eptp, vpid: 1 });
    return cpu;
  }

  it('translates through 4 KiB and 2 MiB leaves and sets EPT A/D', () => {
    const { ept } = env;
    ept.map(g(0x10), h(0x20));
    ept.map(g(0x400), h(0x600), RWX, 0x200000);
    const cpu = nestedCpu();
    expect(cpu.translate(0x10123n)).toEqual({ ok: true, pa: 0x20123n, pageSize: 4096 });
    expect(cpu.translate(0x4abcden, { write: true })).toMatchObject({ ok: true, pa: 0x6abcden });
    expect(decodeLeaf(ept.lookup(g(0x10))!.entry)).toMatchObject({ a: 1n, d: 0n });
    expect(decodeLeaf(ept.lookup(g(0x4ab))!.entry)).toMatchObject({ a: 1n, d: 1n });
  });

  it('raises EPT violations for absent and read-only entries', () => {
    const { ept } = env;
    ept.map(g(0x10), h(0x20), EPT.R | EPT.X);
    const cpu = nestedCpu();
    expect(cpu.translate(0x11000n)).toMatchObject({ ok: false, fault: 'EPT_VIOLATION', gpa: 0x11000n });
    expect(cpu.translate(0x10000n, { write: true })).toMatchObject({ ok: false, fault: 'EPT_VIOLATION', gpa: 0x10000n });
  });
});

describe('EPT against a model', () => {
  // Random 4 KiB / 2 MiB maps, unmaps and write-protects over 4 MiB of gpa; afterwards
  // Ept.lookup and the core (a vCPU with TLBs, warmed between operations, so a missing
  // invalidation would show as a stale translation) both agree with a Map gfn → (hfn, rights).
  const N = 1024;
  const rightsArb = fc.constantFrom(EPT.R, EPT.R | EPT.X, EPT.R | EPT.W, RWX);
  const op = fc.oneof(
    fc.record({ k: fc.constant('map4k' as const), gfn: fc.nat(N - 1), hfn: fc.nat(4095), rights: rightsArb }),
    fc.record({ k: fc.constant('map2m' as const), slot: fc.nat(1), hslot: fc.nat(7), rights: rightsArb }),
    fc.record({ k: fc.constant('unmap' as const), gfn: fc.nat(N - 1) }),
  );

  it('translates every gfn as the model says, with no stale TLB entries', () => {
    assertProperty(fc.property(fc.array(op, { maxLength: 40 }), fc.array(fc.nat(N - 1), { minLength: 8, maxLength: 8 }), (ops, probes) => {
      const cpu = env.m.createCpu();
      const ept = new Ept(env.m.memory, { alloc: () => env.frames.alloc(HV_OWNER), free: (x) => env.frames.free(x, HV_OWNER) },
        { onInvalidate: () => cpu.invept(1) });
      cpu.setRegisters({ cr0: 0n });
      cpu.setVmcs({ mode: 'nested', eptp: ept.eptp, vpid: 1 });
      const model = new Map<number, { hfn: number; rights: bigint }>();
      const warm = () => { for (const p of probes) cpu.translate(BigInt(p) << 12n); };
      for (const o of ops) {
        warm();
        if (o.k === 'map4k') { ept.map(g(o.gfn), h(o.hfn), o.rights); model.set(o.gfn, { hfn: o.hfn, rights: o.rights }); }
        else if (o.k === 'map2m') {
          ept.map(g(o.slot * 512), h(o.hslot * 512), o.rights, 0x200000);
          for (let i = 0; i < 512; i++) model.set(o.slot * 512 + i, { hfn: o.hslot * 512 + i, rights: o.rights });
        } else { ept.unmap(g(o.gfn)); model.delete(o.gfn); }
      }
      for (let gfn = 0; gfn < N; gfn++) {
        const want = model.get(gfn);
        const got = ept.lookup(g(gfn));
        expect(got === null ? null : { hfn: got.hfn, rights: got.rights }).toEqual(want ?? null);
      }
      for (const p of [...probes, ...model.keys()].slice(0, 64)) {
        const want = model.get(p);
        const t = cpu.translate(BigInt(p) << 12n);
        if (want) expect(t).toMatchObject({ ok: true, pa: BigInt(want.hfn) << 12n });
        else expect(t).toMatchObject({ ok: false, fault: 'EPT_VIOLATION' });
        const w = cpu.translate(BigInt(p) << 12n, { write: true });
        expect(w.ok).toBe(want !== undefined && (want.rights & EPT.W) !== 0n);
      }
      ept.destroy();
      expect(env.frames.usedBy(HV_OWNER)).toBe(1); // only the shared env's root remains
    }), { numRuns: 100, seed: 0xe97_0001 });
  });

  it('builds 5-level tables the core walks with a 5-level EPTP', () => {
    const ept5 = new Ept(env.m.memory, { alloc: () => env.frames.alloc(HV_OWNER), free: (x) => env.frames.free(x, HV_OWNER) },
      { levels: 5 });
    expect(decodeEptp(ept5.eptp).levels).toBe(5);
    ept5.map(g(0x1_2345_6789), h(0x42));          // a gpa above 2^48
    expect(ept5.stats.tables).toBe(5);
    const cpu = env.m.createCpu({ tlb: false, psc: false });
    cpu.setRegisters({ cr0: 0n });
    cpu.setVmcs({ mode: 'nested', eptp: ept5.eptp, vpid: 1 });
    expect(ept5.lookup(g(0x1_2345_6789))).toMatchObject({ hfn: 0x42, level: 1 });
    ept5.map(g(0x10), h(0x43));                   // guest paging off: the core walks gpa < 4 GiB
    expect(cpu.translate(0x10123n)).toEqual({ ok: true, pa: 0x43123n, pageSize: 4096 });
  });
});
