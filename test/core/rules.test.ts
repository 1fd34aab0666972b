// One hand-built test per translation rule (SDM Vol. 3A ch. 4; shared/reference
// x86-paging-ept-shadow.md §1). Page tables are written into guest memory entry by entry.
// Every rule runs over both walk paths of the core (assembly/walk.ts): tables built with
// A = D = 0 take the careful walk (it must set them); tables built with A (and the
// leaf's D) preset take the quick walk, which decides faults and rights on its own.

import { describe, it, expect } from 'vitest';
import { CR0, CR4, EFER, PTE, PFEC, RFLAGS, PAGE_4K, PAGE_2M, PAGE_1G, type Translation, type Cpu } from '../../src/index.js';
import { env as tablesEnv, paOf, PWU, type EnvOptions } from '../helpers/tables.js';

const { P, W, U, RSVD, ID, PK } = PFEC;
const VA = 0x0000_7f12_3456_7000n;
const FRAME = 0x40_0000n;

/** The error code of a #PF, failing the test if the translation did not fault that way. */
function pf(r: Translation, cr2?: bigint): number {
  expect(r.ok).toBe(false);
  if (r.ok || r.fault !== 'PF') throw new Error(`expected #PF, got ${JSON.stringify(r)}`);
  if (cr2 !== undefined) expect(r.cr2).toBe(cr2);
  return r.errorCode;
}

const WALKS = [
  { walk: 'careful walk (A/D clear)', presetAD: false },
  { walk: 'quick walk (A/D preset)', presetAD: true },
];

