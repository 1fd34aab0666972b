// The host API and its handling of bad input: Machine, PhysicalMemory, createCpu options,
// registers and the #GP checks of the control-register writes.

import { describe, it, expect } from 'vitest';
import { Machine, MAX_MEMORY_BYTES, CR0, CR4, EFER, RFLAGS, CR3_NOFLUSH, type CpuOptions } from '../src/index.js';
import { env, MiB } from './helpers/tables.js';

const GP = { ok: false, fault: 'GP' };

describe('Machine.create', () => {
  it.each([0, 4095, 4097, -4096, 1.5, NaN, Infinity, MAX_MEMORY_BYTES + 4096, 2 ** 32, undefined, 'lots'])(
    'rejects memoryBytes %s with a RangeError naming the option', async (bytes) => {
      await expect(Machine.create({ memoryBytes: bytes as number })).rejects.toThrow(RangeError);
      await expect(Machine.create({ memoryBytes: bytes as number })).rejects.toThrow(/memoryBytes/);
    });

  it('accepts a bigint size and starts with zeroed memory', async () => {
    const m = await Machine.create({ memoryBytes: 65536n });
    expect(m.memory.size).toBe(65536);
    expect(m.memory.read(0n, 65536).every((b) => b === 0)).toBe(true);
  });

  // Allocates 3.5 GiB of host memory (the largest machine a 32-bit Wasm memory allows).
  it('a 3.5 GiB machine can read and write its last page', async () => {
    const m = await Machine.create({ memoryBytes: 3.5 * 2 ** 30 });
    const size = BigInt(m.memory.size);
    expect(size).toBe(3584n * BigInt(MiB));
    m.memory.write64(size - 8n, 0x0123_4567_89ab_cdefn);
    expect(m.memory.read64(size - 8n)).toBe(0x0123_4567_89ab_cdefn);
    m.memory.write(size - 4096n, new Uint8Array([1, 2, 3]));
    expect(Array.from(m.memory.read(size - 4096n, 3))).toEqual([1, 2, 3]);
    expect(() => m.memory.write64(size - 4n, 1n)).toThrow(RangeError);
    const cpu = m.createCpu(); // paging off: linear = physical
    cpu.setRegisters({ cr0: CR0.PE });
    const b = m.createBatch(2).load(size - 8n).store(size - 16n, 7n);
    expect(cpu.execute(b)).toEqual({ completed: 2, exit: { reason: 'end' } });
    expect(b.value(0)).toBe(0x0123_4567_89ab_cdefn);
    expect(m.memory.read64(size - 16n)).toBe(7n);
  });
});

describe('PhysicalMemory', () => {
  it('scalar accesses are bounds-checked and a rejected write leaves memory intact', async () => {
    const m = await Machine.create({ memoryBytes: 8192 });
    const mem = m.memory;
    mem.write64(8184n, 0x1122_3344_5566_7788n);
    expect(mem.read64(8184n)).toBe(0x1122_3344_5566_7788n);
    for (const pa of [8185n, 8192n, -1n, 2n ** 64n]) {
      expect(() => mem.write64(pa, -1n)).toThrow(RangeError);
      expect(() => mem.read64(pa)).toThrow(RangeError);
    }
    expect(() => mem.write64(8188n, 0n)).toThrow(/outside host memory/);
    expect(mem.read64(8184n)).toBe(0x1122_3344_5566_7788n);
    expect(() => mem.write32(8190n, 0)).toThrow(RangeError);
    expect(() => mem.write8(8192n, 0)).toThrow(RangeError);
    mem.write8(8191n, 0x1ff);
    expect(mem.read8(8191n)).toBe(0xff);
    mem.write32(0n, -1);
    expect(mem.read32(0n)).toBe(0xffff_ffff);
    mem.write64(16n, -2n); // stored as the 64-bit two's complement
    expect(mem.read64(16n)).toBe(0xffff_ffff_ffff_fffen);
  });

  it('byte ranges: read returns a copy; a write past the end writes nothing', async () => {
    const m = await Machine.create({ memoryBytes: 8192 });
    const mem = m.memory;
    mem.write(4094n, new Uint8Array([9, 8, 7, 6]));
    const got = mem.read(4093n, 6);
    expect(Array.from(got)).toEqual([0, 9, 8, 7, 6, 0]);
    got[1] = 0;
    expect(mem.read8(4094n)).toBe(9);
    expect(() => mem.write(8190n, new Uint8Array([1, 2, 3]))).toThrow(RangeError);
    expect(Array.from(mem.read(8188n, 4))).toEqual([0, 0, 0, 0]);
    expect(() => mem.read(8190n, 3)).toThrow(RangeError);
  });

  it('fill and copy, with memmove semantics for overlaps', async () => {
    const m = await Machine.create({ memoryBytes: 8192 });
    const mem = m.memory;
    mem.fill(100n, 0x1ab, 8);
    expect(Array.from(mem.read(99n, 10))).toEqual([0, ...Array(8).fill(0xab), 0]);
    mem.write(0n, new Uint8Array([1, 2, 3, 4, 5, 6]));
    mem.copy(2n, 0n, 4); // forward overlap
    expect(Array.from(mem.read(0n, 6))).toEqual([1, 2, 1, 2, 3, 4]);
    mem.copy(0n, 1n, 5); // backward overlap
    expect(Array.from(mem.read(0n, 6))).toEqual([2, 1, 2, 3, 4, 4]);
    expect(() => mem.fill(8000n, 0xff, 193)).toThrow(RangeError);
    expect(() => mem.copy(8000n, 0n, 193)).toThrow(RangeError);
    expect(() => mem.copy(0n, 8000n, 193)).toThrow(RangeError);
    expect(mem.read(7990n, 202).every((b) => b === 0)).toBe(true);
    expect(Array.from(mem.read(0n, 6))).toEqual([2, 1, 2, 3, 4, 4]);
  });
});

