// The batched access engine: Machine.createBatch, AccessBatch ops, Cpu.execute.

import { describe, it, expect } from 'vitest';
import { CR4, PTE, PFEC, RFLAGS, type AccessBatch, type BatchExit, type Cpu, type Machine } from '../../src/index.js';
import { env, paOf, PWU, MiB, type Env, type EnvOptions } from '../helpers/tables.js';

const VA = 0x7000_0000n;
const FRAME = 0x40_0000n;
const { P, W, U } = PFEC;

async function mapped(o: EnvOptions = {}, flags = PWU): Promise<Env & { b: AccessBatch }> {
  const e = await env(o);
  e.t.map(VA, FRAME, { flags });
  return { ...e, b: e.m.createBatch(64) };
}

const bytes = (m: Machine, pa: bigint, n: number) => Array.from(m.memory.read(pa, n));

describe('loads and stores', () => {
  it('sizes 1..8 round-trip little-endian through physical memory', async () => {
    const { m, cpu, b } = await mapped();
    m.memory.fill(FRAME, 0xee, 4096);
    const value = 0xf1e2_d3c4_b5a6_9788n;
    for (let n = 1; n <= 8; n++) b.store(VA + BigInt(n * 32 + n), value, n); // odd alignments
    for (let n = 1; n <= 8; n++) b.load(VA + BigInt(n * 32 + n), n);
    b.load(VA + 33n, 8).fetch(VA + 34n, 2);
    expect(cpu.execute(b)).toEqual({ completed: 18, exit: { reason: 'end' } });
    const le = [0x88, 0x97, 0xa6, 0xb5, 0xc4, 0xd3, 0xe2, 0xf1];
    for (let n = 1; n <= 8; n++) {
      const pa = FRAME + BigInt(n * 32 + n);
      expect(bytes(m, pa - 1n, n + 2), `size ${n}`).toEqual([0xee, ...le.slice(0, n), 0xee]);
      expect(b.value(8 + n - 1), `load size ${n}`).toBe(value & ((1n << BigInt(8 * n)) - 1n));
    }
    expect(b.value(16)).toBe(0xeeee_eeee_eeee_ee88n); // zero bytes around the 1-byte store
    expect(b.value(17)).toBe(0xeeeen);
    expect(cpu.counters()).toMatchObject({ loads: 9, stores: 8, fetches: 1, accesses: 18 });
  });

  it('an access crossing into another present page splits across both frames', async () => {
    const { m, t, cpu, b } = await mapped();
    t.map(VA + 0x1000n, 0x80_0000n);
    b.store(VA + 0xffdn, 0x0807_0605_0403_0201n).load(VA + 0xffdn).translate(VA + 0xffdn);
    expect(cpu.execute(b).exit).toEqual({ reason: 'end' });
    expect(bytes(m, FRAME + 0xffdn, 3)).toEqual([1, 2, 3]);
    expect(bytes(m, 0x80_0000n, 5)).toEqual([4, 5, 6, 7, 8]);
    expect(b.value(1)).toBe(0x0807_0605_0403_0201n);
    expect(b.value(2)).toBe(FRAME + 0xffdn);
    expect(cpu.counters().splitAccesses).toBe(2);
  });

  it('a crossing whose second page is not present faults on its first byte and writes nothing', async () => {
    const { m, cpu, b } = await mapped();
    m.memory.fill(FRAME, 0xee, 4096);
    b.store(VA + 0xffcn, 0x1122_3344_5566_7788n, 8);
    expect(cpu.execute(b)).toEqual({ completed: 0, exit: { reason: 'PF', index: 0, errorCode: W, cr2: VA + 0x1000n } });
    expect(bytes(m, FRAME + 0xffcn, 4)).toEqual([0xee, 0xee, 0xee, 0xee]);
    b.clear().load(VA + 0xfffn, 2);
    expect(cpu.execute(b).exit).toEqual({ reason: 'PF', index: 0, errorCode: 0, cr2: VA + 0x1000n });
  });

  it('stops at the first fault and resumes from its index', async () => {
    const { m, t, cpu, b } = await mapped();
    const gone = VA + 0x5000n;
    b.store(VA, 1n).store(VA + 8n, 2n).load(gone + 0x10n).store(VA + 16n, 3n).load(VA + 8n);
    const r = cpu.execute(b);
    expect(r).toEqual({ completed: 2, exit: { reason: 'PF', index: 2, errorCode: 0, cr2: gone + 0x10n } });
    expect([m.memory.read64(FRAME), m.memory.read64(FRAME + 8n), m.memory.read64(FRAME + 16n)]).toEqual([1n, 2n, 0n]);
    t.map(gone, 0x80_0000n);
    m.memory.write64(0x80_0010n, 0xabcdn);
    expect(cpu.execute(b, 2)).toEqual({ completed: 3, exit: { reason: 'end' } });
    expect(b.value(2)).toBe(0xabcdn);
    expect(b.value(4)).toBe(2n);
    expect(m.memory.read64(FRAME + 16n)).toBe(3n);
    expect(cpu.execute(b, 1, 1)).toEqual({ completed: 1, exit: { reason: 'end' } });
    expect(() => cpu.execute(b, 4, 2)).toThrow(RangeError);
  });

  it('a non-canonical address exits with GP', async () => {
    const { cpu, b } = await mapped();
    b.load(VA).load(0x8000_0000_0000_0000n).load(VA);
    expect(cpu.execute(b)).toEqual({ completed: 1, exit: { reason: 'GP', index: 1, va: 0x8000_0000_0000_0000n } });
    expect(cpu.counters().gp).toBe(1);
  });

  it('a physical address outside memory exits with MMIO and moves no data', async () => {
    const { m, t, cpu, b } = await mapped();
    const mmio = 0x1_0000_0000n;
    t.map(VA + 0x1000n, mmio);
    b.store(VA + 0x1000n + 0x40n, 5n, 4);
    expect(cpu.execute(b)).toEqual({ completed: 0, exit: { reason: 'MMIO', index: 0, pa: mmio + 0x40n } });
    m.memory.fill(FRAME, 0, 4096);
    b.clear().store(VA + 0xffen, 0xffffn, 4); // crosses from RAM into the MMIO page
    expect(cpu.execute(b).exit).toEqual({ reason: 'MMIO', index: 0, pa: mmio });
    expect(bytes(m, FRAME + 0xffen, 2)).toEqual([0, 0]);
    const end = BigInt(m.memory.size); // the last page of memory is fine, the next is not
    t.map(VA + 0x2000n, end - 0x1000n);
    t.map(VA + 0x3000n, end);
    b.clear().load(VA + 0x2ff8n).load(VA + 0x2ffcn);
    expect(cpu.execute(b).exit).toEqual({ reason: 'MMIO', index: 1, pa: end });
    expect(cpu.counters().mmio).toBe(3);
  });
});

