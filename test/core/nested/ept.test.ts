// EPT and the two-dimensional walk: translation, reference counts per walk, violations
// with their exit qualification, misconfigurations, EPT A/D, large pages, INVEPT/INVVPID.
import { describe, it, expect, beforeEach } from 'vitest';
import {
  Machine, PageTableBuilder, FrameBump, CR0, CR4, EFER, EPT, EPT_QUAL, eptp, PTE,
  type Cpu, type PhysicalMemory,
} from '../../../src/index.js';
import { Ept } from '../../helpers/ept.js';
export type { Ept as EptBuilder };

const GUEST_BASE = 0x1000_0000n;       // guest-physical 0 lives at this hpa (256 MiB)
const GUEST_BYTES = 0x1000_0000n;      // 256 MiB of guest memory
const EPT_TABLES = 0x1f00_0000n;      // EPT tables at 496 MiB (hpa), clear of guest data
const VA = 0x7f12_3456_7000n;

/** Guest-physical view of a contiguous slice of host memory (what an identity p2m gives). */
function guestView(mem: PhysicalMemory, base = GUEST_BASE): PhysicalMemory {
  const h = (gpa: bigint) => gpa + base;
  return {
    read64: (a: bigint) => mem.read64(h(a)),
    write64: (a: bigint, v: bigint) => mem.write64(h(a), v),
    fill: (a: bigint, b: number, n: number) => mem.fill(h(a), b, n),
  } as unknown as PhysicalMemory;
}

interface Env { m: Machine; cpu: Cpu; ept: Ept; gpt: PageTableBuilder }

async function env(opts: { eptSize?: bigint; guestSize?: 4096 | 2097152; ad?: boolean; caches?: boolean;
  maxPhysAddr?: number } = {}): Promise<Env> {
  const m = await Machine.create({ memoryBytes: 512 * 2 ** 20 });
  const ept = new Ept(m.memory, new FrameBump(m.memory, EPT_TABLES, EPT_TABLES + 0x80_0000n));
  // A 1 GiB EPT page needs a 1 GiB-aligned host frame: map gpa 0.. at hpa 0 through one.
  if (opts.eptSize === 0x4000_0000n) ept.map(0n, 0n, 0x4000_0000n, 0x4000_0000n);
  else ept.map(0n, GUEST_BASE, GUEST_BYTES, opts.eptSize ?? 4096n);
  const gview = opts.eptSize === 0x4000_0000n ? guestView(m.memory, 0n) : guestView(m.memory);
  const gpt = new PageTableBuilder(gview, new FrameBump(gview, 0x10_0000n, 0x80_0000n), 4);
  const size = opts.guestSize ?? 4096;
  gpt.map(size === 4096 ? VA : VA & ~0x1f_ffffn, 0x400_0000n, size);
  const caches = opts.caches ?? false;
  const cpu = m.createCpu(caches ? { maxPhysAddr: opts.maxPhysAddr } : { tlb: false, psc: false, maxPhysAddr: opts.maxPhysAddr });
  cpu.setRegisters({ cr0: CR0.PG | CR0.WP, cr3: gpt.root, cr4: CR4.PAE, efer: EFER.LME | EFER.NXE });
  cpu.setVmcs({ mode: 'nested', eptp: eptp(ept.root, 4, opts.ad ?? true), vpid: 1 });
  return { m, cpu, ept, gpt };
}

function refsOf(cpu: Cpu): number {
  const c = cpu.counters();
  return c.walkRefs;
}