describe('createCpu options', () => {
  const bad: [string, CpuOptions][] = [
    ['3 sets', { tlb: { l1d4k: { entries: 12, ways: 4 } } }],
    ['fractional sets', { tlb: { l2: { entries: 6, ways: 4 } } }],
    ['0 ways', { tlb: { pde: { entries: 4, ways: 0 } } }],
    ['fractional entries', { tlb: { l1i4k: { entries: 4.5, ways: 1 } } }],
    ['unknown cache', { tlb: { l3: { entries: 4, ways: 4 } } as CpuOptions['tlb'] }],
    ['too big', { tlb: { l2: { entries: 2 ** 21, ways: 1 } } }],
    ['maxPhysAddr 31', { maxPhysAddr: 31 }],
    ['maxPhysAddr 53', { maxPhysAddr: 53 }],
    ['maxPhysAddr 40.5', { maxPhysAddr: 40.5 }],
    ['negative latency', { latencies: { walkRef: -1 } }],
  ];
  it.each(bad)('rejects %s', async (_name, opts) => {
    const m = await Machine.create({ memoryBytes: 65536 });
    expect(() => m.createCpu(opts)).toThrow(RangeError);
  });

  it('accepts disabled caches, MAXPHYADDR 36 and 52, and custom latencies', async () => {
    const { m, t } = await env();
    t.map(0x1000n, 0x40_0000n);
    for (const opts of [{ tlb: false as const, psc: false }, { tlb: { l1d4k: { entries: 0, ways: 0 }, l2: false as const } },
      { maxPhysAddr: 36 }, { maxPhysAddr: 52, latencies: { walkRef: 100 } }]) {
      const cpu = m.createCpu(opts);
      cpu.setRegisters({ cr0: CR0.PE | CR0.PG, cr3: t.root, cr4: CR4.PAE, efer: EFER.LME });
      expect(cpu.translate(0x1000n)).toMatchObject({ ok: true, pa: 0x40_0000n });
      expect(cpu.translate(0x1000n)).toMatchObject({ ok: true, pa: 0x40_0000n });
    }
    const noTlb = m.createCpu({ tlb: false, psc: false });
    noTlb.setRegisters({ cr0: CR0.PE | CR0.PG, cr3: t.root, cr4: CR4.PAE, efer: EFER.LME });
    noTlb.translate(0x1000n);
    noTlb.translate(0x1000n);
    expect(noTlb.counters()).toMatchObject({ walks: 2, walkRefs: 8, l1Hit4k: 0, l2Hit4k: 0 });
    const slow = m.createCpu({ latencies: { walkRef: 100 } });
    expect(slow.latencies().walkRef).toBe(100);
  });
});