describe('access kinds and options', () => {
  it('user ops and CPL=3 fault on supervisor pages; supervisor ops do not', async () => {
    const { cpu, b } = await mapped({}, PTE.P | PTE.W);
    b.load(VA).store(VA, 1n).load(VA, 8, { user: true });
    expect(cpu.execute(b)).toEqual({ completed: 2, exit: { reason: 'PF', index: 2, errorCode: P | U, cr2: VA } });
    cpu.setRegisters({ cpl: 3 });
    b.clear().store(VA + 8n, 1n);
    expect(cpu.execute(b).exit).toEqual({ reason: 'PF', index: 0, errorCode: P | W | U, cr2: VA + 8n });
  });

  it('implicit ops are supervisor accesses that SMAP never exempts', async () => {
    const { cpu, b } = await mapped({ cr4: CR4.SMAP, rflags: RFLAGS.AC, cpl: 3 });
    b.load(VA).load(VA, 8, { implicit: true });
    expect(cpu.execute(b)).toEqual({ completed: 1, exit: { reason: 'PF', index: 1, errorCode: P, cr2: VA } });
    cpu.setRegisters({ cpl: 0 });
    b.clear().store(VA, 1n).store(VA, 2n, 8, { implicit: true });
    expect(cpu.execute(b)).toEqual({ completed: 1, exit: { reason: 'PF', index: 1, errorCode: P | W, cr2: VA } });
  });

  it('fetch ops honour XD; translate ops return the physical address', async () => {
    const { cpu, t, b } = await mapped();
    t.map(VA + 0x1000n, 0x80_0000n, { flags: PWU | PTE.XD });
    b.translate(VA + 0x123n).translate(VA + 0x1456n).fetch(VA + 0x1000n);
    expect(cpu.execute(b)).toEqual({ completed: 2, exit: { reason: 'PF', index: 2, errorCode: P | PFEC.ID, cr2: VA + 0x1000n } });
    expect([b.value(0), b.value(1)]).toEqual([FRAME + 0x123n, 0x80_0456n]);
  });
});