describe('two-dimensional walk', () => {
  it('translates gva → gpa → hpa', async () => {
    const { cpu } = await env();
    const r = cpu.translate(VA + 0x123n, {});
    expect(r).toEqual({ ok: true, pa: GUEST_BASE + 0x400_0123n, pageSize: 4096 });
  });

  // (n+1)(m+1) − 1 for n guest levels and m EPT levels, no caches.
  const cases: [string, 4096 | 2097152, bigint, number][] = [
    ['4K guest × 4K EPT', 4096, 4096n, 24],
    ['2M guest × 4K EPT', 2097152, 4096n, 19],
    ['4K guest × 2M EPT', 4096, 0x200000n, 19],
    ['2M guest × 2M EPT', 2097152, 0x200000n, 15],
    ['4K guest × 1G EPT', 4096, 0x4000_0000n, 14],
  ];
  for (const [name, guestSize, eptSize, want] of cases) {
    it(`an uncached walk makes ${want} references: ${name}`, async () => {
      const { cpu } = await env({ guestSize, eptSize });
      cpu.resetCounters();
      const r = cpu.translate(VA + 8n, {});
      expect(r.ok).toBe(true);
      const c = cpu.counters();
      expect(c.walks).toBe(1);
      expect(refsOf(cpu)).toBe(want);
      expect(c.guestWalkRefs).toBe(guestSize === 4096 ? 4 : 3);
    });
  }

  it('the nested TLB and paging-structure caches cut a repeated walk to few references', async () => {
    const { cpu } = await env({ caches: true });
    cpu.translate(VA, {});
    cpu.resetCounters();
    cpu.flushTlb();
    cpu.translate(VA, {});
    // Cold: the four guest tables share one 2 MiB gpa region, so after the first EPT
    // walk (4 refs) each table's EPT walk hits the EPT PDE cache (1 ref); the data gpa
    // hits the EPT PDPTE cache (2 refs): 4 guest + 4 + 1 + 1 + 1 + 2 = 13.
    const cold = refsOf(cpu);
    cpu.invlpg(VA); // drops the combined TLB entry and combined PSCs, keeps gpa mappings
    cpu.resetCounters();
    cpu.translate(VA, {});
    const warm = refsOf(cpu);
    expect(cold).toBe(13);
    expect(warm).toBe(4); // guest refs only: every gpa hits the nested TLB
    expect(cpu.counters().ntlbHits).toBe(5);
  });
});

