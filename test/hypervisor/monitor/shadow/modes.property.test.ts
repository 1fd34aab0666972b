// Property test: one random guest walk, run as one batch op on a VM's vCPU under native,
// shadow and nested paging, must give the exit an independent expectation gives, field by
// field (reason, index, error code, CR2, va; for MMIO gpa, gva, write, final), and leave
// the guest's entries with the same A/D bits. The expectation is the reference model
// (test/model/x86ref.ts) over guest-physical memory plus one rule: a gpa outside the VM
// (a guest table or the data page) is an MMIO exit at the gpa of the access — the 8-byte
// entry for a table (final = false), the data gpa (final = true).
//
// MAXPHYADDR is a VM (vCPU) setting: 36, 40, 46 or 52, with reserved high address bits
// set often, so every walker acting for the vCPU (the core's, the shadow MMU's guest
// walker) must use it. VMs with and without TLBs and paging-structure caches.
//
// Seed: MODES_SEED (default fixed); runs per mode and cache setting: MODES_RUNS.

import { describe, it, expect, beforeAll } from 'vitest';
import fc from 'fast-check';
import { Hypervisor, type Vm, type VcpuExit } from '../../../../src/hypervisor/index.js';
import type { PhysicalMemory } from '../../../../src/index.js';
import { refTranslate, type RefResult, type WalkHooks } from '../../../core/model/x86ref.js';
import { OverlayMemory } from '../../../core/model/eptref.js';
import { PageTableBuilder, type PageSize } from '../../../helpers/pagetable.js';
import { walkCaseArb, entryValue, vaOf, regsOf, accessOf, rare, type WalkCase } from '../../../helpers/walkgen.js';

const SEED = Number(process.env.MODES_SEED ?? 0x3_0de5);
const RUNS = Number(process.env.MODES_RUNS ?? 1000);
const MiB = 1n << 20n;
const VM_BYTES = 8n * MiB;
const TABLE_BASE = 0x10_0000n, TABLE_LIMIT = 0x30_0000n; // guest tables (gpa)
const DATA_BASE = 4n * MiB;                               // in-VM data pages: [4, 8) MiB
const PHYS = [36, 40, 46, 52] as const;
const MODES = ['native', 'shadow', 'nested'] as const;
type Mode = typeof MODES[number];
const hex = (v: bigint | number): string => '0x' + v.toString(16);
const show = (r: unknown): string => JSON.stringify(r, (_, v) => (typeof v === 'bigint' ? hex(v) : v));

const caseArb = fc.record({
  walk: walkCaseArb({ frameBits: 24, rsvdHighOneIn: 12 }),
  phys: fc.constantFrom(...PHYS),
  near: fc.integer({ min: 0, max: 4 }).map((x) => x !== 0), // data page inside the VM
  tableOut: rare(6),                                           // a non-leaf entry points outside the VM
  outLevel: fc.integer({ min: 2, max: 5 }),
  outGfn: fc.integer({ min: 0, max: 0xfffff }),
  split: rare(4), // an 8-byte op at offset 0xffc: both pages are translated before a byte moves
}).map((c) => ({ ...c, walk: { ...c.walk, maxPhysAddr: c.phys, ctl: { ...c.walk.ctl, pcide: false } } as WalkCase }));
type Case = typeof caseArb extends fc.Arbitrary<infer T> ? T : never;

interface Env { vm: Vm; gmem: PhysicalMemory; batch: ReturnType<Hypervisor['machine']['createBatch']>; hostBytes: bigint }
const envs = new Map<string, Env>();

beforeAll(async () => {
  // Nested and shadow: one hypervisor per mode, one VM per (MAXPHYADDR, caches).
  for (const mode of ['shadow', 'nested'] as const) {
    const hv = await Hypervisor.create({ hostMemoryBytes: 16n * VM_BYTES + 32n * MiB, hypervisorBytes: 32 * 2 ** 20 });
    const batch = hv.machine.createBatch(1);
    for (const M of PHYS) for (const caches of [false, true]) {
      const vm = hv.createVm({ memoryBytes: VM_BYTES, mode, cpu: cpuOpts(M, caches) });
      envs.set(`${mode}:${M}:${caches}`, { vm, gmem: vm.memory.asPhysicalMemory(), batch, hostBytes: BigInt(hv.machine.memory.size) });
    }
  }
  // Native: the VM owns host frames [0, n), so one hypervisor each.
  for (const M of PHYS) for (const caches of [false, true]) {
    const hv = await Hypervisor.create({ hostMemoryBytes: VM_BYTES + 4n * MiB, hypervisorBytes: 4 * 2 ** 20 });
    const vm = hv.createVm({ memoryBytes: VM_BYTES, mode: 'native', cpu: cpuOpts(M, caches) });
    envs.set(`native:${M}:${caches}`, { vm, gmem: vm.memory.asPhysicalMemory(), batch: hv.machine.createBatch(1), hostBytes: BigInt(hv.machine.memory.size) });
  }
});

