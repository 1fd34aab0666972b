// Isolation: whatever VM A's page tables say — entries pointing at A's own memory, past
// its end, at gpas numerically equal to VM B's host frames, garbage — and whatever A
// does to its own tables while running, no access of A changes or returns B's bytes.
// B's memory carries a tag (0xB0B0 in every word's top 16 bits) that A never writes.
import { describe, it, expect, beforeAll } from 'vitest';
import fc from 'fast-check';
import { assertProperty } from '../../helpers/seeds.js';
import { PTE, Rng, hpaOf, type AccessBatch, type Hfn } from '../../../src/index.js';
import { Hypervisor, HV_OWNER, P2M, frameField, type Vm, type VcpuExit } from '../../../src/hypervisor/index.js';
import { guestTables, boot, runAll } from '../../helpers/guest.js';

const MiB = 2 ** 20;
const B_BYTES = 2 * MiB, A_BYTES = 4 * MiB;
const TAG_B = 0xb0b0n << 48n;
const VA = 0x4000_0000n;          // A's random data mappings
const PT_VA = 0xc000_0000n;       // A's view of its own page-table area
const PT_BASE = 0x1000n, PT_END = 0x4_0000n;
const PAGES = 48;

let hv: Hypervisor;
let bPattern: Uint8Array;
beforeAll(async () => {
  hv = await Hypervisor.create({ hostMemoryBytes: 32 * MiB });
  bPattern = new Uint8Array(B_BYTES);
  const dv = new DataView(bPattern.buffer);
  for (let o = 0; o < B_BYTES; o += 8) dv.setBigUint64(o, TAG_B | BigInt(o), true);
});

/** A random 64-bit value that is never B's tag. */
function garbage(r: Rng): bigint {
  let top = BigInt(r.u32() >>> 16);
  if (top === 0xb0b0n) top ^= 1n;
  return (top << 48n) | (BigInt(r.u32() & 0xffff) << 32n) | BigInt(r.u32());
}

function buildA(a: Vm, bFrames: number[], r: Rng): bigint {
  const pt = guestTables(a, PT_BASE, PT_END);
  const target = (): bigint => {
    const k = r.below(4);
    if (k === 0) return BigInt(r.below(A_BYTES / 4096)) * 4096n;            // A's own memory
    if (k === 1) return hpaOf(bFrames[r.below(bFrames.length)] as Hfn);     // B's frames, as gpas
    if (k === 2) return BigInt(A_BYTES + r.below(60 * MiB)) & ~0xfffn;      // past A's end
    return BigInt(r.below(32 * MiB)) & ~0xfffn;                            // anywhere in host memory
  };
  for (let i = 0; i < PAGES; i++) pt.map(VA + BigInt(i) * 4096n, target());
  for (let i = 0; i < 4; i++) pt.map(VA + 0x4000_0000n + BigInt(i) * 0x20_0000n, target() & ~0x1f_ffffn, 0x200000);
  pt.mapRange(PT_VA, PT_BASE, Number(PT_END - PT_BASE));
  // Garbage entries: random bits, random addresses, into random slots of the tables.
  for (let i = 0; i < 16; i++) {
    const at = PT_BASE + BigInt(r.below(Number(PT_END - PT_BASE) / 8)) * 8n;
    a.memory.write64(at, garbage(r) | PTE.P);
  }
  return pt.root;
}

function program(b: AccessBatch, r: Rng, n: number, root: bigint): void {
  const anyVa = (): bigint => {
    const k = r.below(8);
    if (k < 5) return VA + BigInt(r.below(PAGES)) * 4096n + BigInt(r.below(4)) * 8n;
    if (k < 6) return VA + 0x4000_0000n + BigInt(r.below(4)) * 0x20_0000n + BigInt(r.below(64)) * 8n;
    if (k < 7) return PT_VA + BigInt(r.below(Number(PT_END - PT_BASE) / 8)) * 8n;
    return BigInt(r.u32()) * 8n;                                           // unmapped, mostly
  };
  for (let i = 0; i < n; i++) {
    const k = r.below(20);
    if (k < 8) b.load(anyVa());
    else if (k < 16) b.store(anyVa(), garbage(r));
    else if (k < 17) b.fetch(anyVa(), 1);
    else if (k < 18) b.movCr3(r.below(2) ? root : BigInt(r.below(r.below(2) ? A_BYTES : 64 * MiB)) & ~0xfffn);
    else if (k < 19) b.invlpg(anyVa());
    else b.load(anyVa(), 8, { implicit: true });
  }
}

/** Everything A's translation hardware can reach: EPT leaves (nested) or shadow leaves (shadow). */
function reachableFrames(a: Vm): { frame: number; table: boolean }[] {
  const out: { frame: number; table: boolean }[] = [];
  a.ept!.forEachLeaf((_g, hfn, n) => { for (let i = 0; i < n; i++) out.push({ frame: hfn + i, table: false }); });
  const sh = a.vcpus[0].shadow;
  if (!sh) return out;
  const mem = hv.machine.memory;
  const walk = (table: bigint, level: number): void => {
    out.push({ frame: Number(table >> 12n), table: true });
    for (let i = 0n; i < 512n; i++) {
      const e = mem.read64(table + i * 8n);
      if (!(e & PTE.P)) continue;
      const addr = e & 0x000f_ffff_ffff_f000n;
      if (level === 1 || e & PTE.PS) out.push({ frame: Number(addr >> 12n), table: false });
      else walk(addr, level - 1);
    }
  };
  walk(a.vcpus[0].cpu.getRegisters().cr3 & 0x000f_ffff_ffff_f000n, 4);
  return out;
}

