// Property test: the core's shadow fill (assembly/shadow-fill.ts, ShadowMmu.fastFill) is
// exactly the host's. The same random guest — 4 or 5 levels, NXE and CR0.WP on or off,
// 4 KiB leaves with random rights, A/D and protection keys (some mapping the guest's own
// page tables), upper entries with random rights, a guest 2 MiB page, edits of its own
// page-table entries at levels 1 and 2 (emulated, zapped), INVLPG,
// two address spaces, a small shadow pool that is zapped whole — runs on two identical
// hypervisors, one with the core's fill and one without. Every exit, every loaded value,
// the shadow MMU's and the vCPU's statistics and counters, and all of host memory
// (shadow tables, EPT, guest memory, byte for byte) must be the same.
//
// Seed: PROPERTY_SEED / PROPERTY_SEEDS (test/helpers/seeds.ts); runs: FAST_FILL_RUNS.

import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { assertAsyncProperty } from '../../../helpers/seeds.js';
import { Hypervisor, type Vm } from '../../../../src/hypervisor/index.js';
import { PageTableBuilder, FrameBump, PTE, CR0, CR4, EFER, type AccessBatch } from '../../../../src/index.js';
import { Rng } from '../../../../src/util/rng.js';

const RUNS = Number(process.env.FAST_FILL_RUNS ?? 12);
const MiB = 1n << 20n;
const VM_BYTES = 32n * MiB;
const TABLES = 0x10_0000n, TABLES_END = 0x80_0000n;  // guest page-table frames
const DATA = 0x100_0000n;                             // 4 KiB data frames: 16..24 MiB
const BIG = 0x180_0000n;                              // the guest 2 MiB page's frame
const USER_VA = 0x40_0000n, PAGES = 96;               // a 4 KiB region over two page tables
const BIG_VA = 0x4000_0000n;
const DMAP = 0xffff_8880_0000_0000n;                  // kernel direct map of guest memory

interface Case { seed: number; la57: boolean; nxe: boolean; wp: boolean; pool: number; tlb: boolean }

const caseArb = fc.record({
  seed: fc.integer({ min: 1, max: 2 ** 31 - 1 }),
  la57: fc.boolean(), nxe: fc.boolean(), wp: fc.boolean(),
  pool: fc.constantFrom(24, 4096),   // 24: the pool is zapped whole now and then
  tlb: fc.boolean(),
});

/** A data frame, or now and then one of the guest's page-table frames (its writes are emulated). */
const frameOf = (rng: Rng): bigint =>
  (rng.below(8) === 0 ? TABLES + BigInt(rng.below(24)) * 4096n : DATA + BigInt(rng.below(2048)) * 4096n);

/** The guest's tables: two address spaces; returns the roots and the gpas of space 0's user PTEs and PDEs. */
function buildTables(gmem: Vm['memory'], c: Case, rng: Rng): { roots: bigint[]; ptes: bigint[]; pdes: bigint[] } {
  const gm = gmem.asPhysicalMemory();
  const frames = new FrameBump(gm, TABLES, TABLES_END);
  const roots: bigint[] = [], ptes: bigint[] = [], pdes: bigint[] = [];
  for (let s = 0; s < 2; s++) {
    const pt = new PageTableBuilder(gm, frames, c.la57 ? 5 : 4);
    pt.mapRange(DMAP, 0n, Number(VM_BYTES), 0x20_0000, { user: false });
    for (let i = 0; i < PAGES; i++) {
      const va = USER_VA + BigInt(i) * 4096n;
      if (rng.below(10) === 0) continue; // a hole
      pt.map(va, frameOf(rng), 4096, {
        write: rng.below(3) !== 0, user: rng.below(5) !== 0, nx: rng.below(4) === 0,
        accessed: rng.below(3) === 0, dirty: rng.below(3) === 0, pkey: rng.below(4) === 0 ? rng.below(16) : 0,
      });
      if (s === 0) ptes[i] = pt.entryAddr(va, 1);
    }
    for (let i = 0; i < PAGES; i++) if (s === 0 && ptes[i] === undefined) ptes[i] = pt.entryAddr(USER_VA + BigInt(i) * 4096n, 1);
    pt.map(BIG_VA, BIG, 0x20_0000, { write: rng.below(2) === 0, user: true, nx: rng.below(3) === 0 });
    // Rights on the way down differ per path: the shadow links must carry them.
    for (const va of [USER_VA, USER_VA + 0x20_0000n]) {
      const at = pt.entryAddr(va, 2);
      if (s === 0) pdes.push(at);
      const e = gm.read64(at);
      gm.write64(at, (e & ~(PTE.W | PTE.U | PTE.XD)) | (rng.below(4) ? PTE.W : 0n) | (rng.below(4) ? PTE.U : 0n) |
        (rng.below(5) ? 0n : PTE.XD));
    }
    roots.push(pt.root);
  }
  return { roots, ptes, pdes };
}