function cpuOpts(M: number, caches: boolean) {
  return caches ? { maxPhysAddr: M } : { maxPhysAddr: M, tlb: false as const, psc: false };
}

/** Writes the case's guest walk into guest memory; returns va, the entry gpas, the registers. */
function build(c: Case, gmem: PhysicalMemory) {
  const w = c.walk, M = w.maxPhysAddr;
  const va = vaOf(w);
  const pt = new PageTableBuilder(gmem, { levels: w.levels, tableBase: TABLE_BASE, tableLimit: TABLE_LIMIT });
  const size = (w.leafLevel === 1 ? 4096 : w.leafLevel === 2 ? 2097152 : 1073741824) as PageSize;
  const path = pt.map(va, 0n, { size });
  const inM = (1n << BigInt(M)) - 1n;
  path.forEach((gpa, i) => {
    const level = w.levels - i;
    const isLeaf = i === path.length - 1;
    let v = entryValue(w.entries[level - 1]!, level, isLeaf, M, gmem.read64(gpa) & inM & ~0xfffn);
    const span = isLeaf ? BigInt(size) : 4096n;
    const frame = inM & ~(span - 1n);
    if (isLeaf && c.near) v = (v & ~frame) | ((DATA_BASE + (w.entries[0]!.frame << 12n) % DATA_BASE) & frame);
    if (!isLeaf && c.tableOut && level === c.outLevel) v = (v & ~frame) | ((VM_BYTES + (BigInt(c.outGfn) << 12n)) & frame);
    gmem.write64(gpa, v);
  });
  return { va, path, regs: regsOf(w, pt.cr3) };
}

class Outside extends Error { constructor(readonly gpa: bigint, readonly final: boolean) { super('outside the VM'); } }

type Expect = RefResult | { ok: false; fault: 'OUTSIDE'; gpa: bigint; final: boolean };

/**
 * The reference model over guest-physical memory, with the outside-the-VM rule. Under
 * EPT (nested, and the shadow MMU's walker) the final gpa is refused before the guest's
 * A/D bits are written; natively the translation completes (A/D set) and then the
 * physical access finds no memory.
 */
function expected(mode: Mode, c: Case, mem: OverlayMemory, b: ReturnType<typeof build>, va: bigint): Expect {
  const hooks: WalkHooks = {
    readEntry(gpa) { if (gpa >= VM_BYTES) throw new Outside(gpa, false); return mem.read64(gpa); },
    writeEntry(gpa, v) { mem.write64(gpa, v); },
    commit(pa, pageSize) { if (pa >= VM_BYTES && mode !== 'native') throw new Outside(pa, true); return { pa, pageSize }; },
  };
  try {
    const r = refTranslate(mem, b.regs, va, accessOf(c.walk), [], hooks);
    return r.ok && r.pa >= VM_BYTES ? { ok: false, fault: 'OUTSIDE', gpa: r.pa, final: true } : r;
  } catch (e) {
    if (e instanceof Outside) return { ok: false, fault: 'OUTSIDE', gpa: e.gpa, final: e.final };
    throw e;
  }
}

/** The exit vcpu.run should return; null when the mode gives no defined answer (see below). */
function exitFor(mode: Mode, r: Expect, va: bigint, write: boolean, hostBytes: bigint): VcpuExit | null {
  if (r.ok) return { reason: 'end' };
  if (r.fault === 'PF') return { reason: 'PF', index: 0, errorCode: r.errorCode, cr2: r.cr2 } as VcpuExit;
  if (r.fault === 'GP') return { reason: 'GP', index: 0, va } as VcpuExit;
  if (mode !== 'native') return { reason: 'MMIO', index: 0, gpa: r.gpa, gva: va, write, final: r.final } as VcpuExit;
  // Native: gpa = hpa; memory past the VM is the host's (the hypervisor region), not
  // confined (see vm.ts). Only a final access past all of host memory has an answer.
  if (r.final && r.gpa >= hostBytes) return { reason: 'MMIO', index: 0, gpa: r.gpa, gva: va, write, final: true } as VcpuExit;
  return null;
}