// --- Random op streams: the batch engine against Cpu.translate per access ----------

function prng(seed: number) {
  let s = seed >>> 0;
  const next = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let x = Math.imul(s ^ (s >>> 15), 1 | s);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 2 ** 32;
  };
  return { next, int: (n: number) => Math.floor(next() * n), chance: (p: number) => next() < p,
    u64: () => (BigInt(Math.floor(next() * 2 ** 32)) << 32n) | BigInt(Math.floor(next() * 2 ** 32)) };
}

type Op = { kind: 'load' | 'store' | 'fetch' | 'translate'; va: bigint; size: number; value: bigint; user: boolean; implicit: boolean };
const KINDS = ['load', 'store', 'fetch', 'translate'] as const;
const PAGES = 24;
// The last base's page 24 is the first non-canonical page.
const BASES = [0x7000_0000n, 0xffff_8000_0000_0000n, 0x0000_7fff_fffe_8000n];

async function world(seed: number): Promise<Env> {
  const r = prng(seed);
  const o: EnvOptions = {
    memoryBytes: 8 * MiB, cr4: (r.chance(0.3) ? CR4.SMAP : 0n) | (r.chance(0.3) ? CR4.SMEP : 0n) | CR4.PKE,
    rflags: r.chance(0.5) ? RFLAGS.AC : 0n, noWp: r.chance(0.3), pkru: r.int(16) << 4, // keys 0 and 1 unrestricted
  };
  const e = await env(o);
  for (const base of BASES) {
    for (let i = 0; i < PAGES; i++) {
      if (r.chance(0.1)) continue; // not present
      const frame = r.chance(0.05) ? 0x2_0000_0000n + BigInt(i) * 0x1000n : 0x40_0000n + BigInt(r.int(256)) * 0x1000n;
      let flags = PTE.P;
      if (r.chance(0.7)) flags |= PTE.W;
      if (r.chance(0.7)) flags |= PTE.U;
      if (r.chance(0.1)) flags |= PTE.XD;
      if (r.chance(0.3)) flags |= PTE.D;
      e.t.map(base + BigInt(i) * 0x1000n, frame, { flags, pkey: r.int(4) });
    }
  }
  for (let pa = 0x40_0000n; pa < 0x50_0000n; pa += 8n) e.m.memory.write64(pa, r.u64());
  return e;
}

function ops(seed: number, n: number): Op[] {
  const r = prng(seed ^ 0x5eed);
  const hot = [r.int(PAGES), r.int(PAGES), r.int(PAGES)];
  return Array.from({ length: n }, () => {
    const kind = KINDS[r.int(4)];
    const page = BigInt(r.chance(0.5) ? hot[r.int(hot.length)] : r.int(PAGES + 2));
    const off = BigInt(r.chance(0.3) ? 4096 - 1 - r.int(8) : r.int(4096));
    const va = r.chance(0.02) ? 0x0000_8000_0000_1000n + off : BASES[r.int(3)] + page * 0x1000n + off;
    const size = kind === 'translate' ? 1 : 1 + r.int(8);
    const implicit = r.chance(0.1);
    return { kind, va, size, value: r.u64(), user: !implicit && r.chance(0.2), implicit };
  });
}

/** What one op does on the reference vCPU: an exit, or the op's value. */
function reference(m: Machine, cpu: Cpu, op: Op, index: number): { exit?: BatchExit; value?: bigint } {
  const acc = { write: op.kind === 'store', fetch: op.kind === 'fetch', user: op.user, implicit: op.implicit };
  const n1 = Math.min(op.size, 4096 - Number(op.va & 0xfffn));
  const parts: [bigint, number][] = [];
  for (const [va, len] of [[op.va, n1], [(op.va | 0xfffn) + 1n, op.size - n1]] as const) {
    if (len === 0) continue;
    const t = cpu.translate(va, acc);
    if (!t.ok) {
      if (t.fault === 'GP') return { exit: { reason: 'GP', index, va: op.va } };
      if (t.fault !== 'PF') throw new Error(`native mode gave ${t.fault}`);
      return { exit: { reason: 'PF', index, errorCode: t.errorCode, cr2: t.cr2 } };
    }
    parts.push([t.pa, len]);
  }
  if (op.kind === 'translate') return { value: parts[0][0] };
  const bad = parts.find(([pa, len]) => pa + BigInt(len) > BigInt(m.memory.size));
  if (bad) return { exit: { reason: 'MMIO', index, pa: bad[0] } };
  let v = 0n, shift = 0n, k = 0;
  for (const [pa, len] of parts) {
    for (let i = 0; i < len; i++, k++, shift += 8n) {
      if (op.kind === 'store') m.memory.write8(pa + BigInt(i), Number((op.value >> shift) & 0xffn));
      else v |= BigInt(m.memory.read8(pa + BigInt(i))) << shift;
    }
  }
  return { value: op.kind === 'store' ? undefined : v };
}