/** The guest program: accesses, page-table edits through the direct map, INVLPG, CR3 switches. */
function program(b: AccessBatch, rng: Rng, t: ReturnType<typeof buildTables>, ops: number): void {
  const { roots, ptes, pdes } = t;
  for (let i = 0; i < ops; i++) {
    const r = rng.below(100), page = rng.below(PAGES), user = rng.below(3) === 0;
    const va = USER_VA + BigInt(page) * 4096n + BigInt(rng.below(4096 - 8));
    if (r < 30) b.store(va, BigInt(rng.u32()) << 8n | BigInt(i & 255), 1 + rng.below(8), { user });
    else if (r < 65) b.load(va, 1 + rng.below(8), { user });
    else if (r < 70) b.fetch(va, 1 + rng.below(4), { user });
    else if (r < 76) {
      const off = BigInt(rng.below(0x20_0000 - 8));
      if (rng.below(2)) b.load(BIG_VA + off, 8, { user }); else b.store(BIG_VA + off, BigInt(i), 8, { user });
    } else if (r < 88) {
      // The guest edits one of its PTEs (a write to a write-protected table), then INVLPGs.
      const e = frameOf(rng) | PTE.P | (rng.below(3) ? PTE.W : 0n) |
        (rng.below(4) ? PTE.U : 0n) | (rng.below(5) ? 0n : PTE.XD) | (rng.below(3) ? 0n : PTE.A | PTE.D);
      b.store(DMAP + ptes[page], rng.below(6) === 0 ? 0n : e, 8);
      if (rng.below(4)) b.invlpg(USER_VA + BigInt(page) * 4096n);
    } else if (r < 90) {
      // New rights in a PDE above the region (same table): the links below it must change.
      const k = rng.below(pdes.length);
      const rights = (rng.below(4) ? PTE.W : 0n) | (rng.below(4) ? PTE.U : 0n) | (rng.below(5) ? 0n : PTE.XD);
      b.store(DMAP + pdes[k], (rng.below(8) ? PTE.P : 0n) | (rights & 0xffn), 1); // low byte: P, W, U (A dropped)
      b.store(DMAP + pdes[k] + 7n, rights >> 56n, 1);                          // high byte: XD
      if (rng.below(2)) b.movCr3(roots[0]); else b.invlpg(USER_VA + BigInt(k) * 0x20_0000n);
    } else if (r < 93) b.movCr3(roots[rng.below(2)]);
    else b.load(DMAP + BigInt(rng.below(Number(VM_BYTES) / 8 - 1)) * 8n, 8); // the kernel reads anywhere
  }
}

const show = (v: unknown): unknown => JSON.parse(JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? '0x' + x.toString(16) : x)));

async function runCase(c: Case, fast: boolean) {
  const hv = await Hypervisor.create({ hostMemoryBytes: VM_BYTES + 16n * MiB, hypervisorBytes: 16 * 2 ** 20 });
  const cpu = c.tlb ? {} : { tlb: false as const, psc: false };
  const vm = hv.createVm({ memoryBytes: VM_BYTES, mode: 'shadow', cpu, shadowPoolPages: c.pool });
  const rng = new Rng(c.seed);
  const tables = buildTables(vm.memory, c, rng);
  const v = vm.vcpus[0], sh = v.shadow!;
  sh.fastFill = fast;
  v.setRegisters({
    cr0: CR0.PG | (c.wp ? CR0.WP : 0n), cr3: tables.roots[0], cr4: CR4.PAE | (c.la57 ? CR4.LA57 : 0n),
    efer: EFER.LME | (c.nxe ? EFER.NXE : 0n), cpl: 0,
  });
  const b = hv.machine.createBatch(1024);
  program(b, rng, tables, 700);
  const exits: unknown[] = [];
  for (let at = 0; ;) { // the guest kernel skips every op that exits to it
    const x = v.run(b, at);
    if (x.reason === 'end') break;
    exits.push(show(x));
    at = x.index + 1;
  }
  const values = Array.from({ length: b.length }, (_, i) => b.value(i));
  const memory = hv.machine.memory.read(0n, hv.machine.memory.size);
  return { exits, values, memory, shadowStats: { ...sh.stats }, vcpuStats: { ...v.stats }, vcpuExits: { ...v.exits },
    counters: v.counters(), walker: sh.walker.counters(), fills: { ...sh.fills }, regs: show(sh.guestRegisters()) };
}