/** Exits seen across runs, to check the random programs exercise what they should. */
const seen: Record<string, number> = {};

function isolationRun(mode: 'nested' | 'shadow', seed: number): void {
  const r = new Rng(seed);
  const b = hv.createVm({ memoryBytes: B_BYTES, mode: 'nested' });
  const a = hv.createVm({ memoryBytes: A_BYTES, mode });
  try {
    b.memory.write(0n, bPattern);
    const bFrames: number[] = [];
    b.p2m.forEach((_g, w) => bFrames.push(frameField(w)), P2M.PRESENT, P2M.PRESENT);
    const vcpu = a.vcpus[0];
    const root = buildA(a, bFrames, r);
    boot(vcpu, root);
    const batch = hv.machine.createBatch(400);
    program(batch, r, 400, root);
    const fatal: VcpuExit[] = [];
    runAll(vcpu, batch, (x) => {
      seen[x.reason] = (seen[x.reason] ?? 0) + 1;
      if (x.reason === 'EPT_MISCONFIG' || x.reason === 'OUT_OF_FRAMES' || x.reason === 'unsupported') fatal.push(x);
      return x.index + 1;
    });
    expect(fatal).toEqual([]);
    // 1. B's bytes are intact.
    let changed = 0;
    b.p2m.forEach((g, w) => {
      const got = hv.machine.memory.read(hpaOf(frameField(w) as Hfn), 4096);
      if (Buffer.compare(got, bPattern.subarray(g * 4096, g * 4096 + 4096)) !== 0) changed++;
    }, P2M.PRESENT, P2M.PRESENT);
    expect(changed).toBe(0);
    expect(b.p2m.backed).toBe(B_BYTES / 4096);
    // 2. No load of A returned a word of B's.
    for (let i = 0; i < batch.length; i++) {
      if (batch.op(i).kind !== 'load') continue;
      expect(batch.value(i) >> 48n).not.toBe(0xb0b0n);
      if (batch.value(i) !== 0n) seen.nonZeroLoads = (seen.nonZeroLoads ?? 0) + 1;
    }
    seen.pagesBacked = (seen.pagesBacked ?? 0) + vcpu.stats.pagesBacked;
    // 3. A's hardware can reach only A's frames (and hypervisor-owned shadow tables).
    for (const { frame, table } of reachableFrames(a)) {
      expect(hv.frames.ownerOf(frame as Hfn)).toBe(table ? HV_OWNER : a.id);
    }
  } finally {
    hv.destroyVm(a);
    hv.destroyVm(b);
  }
}

describe('isolation between VMs', () => {
  it('a guest PTE holding the gpa equal to another VM\'s hpa reaches its own frame', () => {
    const b = hv.createVm({ memoryBytes: B_BYTES, mode: 'nested' });
    const a = hv.createVm({ memoryBytes: A_BYTES, mode: 'nested' });
    try {
      b.memory.write(0n, bPattern);
      const bHpa = b.memory.hpaOf(0x10_0000n);
      expect(bHpa).toBeGreaterThanOrEqual(PT_END);  // clear of A's page tables
      expect(bHpa).toBeLessThan(BigInt(A_BYTES));   // and a valid gpa of A
      const pt = guestTables(a, PT_BASE, PT_END);
      pt.map(VA, bHpa);
      boot(a.vcpus[0], pt.root);
      const batch = hv.machine.createBatch(4).load(VA).store(VA + 8n, 0xa0a0n);
      expect(a.vcpus[0].run(batch)).toEqual({ reason: 'end' });
      expect(batch.value(0)).toBe(0n);
      expect(Buffer.compare(hv.machine.memory.read(bHpa, 16), bPattern.subarray(0x10_0000, 0x10_0010))).toBe(0);
      expect(a.memory.read64(bHpa + 8n)).toBe(0xa0a0n);
    } finally {
      hv.destroyVm(a); hv.destroyVm(b);
    }
  });

  for (const mode of ['nested', 'shadow'] as const) {
    it(`random guest page tables never reach another VM's frames (${mode})`, () => {
      for (const k of Object.keys(seen)) delete seen[k];
      assertProperty(fc.property(fc.integer({ min: 1, max: 2 ** 31 - 1 }), (seed) => isolationRun(mode, seed)),
        { numRuns: 60, seed: 0x1501_a7ed });
      expect(hv.counts().byVm).toEqual({});
      expect(hv.counts().hypervisor).toBe(0);
      expect(seen.MMIO).toBeGreaterThan(100);          // tables pointing past the VM were used,
      expect(seen.PF).toBeGreaterThan(100);            // garbage / unmapped entries faulted,
      expect(seen.nonZeroLoads).toBeGreaterThan(100);  // A read its own data back,
      expect(seen.pagesBacked).toBeGreaterThan(100);   // and first touches were backed.
    });
  }
});
