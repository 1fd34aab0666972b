// Regression tests for core bugs found in review (scratch/rv_core.mts, scratch/rv_path.mts):
// streak translates across a page boundary, stale caches across EPTP and mode switches,
// EPT A bits after a violation, and the quick walk's entry addresses.
import { describe, it, expect } from 'vitest';
import { Machine, PageTableBuilder, FrameBump, CR0, CR4, EFER, EPT, eptp } from '../../../src/index.js';
import { Ept } from '../../helpers/ept.js';

const LONG = { cr0: CR0.PG | CR0.WP, cr4: CR4.PAE, efer: EFER.LME | EFER.NXE };
const ADDR = 0xf_ffff_ffff_f000n;

async function setup() {
  const m = await Machine.create({ memoryBytes: 64 * 2 ** 20 });
  return { m, fb: new FrameBump(m.memory, 0x100000n, 0x400000n) };
}

describe('core regressions', () => {
  // Guards: the streak fast path served a size-8 translate crossing into an unmapped page from the first page's entry.
  it('a translate crossing into an unmapped page exits #PF at the second page, warm or cold', async () => {
    const { m, fb } = await setup();
    const pt = new PageTableBuilder(m.memory, fb, 4);
    pt.map(0x400000n, 0x800000n);
    for (const warm of [true, false]) {
      const cpu = m.createCpu();
      cpu.setRegisters({ ...LONG, cr3: pt.root });
      const b = m.createBatch(4);
      // A data load warms the fast-path entry for the first page; an implicit one does not.
      if (warm) b.load(0x400000); else b.load(0x400000, 8, { user: false, implicit: true });
      b.set(1, 'translate', 0x400ffcn, 8, 0n);
      expect(cpu.execute(b).exit, `warm=${warm}`).toEqual({ reason: 'PF', index: 1, errorCode: 0, cr2: 0x401000n });
    }
  });

  // Guards: switching to another EPT pointer reused gpa→hpa mappings cached under the old EPT.
  it('a new EPT pointer does not reuse the old EPT\'s cached gpa→hpa', async () => {
    const { m, fb } = await setup();
    const e1 = new Ept(m.memory, fb), e2 = new Ept(m.memory, fb);
    e1.map(0n, 0x1000000n, 0x200000n);
    e2.map(0n, 0x2000000n, 0x200000n);
    const cpu = m.createCpu();
    cpu.setRegisters({ cr0: 0n });
    cpu.setVmcs({ mode: 'nested', eptp: eptp(e1.root), vpid: 1 });
    expect(cpu.translate(0x5000n)).toMatchObject({ ok: true, pa: 0x1005000n });
    cpu.setVmcs({ mode: 'nested', eptp: eptp(e2.root), vpid: 2 });
    expect(cpu.translate(0x5000n)).toMatchObject({ ok: true, pa: 0x2005000n });
  });

  // Guards: a native→nested switch (VPID 0) reused the native linear→physical mappings.
  it('a native→nested switch does not reuse native mappings', async () => {
    const { m, fb } = await setup();
    const pt = new PageTableBuilder(m.memory, fb, 4);
    pt.map(0x400000n, 0x7000n);
    const cpu = m.createCpu();
    cpu.setRegisters({ ...LONG, cr3: pt.root });
    expect(cpu.translate(0x400000n)).toMatchObject({ ok: true, pa: 0x7000n });
    // Same guest tables (gpa = hpa below 4 MiB), but the EPT moves gpa 0x7000 to 48 MiB.
    const e = new Ept(m.memory, fb);
    e.map(0n, 0n, 0x400000n);
    e.map(0x7000n, 0x3000000n, 0x1000n);
    cpu.setVmcs({ mode: 'nested', eptp: eptp(e.root) });
    expect(cpu.translate(0x400000n)).toMatchObject({ ok: true, pa: 0x3000000n });
  });

  // Guards: EPT paging-structure entries cached (with A=0) by a walk that hit a violation were never given A later.
  it('sets EPT A on every level after a successful walk that follows a violation', async () => {
    const { m, fb } = await setup();
    const e = new Ept(m.memory, fb);
    const ptea = e.entryAddr(0x9000n, 1); // upper levels present with A=0; the PTE not present
    const cpu = m.createCpu();
    cpu.setRegisters({ cr0: 0n });
    cpu.setVmcs({ mode: 'nested', eptp: eptp(e.root, 4, true) });
    expect(cpu.translate(0x9000n).ok).toBe(false);
    m.memory.write64(ptea, 0x1234000n | EPT.R | EPT.W | EPT.X | EPT.MT_WB); // not-present → present: no INVEPT
    expect(cpu.translate(0x9000n)).toMatchObject({ ok: true, pa: 0x1234000n, pageSize: 4096 });
    const pml4e = m.memory.read64(e.root);
    const pdpte = m.memory.read64(pml4e & ADDR);
    const pde = m.memory.read64(pdpte & ADDR);
    const aBits = [pml4e, pdpte, pde, m.memory.read64(ptea)].map((v) => (v & EPT.A) !== 0n);
    expect(aBits).toEqual([true, true, true, true]);
  });

  // Guards: the quick walk recorded no entry addresses, so walkPath().entryHpas kept the previous walk's.
  it('walkPath().entryHpas are the current walk\'s after a native walk without TLBs/PSCs', async () => {
    const { m, fb } = await setup();
    const pt = new PageTableBuilder(m.memory, fb, 4);
    const vas = [0x400000n, 0x40000000n];
    pt.map(vas[0], 0x800000n, 4096, { accessed: true, dirty: true });
    pt.map(vas[1], 0x900000n, 4096, { accessed: true, dirty: true });
    // Upper entries need A for the quick walk.
    for (const va of vas) for (const l of [4, 3, 2]) {
      const a = pt.entryAddr(va, l);
      m.memory.write64(a, m.memory.read64(a) | 0x20n);
    }
    const cpu = m.createCpu({ tlb: false, psc: false });
    cpu.setRegisters({ ...LONG, cr3: pt.root });
    for (const va of vas) {
      expect(cpu.translate(va).ok).toBe(true);
      const want = [1, 2, 3, 4].map((l) => pt.entryAddr(va, l));
      expect(cpu.walkPath().entryHpas.slice(0, 4), `va ${va.toString(16)}`).toEqual(want);
    }
  });
});