describe('the core\'s shadow fill', () => {
  it('gives the host fill\'s shadow tables, stats, exits and guest results', async () => {
    const seen = { coreFills: 0, ptWritesEmulated: 0, emulated: 0, zapAlls: 0, cr3Switches: 0 };
    await assertAsyncProperty(fc.asyncProperty(caseArb, async (c) => {
      const [on, off] = [await runCase(c, true), await runCase(c, false)];
      expect(off.fills.core).toBe(0);
      expect(on.fills.core + on.fills.host).toBe(off.fills.host);
      expect(on.exits).toEqual(off.exits);
      expect(on.values).toEqual(off.values);
      expect(on.shadowStats).toEqual(off.shadowStats);
      expect(on.vcpuStats).toEqual(off.vcpuStats);
      expect(on.vcpuExits).toEqual(off.vcpuExits);
      expect(on.counters).toEqual(off.counters);
      expect(on.walker).toEqual(off.walker);
      expect(on.regs).toEqual(off.regs);
      expect(Buffer.compare(Buffer.from(on.memory), Buffer.from(off.memory))).toBe(0);
      expect(on.fills.host).toBeGreaterThan(0); // first fills under each table, large pages
      for (const k of ['ptWritesEmulated', 'emulated', 'zapAlls', 'cr3Switches'] as const) seen[k] += on.shadowStats[k];
      seen.coreFills += on.fills.core;
    }), { numRuns: RUNS, seed: 0x5f_f111 });
    // What the programs are meant to exercise: both fills, emulated table writes and
    // CR0.WP=0 writes, pool zaps, address-space switches.
    for (const [k, n] of Object.entries(seen)) expect(n, k).toBeGreaterThan(0);
  }, 120_000);

  it('finds shadow pages by tags that zapAll and VM destroy clear', async () => {
    const hv = await Hypervisor.create({ hostMemoryBytes: VM_BYTES + 16n * MiB, hypervisorBytes: 16 * 2 ** 20 });
    const vm = hv.createVm({ memoryBytes: VM_BYTES, mode: 'shadow' });
    const c: Case = { seed: 7, la57: false, nxe: true, wp: true, pool: 4096, tlb: true };
    const rng = new Rng(c.seed), tables = buildTables(vm.memory, c, rng);
    const v = vm.vcpus[0], sh = v.shadow!;
    v.setRegisters({ cr0: CR0.PG | CR0.WP, cr3: tables.roots[0], cr4: CR4.PAE, efer: EFER.LME | EFER.NXE, cpl: 0 });
    const b = hv.machine.createBatch(1024);
    program(b, rng, tables, 300);
    for (let at = 0; ;) { const x = v.run(b, at); if (x.reason === 'end') break; at = x.index + 1; }
    const core = hv.machine.core, frames = hv.machine.memory.size / 4096;
    const tagged = () => Array.from({ length: frames }, (_, h) => core.shadowTagOf(h)).filter((t) => t !== 0);
    expect(sh.fills.core).toBeGreaterThan(0);
    expect(tagged().length).toBeGreaterThan(3);
    sh.zapAll(); // the root of the current CR3 is made again at once
    const root = Number((sh.guestRegisters().cr3 & 0xf_ffff_ffff_f000n) >> 12n);
    expect(tagged()).toEqual([root * 8 + 4]);
    vm.destroy();
    expect(tagged()).toEqual([]);
  });
});
