// Hand-checked cases for the reference model (the oracle of model.property.test.ts), so
// the oracle is itself tested. Expected values are worked out from the SDM rules by hand.

import { describe, it, expect } from 'vitest';
import {
  refTranslate, MapMemory, isCanonical, type RefRegs,
  CR0_PG, CR0_WP, CR4_PAE, CR4_LA57, CR4_SMEP, CR4_SMAP, CR4_PKE, EFER_LME, EFER_NXE, RFLAGS_AC,
  A, D, P, XD,
} from './model/x86ref.js';
import { PageTableBuilder } from '../helpers/pagetable.js';

const VA = 0x0000_7f12_3456_7000n; // PML4 254, PDPT 72, PD 418, PT 359
const PAGE = 0x0004_5678_9000n;

function setup(o: { levels?: 4 | 5; regs?: Partial<RefRegs> } = {}) {
  const mem = new MapMemory();
  const levels = o.levels ?? 4;
  const pt = new PageTableBuilder(mem, { levels, tableBase: 0x10_0000n });
  const regs: RefRegs = {
    cr0: CR0_PG | CR0_WP, cr3: pt.cr3, cr4: CR4_PAE | (levels === 5 ? CR4_LA57 : 0n),
    efer: EFER_LME | EFER_NXE, rflags: 0n, pkru: 0, cpl: 0, ...o.regs,
  };
  return { mem, pt, regs };
}

const pf = (errorCode: number, cr2: bigint) => ({ ok: false, fault: 'PF', errorCode, cr2 });

describe('reference model: successful walks', () => {
  it('a 4 KiB user page read at CPL 3 translates and sets A on every level, D nowhere', () => {
    const { mem, pt, regs } = setup({ regs: { cpl: 3 } });
    const path = pt.map(VA, PAGE);
    expect(refTranslate(mem, regs, VA + 0x123n)).toEqual({ ok: true, pa: PAGE + 0x123n, pageSize: 4096 });
    for (const addr of path) {
      expect(mem.read64(addr) & A).toBe(A);
      expect(mem.read64(addr) & D).toBe(0n);
    }
  });

  it('a write sets D on the leaf only', () => {
    const { mem, pt, regs } = setup();
    const path = pt.map(VA, PAGE);
    expect(refTranslate(mem, regs, VA, { write: true }).ok).toBe(true);
    expect(path.map((a) => (mem.read64(a) & D) !== 0n)).toEqual([false, false, false, true]);
  });

  it('a 2 MiB leaf: offset 20:0 from va, PAT bit 12 not part of the address', () => {
    const { mem, pt, regs } = setup();
    pt.map(0x4000_0000n, 0x1_0020_0000n, { size: 2097152, pat: true });
    expect(refTranslate(mem, regs, 0x4012_3456n))
      .toEqual({ ok: true, pa: 0x1_0032_3456n, pageSize: 2097152 });
  });

  it('a 1 GiB leaf under 5-level paging, high-half address', () => {
    const { mem, pt, regs } = setup({ levels: 5 });
    const va = 0xff12_3456_4000_0000n;
    pt.map(va, 0x40_0000_0000n, { size: 1073741824 });
    expect(refTranslate(mem, regs, va + 0x3abc_def0n))
      .toEqual({ ok: true, pa: 0x40_3abc_def0n, pageSize: 1073741824 });
  });
});

describe('reference model: canonical check', () => {
  it('non-canonical addresses #GP and touch nothing', () => {
    const { mem, pt, regs } = setup();
    const va = 0x0000_8000_0000_0000n;
    pt.map(va, PAGE);
    const before = new Map(mem.words);
    expect(refTranslate(mem, regs, va)).toEqual({ ok: false, fault: 'GP' });
    expect(mem.words).toEqual(before);
  });

  it('the canonical rule depends on the paging depth', () => {
    expect(isCanonical(0x00ff_ffff_ffff_f000n, 5)).toBe(true);
    expect(isCanonical(0x00ff_ffff_ffff_f000n, 4)).toBe(false);
    expect(isCanonical(0xffff_8000_0000_0000n, 4)).toBe(true);
    expect(isCanonical(0xff00_0000_0000_0000n, 5)).toBe(true);
    expect(isCanonical(0xfe00_0000_0000_0000n, 5)).toBe(false);
  });
});

