// The miss loops (assembly/miss.ts, miss-nested.ts) refill the L1 from an L2 hit with the
// victim lookup would take. For a global L2 entry filled under another PCID that is not
// the L1 probe's noted victim: tlb.ts fill scans the set, and a stale non-global entry of
// the same page and that PCID (which the probe rightly did not match) is the one replaced.
// Found in review; no property case reached it (it needs a page made global without an
// INVLPG, then a CR3 switch to another PCID). Native and nested paging, both paths.

import { describe, it, expect } from 'vitest';
import { Machine, FrameBump, CR0, CR4, EFER, PTE, EPT, eptp, type PhysicalMemory } from '../../src/index.js';
import { readCache } from '../../src/core/tlb-view.js';
import { Tables } from '../helpers/tables.js';
import { Ept } from '../helpers/ept.js';

const MiB = 1n << 20n;
const VA = 0x7f00_0000_0000n;
const GUEST_BASE = 4n * MiB; // nested: guest-physical 0 is host-physical 4 MiB

/** Runs the sequence; returns the L1 and L2 data TLBs as `page/pPCID[G]@stamp`. */
async function run(fast: boolean, nested: boolean): Promise<{ l1: string[]; l2: string[] }> {
  const m = await Machine.create({ memoryBytes: 16 * 2 ** 20 });
  const small = { entries: 4, ways: 4 }; // one set each: every fill picks among the same four ways
  const cpu = m.createCpu({ tlb: { l1d4k: small, l2: small } });
  cpu.setFastPaths(fast);
  const base = nested ? GUEST_BASE : 0n;
  const guest = {
    read64: (a: bigint) => m.memory.read64(base + a), write64: (a: bigint, v: bigint) => m.memory.write64(base + a, v),
    fill: (a: bigint, b: number, n: number) => m.memory.fill(base + a, b, n),
  } as unknown as PhysicalMemory;
  const t = new Tables(guest, 4, 0x10_0000n, true);
  const [T, A1, A2, A3, A4] = [0, 1, 2, 3, 4].map((k) => VA + BigInt(k) * 0x1000n);
  [T, A1, A2, A3, A4].forEach((va, k) => t.map(va, 0x40_0000n + BigInt(k) * 0x1000n));
  cpu.setRegisters({ cr0: CR0.PE | CR0.PG | CR0.WP, cr3: t.root | 1n, cr4: CR4.PAE | CR4.PCIDE | CR4.PGE, efer: EFER.LME | EFER.NXE });
  if (nested) {
    const ept = new Ept(m.memory, new FrameBump(m.memory, 12n * MiB, 16n * MiB), 4);
    ept.map(0n, GUEST_BASE, 8n * MiB, 0x1000n);
    // EPT A/D on, already set on the pages used, so every EPT translation is the quick one
    const used = [0n, 1n, 2n, 3n, 4n, 5n, 6n, 7n].map((k) => 0x10_0000n + k * 0x1000n)
      .concat([0n, 1n, 2n, 3n, 4n].map((k) => 0x40_0000n + k * 0x1000n));
    for (const gpa of used) {
      for (let l = 4; l >= 1; l--) { const at = ept.entryAddr(gpa, l); m.memory.write64(at, m.memory.read64(at) | EPT.A | (l === 1 ? EPT.D : 0n)); }
    }
    cpu.setVmcs({ mode: 'nested', eptp: eptp(ept.root, 4, true), vpid: 1 });
  }
  // T stays in the L1 (hits) while the other pages push it out of the L2.
  const b1 = m.createBatch(8);
  b1.load(T).load(A1).load(T).load(A2).load(T).load(A3).load(T).load(A4);
  expect(cpu.execute(b1)).toEqual({ completed: 8, exit: { reason: 'end' } });
  t.modify(T, 1, PTE.G); // the guest makes T global without an INVLPG
  // A fetch walks T again: the I-TLB and the L2 get (T, PCID 1, global). Under PCID 2 a
  // load of T misses the L1 (its stale entry is PCID 1, not global) and hits the L2.
  const b2 = m.createBatch(3);
  b2.fetch(T).movCr3(t.root | 2n).load(T);
  expect(cpu.execute(b2)).toEqual({ completed: 3, exit: { reason: 'end' } });
  const core = (cpu as unknown as { core: Parameters<typeof readCache>[0] }).core;
  const ptr = (cpu as unknown as { ptr: number }).ptr;
  const show = (name: 'l1d4k' | 'l2') => readCache(core, ptr, name).entries
    .map((e) => e.valid ? `${e.tag & 0xfn}/p${e.pcid}${e.global ? 'G' : ''}@${e.stamp}` : '-');
  return { l1: show('l1d4k'), l2: show('l2') };
}

describe('an L1 refill from a global L2 entry of another PCID', () => {
  for (const nested of [false, true]) {
    it(`replaces the stale entry of that page, as the general path does (${nested ? 'nested' : 'native'} paging)`, async () => {
      const fast = await run(true, nested), slow = await run(false, nested);
      expect(fast).toEqual(slow);
      // The global entry took the stale one's way; A2 (page 2) is still cached.
      expect(fast.l1).toEqual(['0/p1G@10', '4/p1@8', '2/p1@4', '3/p1@6']);
    });
  }
});