describe('EPT violations and misconfigurations', () => {
  it('a not-present final gpa is a violation with the exact qualification', async () => {
    const { m, cpu, ept } = await env();
    m.memory.write64(ept.entryAddr(0x400_0000n, 1), 0n);
    const b = m.createBatch(2);
    b.store(VA + 0x10n, 7n, 8);
    const r = cpu.execute(b);
    expect(r.exit).toEqual({
      reason: 'EPT_VIOLATION', index: 0, gpa: 0x400_0010n, gva: VA + 0x10n,
      qualification: EPT_QUAL.WRITE | EPT_QUAL.GLA_VALID | EPT_QUAL.FINAL,
    });
  });

  it('a write to a read-only EPT page reports the rights held', async () => {
    const { m, cpu, ept } = await env();
    m.memory.write64(ept.entryAddr(0x400_0000n, 1), (GUEST_BASE + 0x400_0000n) | EPT.R | EPT.X | EPT.MT_WB);
    expect(cpu.translate(VA, {}).ok).toBe(true);
    const b = m.createBatch(1);
    b.store(VA, 1n, 1);
    const r = cpu.execute(b);
    expect(r.exit).toMatchObject({ reason: 'EPT_VIOLATION',
      qualification: EPT_QUAL.WRITE | EPT_QUAL.READABLE | EPT_QUAL.EXECUTABLE | EPT_QUAL.GLA_VALID | EPT_QUAL.FINAL });
  });

  it('a guest page-table page missing from the EPT: paging-structure violation (read+write with A/D)', async () => {
    const { m, cpu, ept, gpt } = await env({ ad: true });
    const pdGpa = m.memory.read64(GUEST_BASE + gpt.root + ((VA >> 39n) & 511n) * 8n) & 0xf_ffff_ffff_f000n;
    m.memory.write64(ept.entryAddr(pdGpa, 1), 0n);
    const r = cpu.translate(VA, {});
    expect(r.ok).toBe(false);
    const b = m.createBatch(1);
    b.load(VA);
    const x = cpu.execute(b).exit;
    // The gpa is the 8-byte PDPTE read (SDM 27.2.1), not its table's page (issue 9).
    expect(x).toMatchObject({ reason: 'EPT_VIOLATION', gpa: pdGpa + ((VA >> 30n) & 511n) * 8n,
      qualification: EPT_QUAL.READ | EPT_QUAL.WRITE | EPT_QUAL.GLA_VALID });
  });

  it('without EPT A/D the same access is a read', async () => {
    const { m, cpu, ept, gpt } = await env({ ad: false });
    const pdGpa = m.memory.read64(GUEST_BASE + gpt.root + ((VA >> 39n) & 511n) * 8n) & 0xf_ffff_ffff_f000n;
    m.memory.write64(ept.entryAddr(pdGpa, 1), 0n);
    const b = m.createBatch(1);
    b.load(VA);
    expect(cpu.execute(b).exit).toMatchObject({ reason: 'EPT_VIOLATION', gpa: pdGpa + ((VA >> 30n) & 511n) * 8n,
      qualification: EPT_QUAL.READ | EPT_QUAL.GLA_VALID });
  });

  for (const [name, bits] of [['write-only', EPT.W], ['write+execute', EPT.W | EPT.X],
    ['memory type 2', EPT.R | (2n << 3n)], ['memory type 7', EPT.R | (7n << 3n)],
    ['reserved bit 51 (MAXPHYADDR 46)', EPT.R | EPT.MT_WB | (1n << 51n)]] as const) {
    it(`a ${name} leaf is a misconfiguration, not a violation`, async () => {
      const { m, cpu, ept } = await env({ maxPhysAddr: 46 });
      m.memory.write64(ept.entryAddr(0x400_0000n, 1), (GUEST_BASE + 0x400_0000n) | bits);
      expect(cpu.translate(VA, {})).toEqual({ ok: false, fault: 'EPT_MISCONFIG', gpa: 0x400_0000n });
      const b = m.createBatch(1);
      b.load(VA + 8n);
      expect(cpu.execute(b).exit).toEqual({ reason: 'EPT_MISCONFIG', index: 0, gpa: 0x400_0008n, gva: VA + 8n });
    });
  }

  it('reserved bits 6:3 in a non-leaf EPT PDE are a misconfiguration; not-present wins over them', async () => {
    const { m, cpu, ept } = await env();
    const pde = ept.entryAddr(0x400_0000n, 2);
    const good = m.memory.read64(pde);
    m.memory.write64(pde, good | (1n << 4n));
    expect(cpu.translate(VA, {})).toMatchObject({ fault: 'EPT_MISCONFIG' });
    m.memory.write64(pde, (good | (1n << 4n)) & ~7n); // not present: the other bits are ignored
    expect(cpu.translate(VA, {})).toMatchObject({ fault: 'EPT_VIOLATION', qualification: EPT_QUAL.READ | EPT_QUAL.GLA_VALID | EPT_QUAL.FINAL });
  });

  it('guest faults take precedence inside the guest walk and are plain #PF', async () => {
    const { cpu } = await env();
    expect(cpu.translate(VA + 0x1000n, {})).toEqual({ ok: false, fault: 'PF', errorCode: 0, cr2: VA + 0x1000n });
  });
});