describe('reference model: not-present and reserved bits', () => {
  it('not present at the PDE, user write: error code W|U, nothing changes', () => {
    const { mem, pt, regs } = setup({ regs: { cpl: 3 } });
    pt.map(VA, PAGE, { flagsAtLevel: { 2: { clear: P } } });
    const before = new Map(mem.words);
    expect(refTranslate(mem, regs, VA + 8n, { write: true })).toEqual(pf(2 | 4, VA + 8n));
    expect(mem.words).toEqual(before);
  });

  it('XD in a PTE with NXE=0 is reserved: P|RSVD', () => {
    const { mem, pt, regs } = setup({ regs: { efer: EFER_LME } });
    pt.map(VA, PAGE, { nx: true });
    expect(refTranslate(mem, regs, VA)).toEqual(pf(1 | 8, VA));
    // With NXE=1 the same PTE only forbids fetches; I/D is reported.
    regs.efer |= EFER_NXE;
    expect(refTranslate(mem, regs, VA)).toMatchObject({ ok: true });
    expect(refTranslate(mem, regs, VA, { fetch: true })).toEqual(pf(1 | 16, VA));
  });

  it('bits 51:M are reserved: bit 36 with MAXPHYADDR 36, but not bit 35', () => {
    const { mem, pt, regs } = setup({ regs: { maxPhysAddr: 36 } });
    const path = pt.map(VA, PAGE);
    mem.write64(path[3]!, mem.read64(path[3]!) | (1n << 35n));
    expect(refTranslate(mem, regs, VA)).toMatchObject({ ok: true, pa: PAGE | (1n << 35n) });
    mem.write64(path[2]!, mem.read64(path[2]!) | (1n << 36n));
    expect(refTranslate(mem, regs, VA, { write: true })).toEqual(pf(1 | 2 | 8, VA));
  });

  it('PS in a PML4E and bit 13 of a 2 MiB leaf are reserved; bit 8 of a PML4E is ignored', () => {
    const a = setup();
    a.pt.map(VA, PAGE, { flagsAtLevel: { 4: { set: 0x100n } } });
    expect(refTranslate(a.mem, a.regs, VA).ok).toBe(true);
    a.pt.map(VA, PAGE, { flagsAtLevel: { 4: { set: 0x80n } } });
    expect(refTranslate(a.mem, a.regs, VA)).toEqual(pf(1 | 8, VA));
    const b = setup();
    b.pt.map(0x20_0000n, 0x40_0000n, { size: 2097152, flagsAtLevel: { 2: { set: 1n << 13n } } });
    expect(refTranslate(b.mem, b.regs, 0x20_0000n)).toEqual(pf(1 | 8, 0x20_0000n));
  });

  it('a not-present PML4E wins over a reserved bit below it', () => {
    const { mem, pt, regs } = setup();
    pt.map(VA, PAGE, { flagsAtLevel: { 4: { clear: P }, 1: { set: 1n << 51n } } });
    expect(refTranslate(mem, regs, VA, { fetch: true })).toEqual(pf(16, VA));
  });
});