describe('batch = Cpu.translate per access', () => {
  it.each(Array.from({ length: 12 }, (_, i) => i + 1))('random op stream, seed %i', async (seed) => {
    const stream = ops(seed, 400);
    const a = await world(seed), ref = await world(seed);
    const b = a.m.createBatch(stream.length);
    for (const op of stream) {
      const o = { user: op.user, implicit: op.implicit };
      if (op.kind === 'store') b.store(op.va, op.value, op.size, o);
      else if (op.kind === 'translate') b.translate(op.va, o);
      else b[op.kind](op.va, op.size, o);
    }
    const got: BatchExit[] = [], want: BatchExit[] = [];
    for (let start = 0; start < stream.length;) {
      const r = a.cpu.execute(b, start);
      if (r.exit.reason === 'end') break;
      expect(r.exit.index).toBe(start + r.completed);
      got.push(r.exit);
      start = r.exit.index + 1;
    }
    stream.forEach((op, i) => {
      const r = reference(ref.m, ref.cpu, op, i);
      if (r.exit) want.push(r.exit);
      else if (r.value !== undefined) expect(b.value(i), `op ${i} ${op.kind} 0x${op.va.toString(16)}`).toBe(r.value);
    });
    // A GP on the second half of a crossing access may name either address: compare kinds.
    const norm = (x: BatchExit) => (x.reason === 'GP' ? { reason: 'GP', index: x.index } : x);
    expect(got.map(norm)).toEqual(want.map(norm));
    expect(want.length).toBeGreaterThan(0);
    expect(Buffer.compare(a.m.memory.read(0n, a.m.memory.size), ref.m.memory.read(0n, ref.m.memory.size))).toBe(0);
  });
});

// A load reads what memory held before a later store to the same address, whichever path
// of the batch engine each op takes (native paging): the miss loop (assembly/miss.ts)
// with an L2 hit, a walk below a PSC hit or a bare walk (read ahead: a store ends the
// block), or the general path. (A miss loop that read a run of loads' data after the
// run's translations, tried for speed, had to finish them before each store.)
describe('loads and stores in order through the miss loops', () => {
  const noL1 = { l1i4k: false, l1i2m: false, l1d4k: false, l1d2m: false, l1d1g: false } as const;
  const configs = {
    'L2 hits (no L1 TLBs)': { tlb: noL1 },
    'walks below a PSC hit (no TLBs)': { tlb: false },
    'bare walks (no TLBs, no PSCs)': { tlb: false, psc: false },
    'default TLBs': {},
  } as const;
  for (const [name, cpuOptions] of Object.entries(configs)) {
    it(name, async () => {
      const { m, t, cpu } = await env({ cpu: cpuOptions, presetAD: true });
      const F0 = 0x40_0000n, F1 = 0x50_0000n;
      t.map(VA, F0);
      t.map(VA + 0x1000n, F1);
      m.memory.write64(F0, 0x1111n);
      m.memory.write64(F1 + 8n, 0x2222n);
      const b = m.createBatch(16);
      b.load(VA).load(VA + 0x1008n).store(VA, 0xaaaa_bbbb_ccccn).load(VA).load(VA, 1)
        .load(VA + 0x1008n, 4).store(VA + 0x1008n, 0x3333n).translate(VA + 0x1000n).load(VA + 0x1008n).load(VA, 4);
      expect(cpu.execute(b)).toEqual({ completed: 10, exit: { reason: 'end' } });
      expect([0, 1, 3, 4, 5, 8, 9].map((i) => b.value(i))).toEqual([0x1111n, 0x2222n, 0xaaaa_bbbb_ccccn, 0xccn, 0x2222n, 0x3333n, 0xbbbb_ccccn]);
      expect(b.value(7)).toBe(F1);
      expect(cpu.counters()).toMatchObject({ loads: 7, stores: 2, accesses: 9 });
    });
  }
});