describe('EPT accessed and dirty flags', () => {
  it('with A/D on: A on every EPT entry used, D on the leaves written (guest tables count as writes)', async () => {
    const { m, cpu, ept, gpt } = await env({ ad: true });
    const b = m.createBatch(1);
    b.store(VA, 5n, 8);
    expect(cpu.execute(b).exit.reason).toBe('end');
    const dataLeaf = m.memory.read64(ept.entryAddr(0x400_0000n, 1));
    expect(dataLeaf & (EPT.A | EPT.D)).toBe(EPT.A | EPT.D);
    const rootLeaf = m.memory.read64(ept.entryAddr(gpt.root, 1));
    expect(rootLeaf & (EPT.A | EPT.D)).toBe(EPT.A | EPT.D);
    const untouched = m.memory.read64(ept.entryAddr(0x500_0000n, 1));
    expect(untouched & (EPT.A | EPT.D)).toBe(0n);
    // the guest's own A/D bits are set in guest memory
    const gpte = m.memory.read64(GUEST_BASE + gpt.entryAddr(VA, 1));
    expect(gpte & (PTE.A | PTE.D)).toBe(PTE.A | PTE.D);
  });

  it('with TLBs and caches on: a load then a store to the page sets A and D in the EPT leaf', async () => {
    const { m, cpu, ept, gpt } = await env({ ad: true, caches: true });
    // The guest PTE already has A and D (the guest wrote the page before): only the EPT
    // D bit tells the store from the load, so the TLB must not serve it from the load's entry.
    const gpte = GUEST_BASE + gpt.entryAddr(VA, 1);
    m.memory.write64(gpte, m.memory.read64(gpte) | PTE.A | PTE.D);
    const leaf = ept.entryAddr(0x400_0000n, 1);
    const b = m.createBatch(2);
    b.load(VA, 8);
    b.store(VA + 8n, 5n, 8);
    expect(cpu.execute(b).exit.reason).toBe('end');
    expect(m.memory.read64(leaf) & (EPT.A | EPT.D)).toBe(EPT.A | EPT.D);
    // Dirty logging: the hypervisor clears D and invalidates; the next store sets it again.
    m.memory.write64(leaf, m.memory.read64(leaf) & ~EPT.D);
    expect(cpu.invept(1)).toBe(true);
    b.clear();
    b.load(VA, 8);
    b.store(VA + 16n, 6n, 8);
    expect(cpu.execute(b).exit.reason).toBe('end');
    expect(m.memory.read64(leaf) & (EPT.A | EPT.D)).toBe(EPT.A | EPT.D);
    expect(m.memory.read64(GUEST_BASE + 0x400_0010n)).toBe(6n);
  });

  it('with A/D off: EPT entries keep A/D clear', async () => {
    const { m, cpu, ept } = await env({ ad: false });
    const b = m.createBatch(1);
    b.store(VA, 5n, 8);
    cpu.execute(b);
    expect(m.memory.read64(ept.entryAddr(0x400_0000n, 1)) & (EPT.A | EPT.D)).toBe(0n);
  });

  it('without EPT A/D, a guest A-bit update on a read-only EPT page-table page is a write violation', async () => {
    const { m, cpu, ept, gpt } = await env({ ad: false });
    const ptGpa = gpt.entryAddr(VA, 1) & ~0xfffn;
    m.memory.write64(ept.entryAddr(ptGpa, 1), (GUEST_BASE + ptGpa) | EPT.R | EPT.X | EPT.MT_WB);
    const r = cpu.translate(VA, {}); // the guest PTE has A=0: the walk must write it
    expect(r).toMatchObject({ ok: false, fault: 'EPT_VIOLATION', gpa: gpt.entryAddr(VA, 1) }); // the PTE's own gpa
    // once the guest PTE has A (and D) set, reads need no write
    m.memory.write64(GUEST_BASE + gpt.entryAddr(VA, 1), m.memory.read64(GUEST_BASE + gpt.entryAddr(VA, 1)) | PTE.A | PTE.D);
    expect(cpu.translate(VA, {}).ok).toBe(true);
  });
});