// Guards (issue 9): EPT exits on guest paging-structure accesses reported the guest table's
// page, not the gpa of the 8-byte entry read (SDM 27.2.1). Guest CR3 = 0x5000, va = 1 << 39:
// the PML4E is at gpa 0x5008.
describe('EPT exits on guest paging-structure accesses report the entry\'s gpa', () => {
  const VA = 1n << 39n;
  async function guest(ad: boolean) {
    const { m, fb } = await setup();
    const e = new Ept(m.memory, fb);
    e.map(0n, 0x100_0000n, 0x40_0000n); // gpa [0, 4 MiB) → hpa 16 MiB + gpa
    const g = (gpa: bigint) => 0x100_0000n + gpa;
    // Guest tables at gpa 0x5000 (PML4), 0x6000, 0x7000, 0x8000; data at gpa 0x9000.
    m.memory.write64(g(0x5008n), 0x6000n | 7n);
    m.memory.write64(g(0x6000n), 0x7000n | 7n);
    m.memory.write64(g(0x7000n), 0x8000n | 7n);
    m.memory.write64(g(0x8000n), 0x9000n | 7n);
    const cpu = m.createCpu({ tlb: false, psc: false });
    cpu.setRegisters({ ...LONG, cr3: 0x5000n });
    cpu.setVmcs({ mode: 'nested', eptp: eptp(e.root, 4, ad), vpid: 1 });
    return { m, e, cpu };
  }
  const PAGING_READ = 1 | (1 << 7); // read, GLA valid, not the final translation

  it('violation: the EPT PTE for the guest PML4 page is not present → gpa 0x5008', async () => {
    const { m, e, cpu } = await guest(false);
    m.memory.write64(e.entryAddr(0x5000n, 1), 0n);
    expect(cpu.translate(VA)).toEqual({ ok: false, fault: 'EPT_VIOLATION', gpa: 0x5008n, qualification: PAGING_READ });
    const b = m.createBatch(1);
    b.load(VA + 0x10n, 8);
    expect(cpu.execute(b).exit).toEqual({ reason: 'EPT_VIOLATION', index: 0, gpa: 0x5008n, gva: VA + 0x10n, qualification: PAGING_READ });
  });

  it('misconfiguration: memory type 2 in that EPT PTE → gpa 0x5008', async () => {
    const { m, e, cpu } = await guest(true);
    const at = e.entryAddr(0x5000n, 1);
    m.memory.write64(at, (m.memory.read64(at) & ~(7n << 3n)) | (2n << 3n));
    expect(cpu.translate(VA)).toEqual({ ok: false, fault: 'EPT_MISCONFIG', gpa: 0x5008n });
  });

  it('A/D re-check: a read-only guest PT page whose PTE needs A → gpa of the PTE (0x8000 + 8·index)', async () => {
    const { m, e, cpu } = await guest(false);
    const at = e.entryAddr(0x8000n, 1);
    m.memory.write64(at, m.memory.read64(at) & ~EPT.W);
    const va = VA + 0x3000n; // PT index 3 → the PTE at gpa 0x8018
    m.memory.write64(0x100_0000n + 0x8018n, 0x9000n | 7n);
    // R+W asked (an A/D write), R and X held, GLA valid, not final.
    expect(cpu.translate(va)).toEqual({ ok: false, fault: 'EPT_VIOLATION', gpa: 0x8018n, qualification: 3 | (5 << 3) | (1 << 7) });
  });
});