describe('registers and control-register writes', () => {
  it('round-trip through getRegisters, with EFER.LMA derived from LME, PG and PAE', async () => {
    const m = await Machine.create({ memoryBytes: 65536 });
    const cpu = m.createCpu();
    const regs = { cr0: CR0.PE | CR0.PG | CR0.WP, cr3: 0x5000n, cr4: CR4.PAE | CR4.PGE | CR4.SMEP,
      efer: EFER.LME | EFER.NXE, rflags: RFLAGS.AC | 2n, pkru: 0x5555_0000, cpl: 3 };
    cpu.setRegisters(regs);
    expect(cpu.getRegisters()).toMatchObject({ ...regs, pkru: 0x5555_0000, efer: EFER.LME | EFER.NXE | EFER.LMA });
    cpu.setRegisters({ cr0: CR0.PE });
    expect(cpu.getRegisters().efer).toBe(EFER.LME | EFER.NXE);
    cpu.setRegisters({ efer: EFER.LMA }); // LMA is not loadable
    expect(cpu.getRegisters().efer).toBe(0n);
    cpu.setRegisters({ cr0: CR0.PE | CR0.PG, cr4: CR4.PAE, efer: EFER.LME });
    expect(cpu.getRegisters().efer).toBe(EFER.LME | EFER.LMA);
    cpu.setRegisters({ cr4: 0n });
    expect(cpu.getRegisters().efer).toBe(EFER.LME);
  });

  it('MOV to CR3 with bits at or above MAXPHYADDR is #GP and changes nothing', async () => {
    const { cpu, t } = await env({ cpu: { maxPhysAddr: 40 } });
    t.map(0x1000n, 0x40_0000n);
    for (const bit of [40n, 51n, 52n, 62n]) {
      expect(cpu.writeCr3(t.root | (1n << bit)), `bit ${bit}`).toEqual(GP);
      expect(cpu.getRegisters().cr3).toBe(t.root);
    }
    expect(cpu.translate(0x1000n)).toMatchObject({ ok: true, pa: 0x40_0000n });
    expect(cpu.writeCr3((1n << 39n) | 0x18n)).toEqual({ ok: true }); // PWT|PCD are not reserved
    expect(cpu.getRegisters().cr3).toBe((1n << 39n) | 0x18n);
    const d = await env();
    expect(d.cpu.writeCr3(d.t.root | (1n << 52n))).toEqual(GP);
  });

  it('MOV to CR3 with bit 63 set while CR4.PCIDE=0 is #GP (bit 63 is then a reserved bit)', async () => {
    const { cpu, t } = await env();
    expect(cpu.writeCr3(t.root | CR3_NOFLUSH)).toEqual(GP);
  });

  it('MOV to CR3 with PCIDE and bit 63 set loads CR3 without bit 63', async () => {
    const { cpu, t } = await env({ cr4: CR4.PCIDE });
    expect(cpu.writeCr3(t.root | 5n | CR3_NOFLUSH)).toEqual({ ok: true });
    expect(cpu.getRegisters().cr3).toBe(t.root | 5n);
  });

  it('MOV to CR4 in long mode: toggling LA57 or clearing PAE is #GP', async () => {
    const a = await env();
    const cr4 = a.cpu.getRegisters().cr4;
    expect(a.cpu.writeCr4(cr4 | CR4.LA57)).toEqual(GP);
    expect(a.cpu.writeCr4(cr4 & ~CR4.PAE)).toEqual(GP);
    expect(a.cpu.getRegisters().cr4).toBe(cr4);
    a.t.map(0x1000n, 0x40_0000n);
    expect(a.cpu.translate(0x1000n)).toMatchObject({ ok: true, pa: 0x40_0000n }); // still 4-level
    const b = await env({ levels: 5 });
    const cr4b = b.cpu.getRegisters().cr4;
    expect(b.cpu.writeCr4(cr4b & ~CR4.LA57)).toEqual(GP);
    expect(b.cpu.getRegisters().cr4).toBe(cr4b);
    // Outside long mode LA57 may change.
    b.cpu.setRegisters({ cr0: CR0.PE });
    expect(b.cpu.writeCr4(cr4b & ~CR4.LA57)).toEqual({ ok: true });
  });

  it('legacy 32-bit and PAE paging are reported as not modeled', async () => {
    const { m, cpu } = await env();
    cpu.setRegisters({ efer: 0n }); // PG=1, PAE=1, LME=0: PAE paging
    expect(() => cpu.translate(0x1000n)).toThrow(/not modeled/);
    const b = m.createBatch(1).load(0x1000);
    expect(cpu.execute(b)).toEqual({ completed: 0, exit: { reason: 'unsupported', index: 0 } });
  });

  it('MOV to CR4 setting PCIDE needs CR3[11:0] = 0', async () => {
    const { cpu, t } = await env();
    cpu.setRegisters({ cr3: t.root | 3n });
    const cr4 = cpu.getRegisters().cr4;
    expect(cpu.writeCr4(cr4 | CR4.PCIDE)).toEqual(GP);
    cpu.setRegisters({ cr3: t.root });
    expect(cpu.writeCr4(cr4 | CR4.PCIDE)).toEqual({ ok: true });
    expect(cpu.getRegisters().cr4 & CR4.PCIDE).toBe(CR4.PCIDE);
  });
});