describe('cached translations under EPT', () => {
  it('a combined TLB entry does not let a write through a read-only EPT page', async () => {
    const { m, cpu, ept } = await env({ caches: true });
    m.memory.write64(ept.entryAddr(0x400_0000n, 1), (GUEST_BASE + 0x400_0000n) | EPT.R | EPT.X | EPT.MT_WB);
    cpu.translate(VA, { write: false });
    expect(cpu.translate(VA, { write: true })).toMatchObject({ fault: 'EPT_VIOLATION' });
  });

  it('a stale nested TLB entry is used until INVEPT', async () => {
    const { m, cpu, ept } = await env({ caches: true });
    expect(cpu.translate(VA, {})).toMatchObject({ pa: GUEST_BASE + 0x400_0000n });
    m.memory.write64(ept.entryAddr(0x400_0000n, 1), (GUEST_BASE + 0x500_0000n) | EPT.R | EPT.W | EPT.X | EPT.MT_WB);
    cpu.invlpg(VA); // drops the combined mapping only
    expect(cpu.translate(VA, {})).toMatchObject({ pa: GUEST_BASE + 0x400_0000n });
    expect(cpu.invept(1)).toBe(true);
    expect(cpu.translate(VA, {})).toMatchObject({ pa: GUEST_BASE + 0x500_0000n });
    expect(cpu.invept(3)).toBe(false);
  });

  it('VPID tags combined entries: another VPID misses, INVVPID drops one context', async () => {
    const { cpu, ept, gpt } = await env({ caches: true });
    cpu.translate(VA, {});
    cpu.resetCounters();
    cpu.setVmcs({ mode: 'nested', eptp: eptp(ept.root), vpid: 2 });
    cpu.translate(VA, {});
    expect(cpu.counters().walks).toBe(1);
    cpu.setVmcs({ mode: 'nested', eptp: eptp(ept.root), vpid: 1 });
    cpu.resetCounters();
    cpu.translate(VA, {});
    expect(cpu.counters().walks).toBe(0);
    expect(cpu.invvpid(1, 1)).toBe(true);
    cpu.translate(VA, {});
    expect(cpu.counters().walks).toBe(1);
    expect(cpu.invvpid(1, 0)).toBe(false); // VPID 0 is only valid for type 2
    expect(gpt.root).toBeGreaterThan(0n);
  });
});

describe('INVVPID types', () => {
  async function twoContexts() {
    const e = await env({ caches: true });
    const { cpu, ept } = e;
    for (const vpid of [1, 2]) {
      cpu.setVmcs({ mode: 'nested', eptp: eptp(ept.root), vpid });
      cpu.translate(VA, {});
    }
    cpu.setVmcs({ mode: 'nested', eptp: eptp(ept.root), vpid: 1 });
    return e;
  }
  function walksFor(cpu: Cpu, ept: Ept, vpid: number): number {
    cpu.setVmcs({ mode: 'nested', eptp: eptp(ept.root), vpid });
    cpu.resetCounters();
    cpu.translate(VA, {});
    return cpu.counters().walks;
  }

  it('type 0 drops one address of one VPID', async () => {
    const { cpu, ept } = await twoContexts();
    expect(cpu.invvpid(0, 2, VA)).toBe(true);
    expect(walksFor(cpu, ept, 1)).toBe(0);
    expect(walksFor(cpu, ept, 2)).toBe(1);
    expect(cpu.invvpid(0, 2, 0x8000_0000_0000n)).toBe(false); // non-canonical
  });

  it('type 2 drops every VPID but 0', async () => {
    const { cpu, ept } = await twoContexts();
    expect(cpu.invvpid(2, 0)).toBe(true);
    expect(walksFor(cpu, ept, 1)).toBe(1);
    expect(walksFor(cpu, ept, 2)).toBe(1);
  });

  it('type 3 keeps global translations of the context', async () => {
    const { m, cpu, ept, gpt } = await twoContexts();
    const leaf = GUEST_BASE + gpt.entryAddr(VA, 1);
    m.memory.write64(leaf, m.memory.read64(leaf) | PTE.G);
    cpu.setRegisters({ cr4: CR4.PAE | CR4.PGE });
    cpu.flushTlb();
    cpu.translate(VA, {});                   // cached as global under VPID 1
    expect(cpu.invvpid(3, 1)).toBe(true);
    expect(walksFor(cpu, ept, 1)).toBe(0);   // survived
    expect(cpu.invvpid(1, 1)).toBe(true);
    expect(walksFor(cpu, ept, 1)).toBe(1);   // single-context drops globals too
  });
});