describe('reference model: access rights', () => {
  it('user access to a supervisor page; WP decides supervisor writes to read-only pages', () => {
    const { mem, pt, regs } = setup();
    pt.map(VA, PAGE, { w: false, flagsAtLevel: { 3: { clear: 4n } } }); // U=0 in the PDPTE
    expect(refTranslate(mem, regs, VA, { user: true })).toEqual(pf(1 | 4, VA));
    expect(refTranslate(mem, regs, VA, { write: true })).toEqual(pf(1 | 2, VA));
    regs.cr0 &= ~CR0_WP;
    expect(refTranslate(mem, regs, VA, { write: true }).ok).toBe(true);
  });

  it('SMAP: supervisor reads of user pages need AC=1 and an explicit access', () => {
    const { mem, pt, regs } = setup({ regs: { cr4: CR4_PAE | CR4_SMAP } });
    pt.map(VA, PAGE);
    expect(refTranslate(mem, regs, VA)).toEqual(pf(1, VA));
    regs.rflags = RFLAGS_AC;
    expect(refTranslate(mem, regs, VA).ok).toBe(true);
    expect(refTranslate(mem, regs, VA, { implicit: true })).toEqual(pf(1, VA));
    // Implicit accesses are supervisor accesses even at CPL 3: U/S is 0 in the error code.
    regs.cpl = 3;
    expect(refTranslate(mem, regs, VA, { implicit: true, write: true })).toEqual(pf(1 | 2, VA));
    expect(refTranslate(mem, regs, VA, { write: true }).ok).toBe(true);
  });

  it('SMEP: supervisor fetch from a user page faults with I/D even when NXE=0', () => {
    const { mem, pt, regs } = setup({ regs: { cr4: CR4_PAE | CR4_SMEP, efer: EFER_LME } });
    pt.map(VA, PAGE);
    expect(refTranslate(mem, regs, VA, { fetch: true })).toEqual(pf(1 | 16, VA));
    regs.cr4 = CR4_PAE;
    expect(refTranslate(mem, regs, VA, { fetch: true }).ok).toBe(true);
  });

  it('I/D is not reported for a fetch when NXE=0 and SMEP=0', () => {
    const { mem, pt, regs } = setup({ regs: { efer: EFER_LME, cpl: 3 } });
    pt.map(VA, PAGE, { u: false });
    expect(refTranslate(mem, regs, VA, { fetch: true })).toEqual(pf(1 | 4, VA));
  });

  it('XD anywhere in the walk forbids fetches when NXE=1', () => {
    const { mem, pt, regs } = setup();
    pt.map(VA, PAGE, { flagsAtLevel: { 4: { set: XD } } });
    expect(refTranslate(mem, regs, VA, { fetch: true })).toEqual(pf(1 | 16, VA));
    expect(refTranslate(mem, regs, VA, { write: true }).ok).toBe(true);
  });
});

describe('reference model: protection keys', () => {
  const WD1 = 1 << 3, AD1 = 1 << 2;

  it('WD: user write to a read-only page reports P|W|U|PK (PK ORed in independently)', () => {
    const { mem, pt, regs } = setup({ regs: { cr4: CR4_PAE | CR4_PKE, pkru: WD1, cpl: 3 } });
    pt.map(VA, PAGE, { w: false, pkey: 1 });
    expect(refTranslate(mem, regs, VA, { write: true })).toEqual(pf(1 | 2 | 4 | 32, VA));
    expect(refTranslate(mem, regs, VA).ok).toBe(true);
  });

  it('WD and supervisor writes: honoured with WP=1, ignored with WP=0', () => {
    const { mem, pt, regs } = setup({ regs: { cr4: CR4_PAE | CR4_PKE, pkru: WD1 } });
    pt.map(VA, PAGE, { pkey: 1 });
    expect(refTranslate(mem, regs, VA, { write: true })).toEqual(pf(1 | 2 | 32, VA));
    regs.cr0 &= ~CR0_WP;
    expect(refTranslate(mem, regs, VA, { write: true }).ok).toBe(true);
  });

  it('AD blocks reads; keys ignore fetches, supervisor pages, non-leaf key bits and PKE=0', () => {
    const { mem, pt, regs } = setup({ regs: { cr4: CR4_PAE | CR4_PKE, pkru: AD1, cpl: 3 } });
    // Key 1 in the leaf; key 0 (allowed) is what the PDE's bits 62:59 must not override.
    pt.map(VA, PAGE, { pkey: 1, flagsAtLevel: { 2: { set: 2n << 59n } } });
    expect(refTranslate(mem, regs, VA)).toEqual(pf(1 | 4 | 32, VA));
    expect(refTranslate(mem, regs, VA, { fetch: true }).ok).toBe(true);
    regs.pkru = 0x30; // AD2|WD2 only: the PDE's key 2 is ignored
    expect(refTranslate(mem, regs, VA, { write: true }).ok).toBe(true);
    regs.pkru = AD1;
    regs.cr4 = CR4_PAE;
    expect(refTranslate(mem, regs, VA).ok).toBe(true);
    const s = setup({ regs: { cr4: CR4_PAE | CR4_PKE, pkru: AD1 } });
    s.pt.map(VA, PAGE, { u: false, pkey: 1 });
    expect(refTranslate(s.mem, s.regs, VA).ok).toBe(true);
  });
});