describe.each(WALKS)('$walk', ({ presetAD }) => {
  /** A machine whose Tables preset A/D or not, per the walk path under test. */
  const env = (o: EnvOptions = {}) => tablesEnv({ presetAD, ...o });

  /** A fresh vCPU with VA mapped (4 KiB) to FRAME. */
  async function mapped(o: EnvOptions = {}, flags = PWU, pkey = 0) {
    const e = await env(o);
    e.t.map(VA, FRAME, { flags, pkey });
    return e;
  }

  const fetch = { fetch: true }, write = { write: true }, user = { user: true };

  describe('walks and page sizes', () => {
    it('4-level walk of a 4 KiB page, both canonical halves', async () => {
      const { cpu, t, m } = await mapped();
      t.map(0xffff_8000_0020_3000n, 0x50_0000n);
      expect(cpu.translate(VA + 0x123n)).toEqual({ ok: true, pa: FRAME + 0x123n, pageSize: PAGE_4K });
      expect(cpu.translate(0xffff_8000_0020_3fffn)).toEqual({ ok: true, pa: 0x50_0fffn, pageSize: PAGE_4K });
      expect(cpu.counters().walkRefs).toBe(8);
      // Index 256 of the PML4 serves the upper half.
      expect(m.memory.read64(t.root + 256n * 8n) & PTE.P).toBe(PTE.P);
    });

    it('5-level walk uses LA[56:48] to index the PML5', async () => {
      const { cpu, t, m } = await env({ levels: 5 });
      const va = 0x00ab_cdef_1234_5000n;
      const path = t.map(va, FRAME);
      expect(path).toHaveLength(5);
      expect(path[0]).toBe(t.root + 0xabn * 8n);
      expect(paOf(cpu, va + 0xabcn)).toBe(FRAME + 0xabcn);
      expect(cpu.counters().walkRefs).toBe(5);
      expect(m.memory.read64(path[0]) & PTE.A).toBe(PTE.A);
    });

    it('2 MiB page: PDE with PS, offset LA[20:0]', async () => {
      const { cpu, t } = await env();
      t.map(0x4000_0000n, 0x60_0000n, { size: PAGE_2M });
      expect(cpu.translate(0x4001_2345n)).toEqual({ ok: true, pa: 0x61_2345n, pageSize: PAGE_2M });
      expect(cpu.counters().walkRefs).toBe(3);
    });

    it('1 GiB page: PDPTE with PS, offset LA[29:0]', async () => {
      const { cpu, t } = await env();
      t.map(0x8000_0000n, 0x1_4000_0000n, { size: PAGE_1G });
      expect(cpu.translate(0xb234_5678n)).toEqual({ ok: true, pa: 0x1_7234_5678n, pageSize: PAGE_1G });
      expect(cpu.counters().walkRefs).toBe(2);
    });

    it('paging off (CR0.PG=0) translates to the same address without a walk', async () => {
      const { cpu, m } = await env();
      cpu.setRegisters({ cr0: CR0.PE, efer: EFER.LME });
      expect(cpu.getRegisters().efer & EFER.LMA).toBe(0n);
      expect(cpu.translate(0x0012_3456n, write)).toEqual({ ok: true, pa: 0x0012_3456n, pageSize: PAGE_4K });
      expect(cpu.translate(0xfee0_0000n)).toMatchObject({ ok: true, pa: 0xfee0_0000n });
      expect(cpu.counters().walks).toBe(0);
      expect(m.memory.read64(0x10_0000n)).toBe(0n); // the (empty) PML4 was not touched
    });
  });

  describe('canonical addresses', () => {
    it('4-level: bits 63:47 must be equal, else #GP (not #PF)', async () => {
      const { cpu } = await env();
      for (const va of [0x0000_8000_0000_0000n, 0xffff_7fff_ffff_ffffn, 0x8000_0000_0000_0000n, 0x00ff_0000_0000_0000n]) {
        expect(cpu.translate(va)).toEqual({ ok: false, fault: 'GP' });
      }
      // The last canonical addresses on each side are unmapped: #PF, not #GP.
      expect(pf(cpu.translate(0x0000_7fff_ffff_ffffn), 0x0000_7fff_ffff_ffffn)).toBe(0);
      expect(pf(cpu.translate(0xffff_8000_0000_0000n), 0xffff_8000_0000_0000n)).toBe(0);
      expect(cpu.counters().gp).toBe(4);
    });

    it('5-level: bits 63:56 must be equal', async () => {
      const { cpu } = await env({ levels: 5 });
      for (const va of [0x0100_0000_0000_0000n, 0xfeff_ffff_ffff_ffffn, 0x7fff_0000_0000_0000n]) {
        expect(cpu.translate(va)).toEqual({ ok: false, fault: 'GP' });
      }
      for (const va of [0x0000_8000_0000_0000n, 0x00ff_ffff_ffff_f000n, 0xff00_0000_0000_0000n]) {
        expect(pf(cpu.translate(va), va)).toBe(0);
      }
    });
  });

  describe('reserved bits give P|RSVD', () => {
    it('bits 51:M at every level with MAXPHYADDR 40 (bit 39 is address)', async () => {
      for (const level of [4, 3, 2, 1]) {
        for (const bit of [40n, 51n]) {
          const { cpu, t } = await mapped({ cpu: { maxPhysAddr: 40 } });
          t.modify(VA, level, 1n << bit);
          expect(pf(cpu.translate(VA + 8n), VA + 8n), `level ${level} bit ${bit}`).toBe(P | RSVD);
          expect(pf(cpu.translate(VA, write))).toBe(P | RSVD | W);
          expect(pf(cpu.translate(VA, user))).toBe(P | RSVD | U);
          expect(pf(cpu.translate(VA, fetch))).toBe(P | RSVD | ID);
        }
      }
      const { cpu, t } = await mapped({ cpu: { maxPhysAddr: 40 } });
      t.modify(VA, 1, 1n << 39n);
      expect(paOf(cpu, VA)).toBe((1n << 39n) | FRAME);
      expect(cpu.counters().pfReserved).toBe(0);
    });

    it('PS in a PML4E, and in a PML5E with 5 levels', async () => {
      const a = await mapped();
      a.t.modify(VA, 4, PTE.PS);
      expect(pf(a.cpu.translate(VA, { write: true, user: true }))).toBe(P | RSVD | W | U);
      const b = await env({ levels: 5 });
      b.t.map(VA, FRAME);
      b.t.modify(VA, 5, PTE.PS);
      expect(pf(b.cpu.translate(VA))).toBe(P | RSVD);
    });

    it('bits 29:13 of a 1 GiB leaf; bit 12 (PAT) is not an address bit', async () => {
      for (const bit of [13n, 21n, 29n]) {
        const { cpu, t } = await env();
        t.map(0x4000_0000n, 0x4000_0000n, { size: PAGE_1G });
        t.modify(0x4000_0000n, 3, 1n << bit);
        expect(pf(cpu.translate(0x4000_1000n)), `bit ${bit}`).toBe(P | RSVD);
      }
      const { cpu, t } = await env();
      t.map(0x4000_0000n, 0x4000_0000n | 0x1000n, { size: PAGE_1G });
      expect(paOf(cpu, 0x4000_0123n)).toBe(0x4000_0123n);
    });

    it('bits 20:13 of a 2 MiB leaf; bit 12 (PAT) is not an address bit', async () => {
      for (const bit of [13n, 20n]) {
        const { cpu, t } = await env();
        t.map(0x20_0000n, 0x60_0000n, { size: PAGE_2M });
        t.modify(0x20_0000n, 2, 1n << bit);
        expect(pf(cpu.translate(0x20_0000n, write)), `bit ${bit}`).toBe(P | RSVD | W);
      }
      const { cpu, t } = await env();
      t.map(0x20_0000n, 0x60_0000n | 0x1000n, { size: PAGE_2M });
      expect(paOf(cpu, 0x20_0123n)).toBe(0x60_0123n);
    });

    it('XD with EFER.NXE=0 at any level, and a fetch then has no I/D bit', async () => {
      for (const level of [4, 3, 2, 1]) {
        const { cpu, t } = await mapped({ efer: EFER.LME });
        t.modify(VA, level, PTE.XD);
        expect(pf(cpu.translate(VA)), `level ${level}`).toBe(P | RSVD);
        expect(pf(cpu.translate(VA, fetch))).toBe(P | RSVD);
      }
      const { cpu, t } = await mapped(); // NXE=1: XD is a right, not a reserved bit
      t.modify(VA, 1, PTE.XD);
      expect(paOf(cpu, VA)).toBe(FRAME);
    });

    it('is not checked in a not-present entry, and stops the walk at its level', async () => {
      const a = await mapped();
      a.t.set(VA, 1, ~PTE.P & 0xffff_ffff_ffff_ffffn);
      expect(pf(a.cpu.translate(VA, user))).toBe(U);
      const b = await mapped({ cpu: { maxPhysAddr: 40 } });
      b.t.modify(VA, 2, 0n, PTE.P); // a lower level is not present: never reached
      b.t.modify(VA, 3, 1n << 51n);
      expect(pf(b.cpu.translate(VA))).toBe(P | RSVD);
      expect(b.cpu.counters().walkRefs).toBe(2);
    });
  });

  describe('access rights', () => {
    it('R/W is ANDed: a read-only PDPTE makes a writable PTE read-only', async () => {
      const { cpu, t } = await mapped();
      t.modify(VA, 3, 0n, PTE.W);
      expect(paOf(cpu, VA)).toBe(FRAME);
      expect(pf(cpu.translate(VA + 4n, write), VA + 4n)).toBe(P | W);
      expect(pf(cpu.translate(VA, { write: true, user: true }))).toBe(P | W | U);
    });

    it('U/S is ANDed: a supervisor PDE makes a user PTE supervisor-only', async () => {
      const { cpu, t } = await mapped();
      t.modify(VA, 2, 0n, PTE.U);
      expect(pf(cpu.translate(VA, user))).toBe(P | U);
      expect(paOf(cpu, VA, write)).toBe(FRAME);
    });

    it('XD is ORed: XD in the PML4E forbids fetches through a PTE with XD=0', async () => {
      const { cpu, t } = await mapped();
      t.modify(VA, 4, PTE.XD);
      expect(pf(cpu.translate(VA, fetch))).toBe(P | ID);
      expect(pf(cpu.translate(VA, { fetch: true, user: true }))).toBe(P | U | ID);
      expect(paOf(cpu, VA, write)).toBe(FRAME);
    });

    it('CR0.WP=0 lets supervisor writes through read-only pages, not user writes', async () => {
      const { cpu, t, m } = await mapped({ noWp: true }, PTE.P | PTE.U);
      expect(paOf(cpu, VA, write)).toBe(FRAME);
      expect(m.memory.read64(t.entryPa(VA, 1)) & PTE.D).toBe(PTE.D);
      expect(pf(cpu.translate(VA, { write: true, user: true }))).toBe(P | W | U);
      cpu.writeCr0(cpu.getRegisters().cr0 | CR0.WP);
      expect(pf(cpu.translate(VA, write))).toBe(P | W);
    });

    it('SMEP: no supervisor fetch from a user address; data and supervisor pages unaffected', async () => {
      const { cpu, t } = await mapped({ efer: EFER.LME });
      expect(paOf(cpu, VA, fetch)).toBe(FRAME);
      cpu.setRegisters({ cr4: CR4.PAE | CR4.SMEP });
      cpu.flushTlb();
      expect(pf(cpu.translate(VA, fetch))).toBe(P | ID); // I/D from SMEP even with NXE=0
      expect(paOf(cpu, VA, write)).toBe(FRAME);
      expect(paOf(cpu, VA, { fetch: true, user: true })).toBe(FRAME);
      t.modify(VA, 1, 0n, PTE.U);
      cpu.flushTlb();
      expect(paOf(cpu, VA, fetch)).toBe(FRAME);
    });

    it('SMAP: supervisor data access to a user page needs RFLAGS.AC and an explicit access', async () => {
      const { cpu, t } = await mapped({ cr4: CR4.SMAP });
      expect(pf(cpu.translate(VA))).toBe(P);
      expect(pf(cpu.translate(VA, write))).toBe(P | W);
      expect(paOf(cpu, VA, fetch)).toBe(FRAME); // fetches are SMEP's business
      expect(paOf(cpu, VA, user)).toBe(FRAME);
      cpu.setRegisters({ rflags: RFLAGS.AC });
      expect(paOf(cpu, VA, write)).toBe(FRAME);
      expect(pf(cpu.translate(VA, { implicit: true }))).toBe(P);
      expect(pf(cpu.translate(VA, { implicit: true, write: true }))).toBe(P | W);
      cpu.setRegisters({ rflags: 0n });
      t.modify(VA, 1, 0n, PTE.U);
      cpu.flushTlb();
      expect(paOf(cpu, VA, { implicit: true })).toBe(FRAME);
    });
  });

  describe('protection keys (CR4.PKE, leaf bits 62:59, PKRU)', () => {
    const ad = (k: number) => 1 << (2 * k), wd = (k: number) => 2 << (2 * k);
    const pke = (pkru: number, o: EnvOptions = {}) => ({ cr4: CR4.PKE, pkru, ...o });

    it('AD blocks user and supervisor data reads and writes of that key only', async () => {
      const { cpu, t } = await mapped(pke(ad(3)), PWU, 3);
      expect(pf(cpu.translate(VA, user))).toBe(P | U | PK);
      expect(pf(cpu.translate(VA))).toBe(P | PK);
      expect(pf(cpu.translate(VA, { write: true, user: true }))).toBe(P | W | U | PK);
      t.map(VA + 0x1000n, FRAME, { pkey: 2 });
      expect(paOf(cpu, VA + 0x1000n, user)).toBe(FRAME);
      expect(cpu.counters().pfProtectionKey).toBe(3);
    });

    it('WD blocks user writes, supervisor writes with WP=1 but not with WP=0', async () => {
      const a = await mapped(pke(wd(5)), PWU, 5);
      expect(paOf(a.cpu, VA, user)).toBe(FRAME);
      expect(pf(a.cpu.translate(VA, { write: true, user: true }))).toBe(P | W | U | PK);
      expect(pf(a.cpu.translate(VA, write))).toBe(P | W | PK);
      const b = await mapped(pke(wd(5), { noWp: true }), PWU, 5);
      expect(paOf(b.cpu, VA, write)).toBe(FRAME);
      expect(pf(b.cpu.translate(VA, { write: true, user: true }))).toBe(P | W | U | PK);
    });

    it('keys are ignored for fetches, supervisor pages, non-leaf entries and with PKE=0', async () => {
      const a = await mapped(pke(ad(1) | wd(1)), PWU, 1);
      expect(paOf(a.cpu, VA, { fetch: true, user: true })).toBe(FRAME);
      const b = await mapped(pke(ad(1) | wd(1)), PTE.P | PTE.W, 1); // U=0: a supervisor address
      expect(paOf(b.cpu, VA, write)).toBe(FRAME);
      const c = await mapped(pke(ad(1)));
      c.t.modify(VA, 2, 1n << 59n); // key 1 in the PDE means nothing
      expect(paOf(c.cpu, VA, user)).toBe(FRAME);
      const d = await mapped({ pkru: ad(1) }, PWU, 1);
      expect(paOf(d.cpu, VA, user)).toBe(FRAME);
    });

    it('PKRU and CR0.WP changes apply to translations already in the TLB', async () => {
      const { cpu } = await mapped(pke(0), PWU, 2);
      expect(paOf(cpu, VA, { write: true, user: true })).toBe(FRAME);
      cpu.setRegisters({ pkru: wd(2) });
      cpu.writeCr0(cpu.getRegisters().cr0 & ~CR0.WP);
      expect(paOf(cpu, VA, write)).toBe(FRAME); // supervisor write with WP=0 ignores WD
      expect(cpu.counters().walks).toBe(1);
      cpu.writeCr0(cpu.getRegisters().cr0 | CR0.WP);
      expect(pf(cpu.translate(VA, write))).toBe(P | W | PK);
      expect(cpu.counters().walks).toBe(1); // decided on the cached entry
    });

    it('PK is ORed into the error code of a W violation', async () => {
      const a = await mapped(pke(wd(4)), PTE.P | PTE.U, 4);
      expect(pf(a.cpu.translate(VA, { write: true, user: true }))).toBe(P | W | U | PK);
      const b = await mapped(pke(0), PTE.P | PTE.U, 4);
      expect(pf(b.cpu.translate(VA, { write: true, user: true }))).toBe(P | W | U);
    });
  });

  describe('error codes and CR2', () => {
    it('I/D is set for fetches only with NXE or SMEP', async () => {
      const cases: [EnvOptions, number][] = [
        [{ efer: EFER.LME }, 0], [{ efer: EFER.LME | EFER.NXE }, ID], [{ efer: EFER.LME, cr4: CR4.SMEP }, ID],
      ];
      for (const [o, id] of cases) {
        const { cpu } = await env(o);
        expect(pf(cpu.translate(VA, fetch))).toBe(id);
        expect(pf(cpu.translate(VA, { fetch: true, user: true }))).toBe(id | U);
        expect(pf(cpu.translate(VA))).toBe(0);
      }
    });

    it('CR2 is the exact faulting byte; U/S follows CPL=3 unless the access says otherwise', async () => {
      const { cpu } = await mapped({ cpl: 3 }, PTE.P | PTE.W);
      expect(pf(cpu.translate(VA + 0xfffn), VA + 0xfffn)).toBe(P | U);
      expect(paOf(cpu, VA, { user: false })).toBe(FRAME);
      expect(pf(cpu.translate(VA + 0x1001n, write), VA + 0x1001n)).toBe(W | U);
      expect(pf(cpu.translate(VA + 0x1001n, { implicit: true }))).toBe(0);
    });
  });

  describe('accessed and dirty flags', () => {
    const entries = (e: { t: { entryPa(va: bigint, l: number): bigint }; m: { memory: { read64(p: bigint): bigint } } }, levels: number[]) =>
      levels.map((l) => e.m.memory.read64(e.t.entryPa(VA, l)));

    // The careful walk sets A and D; the quick walk finds them set and must write nothing.
    if (presetAD) {
      it('entries that already have A (and D in the leaf) are left exactly as they are', async () => {
        const e = await mapped();
        const before = entries(e, [4, 3, 2, 1]);
        for (const v of before) expect(v & PTE.A).toBe(PTE.A);
        paOf(e.cpu, VA);
        e.cpu.flushTlb();
        paOf(e.cpu, VA, write);
        expect(entries(e, [4, 3, 2, 1])).toEqual(before);
        expect(e.cpu.counters().walks).toBe(2);
      });
    } else it('A is set on every level; D only in the leaf and only for writes', async () => {
      const e = await mapped();
      paOf(e.cpu, VA);
      for (const v of entries(e, [4, 3, 2, 1])) expect(v & (PTE.A | PTE.D)).toBe(PTE.A);
      e.cpu.flushTlb();
      paOf(e.cpu, VA, write);
      expect(entries(e, [4, 3, 2]).map((v) => v & PTE.D)).toEqual([0n, 0n, 0n]);
      expect(entries(e, [1])[0] & PTE.D).toBe(PTE.D);
      const g = await env();
      g.t.map(0x20_0000n, 0x60_0000n, { size: PAGE_2M });
      paOf(g.cpu, 0x20_0000n, write);
      expect(g.t.get(0x20_0000n, 2) & (PTE.A | PTE.D)).toBe(PTE.A | PTE.D);
      expect(g.t.get(0x20_0000n, 3) & (PTE.A | PTE.D)).toBe(PTE.A);
    });

    it('no entry changes on any fault', async () => {
      type Case = [string, EnvOptions, (e: Awaited<ReturnType<typeof mapped>>) => void, object];
      const cases: Case[] = [
        ['not present', {}, (e) => e.t.modify(VA, 1, 0n, PTE.P), {}],
        ['reserved', { cpu: { maxPhysAddr: 40 } }, (e) => e.t.modify(VA, 1, 1n << 51n), {}],
        ['R/W', {}, (e) => e.t.modify(VA, 2, 0n, PTE.W), write],
        ['U/S', {}, (e) => e.t.modify(VA, 3, 0n, PTE.U), user],
        ['XD', {}, (e) => e.t.modify(VA, 1, PTE.XD), fetch],
        ['SMAP', { cr4: CR4.SMAP }, () => {}, write],
        ['PK', { cr4: CR4.PKE, pkru: 2 }, () => {}, { write: true, user: true }],
      ];
      for (const [name, o, poke, access] of cases) {
        const e = await mapped(o);
        poke(e);
        const before = entries(e, [4, 3, 2, 1]);
        expect(e.cpu.translate(VA, access).ok, name).toBe(false);
        expect(entries(e, [4, 3, 2, 1]), name).toEqual(before);
      }
    });
  });
});