class Tally {
  counts: Record<string, number> = { end: 0, PF: 0, rsvdPF: 0, GP: 0, MMIO_final: 0, MMIO_table: 0, skipped: 0, secondPage: 0 };
  add(x: VcpuExit | null): void {
    if (!x) { this.counts.skipped!++; return; }
    if (x.reason === 'MMIO') this.counts[x.final ? 'MMIO_final' : 'MMIO_table']!++;
    else this.counts[x.reason]!++;
    if (x.reason === 'PF' && x.errorCode & 8) this.counts.rsvdPF!++;
  }
}

function check(mode: Mode, caches: boolean, c: Case, tally: Tally): void {
  const env = envs.get(`${mode}:${c.walk.maxPhysAddr}:${caches}`)!;
  const vcpu = env.vm.vcpus[0]!;
  vcpu.shadow?.zapAll();
  vcpu.cpu.flushTlb();
  const b = build(c, env.gmem);
  vcpu.setRegisters(b.regs);
  const model = new OverlayMemory(env.gmem);
  const a = accessOf(c.walk);
  // A split op: the first page, then the second; the first refusal is the exit, at the
  // address of the page refused (CR2 = the op's va or the second page's first byte).
  const opVa = c.split ? (b.va | 0xfffn) - 3n : b.va;
  let at = opVa, r = expected(mode, c, model, b, opVa);
  const pastVm = !r.ok && r.fault === 'OUTSIDE' && r.final && mode === 'native'; // natively: both translations first
  if (c.split && (r.ok || pastVm)) {
    const r2 = expected(mode, c, model, b, (at = (opVa | 0xfffn) + 1n));
    if (!r2.ok || !pastVm) r = r2;
  }
  let want = exitFor(mode, r, at, !!a.write, env.hostBytes);
  if (c.split && want?.reason === 'MMIO' && mode === 'native') want = null; // which page's pa when both are out: the core's choice
  tally.add(want);
  if (!want) return;
  if (at !== opVa && want.reason !== 'end') tally.counts.secondPage!++;
  const batch = env.batch.clear();
  const o = { user: a.user, implicit: a.implicit };
  const size = c.split ? 8 : 1;
  if (a.write) batch.store(opVa, 0x5an, size, o);
  else if (a.fetch) batch.fetch(opVa, size, o);
  else batch.load(opVa, size, o);
  const got = vcpu.run(batch);
  const ctx = () => `${mode} caches=${caches}: op va=${hex(opVa)} size=${size} M=${c.walk.maxPhysAddr} levels=${c.walk.levels} ` +
    `access=${show(a)} regs=${show(b.regs)}\n` + b.path.map((g) => `entry gpa ${hex(g)} = ${hex(model.before.get(g) ?? env.gmem.read64(g))}`).join('\n');
  expect(got, ctx()).toEqual(want);
  for (const [gpa, v] of model.final()) expect(hex(env.gmem.read64(gpa)), `${ctx()}\nentry @${hex(gpa)}`).toBe(hex(v));
}

describe('native, shadow and nested exits match an independent expectation (fast-check)', () => {
  for (const mode of MODES) for (const caches of [false, true]) {
    it(`${mode}, ${caches ? 'TLBs and caches on' : 'no TLBs or caches'} (${RUNS} runs)`, () => {
      const tally = new Tally();
      fc.assert(fc.property(caseArb, (c) => check(mode, caches, c, tally)), { numRuns: RUNS, seed: SEED });
      if (process.env.MODES_VERBOSE) console.log(`${mode} caches=${caches}`, show(tally.counts));
      for (const k of ['end', 'PF', 'rsvdPF', 'GP', 'secondPage'] as const) expect(tally.counts[k], `${k}: ${show(tally.counts)}`).toBeGreaterThan(RUNS / 100);
      if (mode !== 'native') for (const k of ['MMIO_final', 'MMIO_table'] as const) expect(tally.counts[k], `${k}: ${show(tally.counts)}`).toBeGreaterThan(RUNS / 100);
    });
  }
});
