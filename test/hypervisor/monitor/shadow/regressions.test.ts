// Regression tests for shadow-paging bugs found in review (scratch/rv_shadow_*.mts): the
// same guest program must behave the same under native, shadow and nested paging, and a
// shadow MMU under page pressure must never let the guest reach host memory.
import { describe, it, expect } from 'vitest';
import { FrameBump, PageTableBuilder, ShadowMmu, CR0, CR4, EFER, PTE } from '../../../../src/index.js';
import { GuestMachine } from '../../../../src/experiment/modes.js';
import { HV_OWNER } from '../../../../src/hypervisor/monitor/frames.js';
import { runGuest, addressSpace, DMAP, GUEST_BYTES, type GuestRun, type GuestSetup } from '../../../helpers/modes.js';

const F = PTE.P | PTE.W | PTE.U;
const tables = (gmem: Parameters<typeof addressSpace>[0]) => new FrameBump(gmem, 0x10_0000n, 0x80_0000n);

/** Runs setup under all three modes; shadow and nested must equal native (faults, loads, memory). */
async function allModes(setup: () => GuestSetup): Promise<GuestRun> {
  const [n, s, e] = await Promise.all((['native', 'shadow', 'nested'] as const).map((m) => runGuest(m, setup())));
  for (const [name, r] of [['shadow', s], ['nested', e]] as const) {
    expect(r.faults, `${name} faults`).toEqual(n.faults);
    expect(r.loads, `${name} loads`).toEqual(n.loads);
    expect(Buffer.compare(Buffer.from(r.memory), Buffer.from(n.memory)), `${name} memory`).toBe(0);
  }
  return n;
}

describe('shadow paging regressions', () => {
  const VA = 0x4000_0000n, A = 0x100_0000n, B = 0x120_0000n;

  // Guards: INVLPG of a remapped guest 2 MiB page dropped only one 4 KiB piece, so the old frame stayed visible.
  it('INVLPG after remapping a 2 MiB page drops the whole old translation', async () => {
    const n = await allModes(() => {
      let pde = 0n;
      return {
        build(gmem) {
          const root = addressSpace(gmem, tables(gmem), (pt) => { pt.map(VA, A, 0x200000); pde = pt.entryAddr(VA, 2); });
          gmem.write64(A + 0x1000n, 0xaaaan); gmem.write64(B + 0x1000n, 0xbbbbn);
          return [root];
        },
        program(b) {
          b.load(VA + 0x1000n);
          b.store(DMAP + pde, B | F | PTE.PS);
          b.invlpg(VA);
          b.load(VA + 0x1000n);
        },
      };
    });
    expect(n.loads.slice(0, 2)).toEqual([0xaaaan, 0xbbbbn]);
  });

  // Guards: a 2 MiB page's direct shadow table kept writable pieces after the guest cleared D, so D was never set again.
  it('sets D of a 2 MiB PDE again after the guest clears it and flushes', async () => {
    const n = await allModes(() => {
      let pde = 0n;
      return {
        build(gmem) { return [addressSpace(gmem, tables(gmem), (pt) => { pt.map(VA, A, 0x200000); pde = pt.entryAddr(VA, 2); })]; },
        program(b, roots) {
          b.store(VA + 0x1000n, 1n);
          b.store(DMAP + pde, A | F | PTE.PS | PTE.A); // D cleared
          b.movCr3(roots[0]);
          b.load(VA);
          b.store(VA + 0x1000n, 2n);
          b.load(DMAP + pde);
        },
      };
    });
    expect(n.loads[1] & PTE.D).toBe(PTE.D);
  });

  // Guards: write-protecting a page-table frame invalidated only the gva that filled the spte, not its other aliases.
  it('write-protects every alias of a frame that becomes a page table', async () => {
    const VA1 = 0x40_0000n, VA2 = 0x60_0000n, VA3 = 0x80_0000n;
    const X = 0x100_0000n, Y = 0x100_1000n, Z = 0x100_2000n;
    const n = await allModes(() => {
      let pde3 = 0n;
      return {
        build(gmem) {
          const root = addressSpace(gmem, tables(gmem), (pt) => {
            pt.map(VA1, X, 4096);
            gmem.write64(pt.entryAddr(VA2, 2), gmem.read64(pt.entryAddr(VA1, 2))); // PDE2 → the same PT
            pde3 = pt.entryAddr(VA3, 2);
          });
          gmem.write64(Y, 0xaaaan); gmem.write64(Z, 0xbbbbn);
          gmem.write64(X, Y | F); // X[0] → Y; X is not a page table yet
          return [root];
        },
        program(b) {
          b.load(VA1);
          b.store(VA1 + 8n, 1n);       // VA1 writable in the TLB
          b.store(VA2 + 8n, 2n);       // the shared shadow PT gets reached through VA2
          b.store(DMAP + pde3, X | F); // X becomes a page table for VA3
          b.load(VA3);                 // shadows and write-protects X
          b.store(VA1, Z | F);         // rewrites X[0] through VA1: must be trapped
          b.invlpg(VA3);
          b.load(VA3);
        },
      };
    });
    expect(n.faults).toEqual([]);
    expect(n.loads).toEqual([Y | F, 0xaaaan, 0xbbbbn]);
  });

  // Guards: a shadow PT shared by two guest PDEs with different rights took the first PDE's rights (W) for both.
  it('a shadow page shared by a writable and a read-only PDE keeps each path\'s rights', async () => {
    const VA1 = 0x40_0000n, VA2 = 0x60_0000n, DATA = 0x100_0000n;
    const n = await allModes(() => ({
      build(gmem) {
        return [addressSpace(gmem, tables(gmem), (pt) => {
          pt.map(VA1, DATA, 4096); pt.map(VA1 + 0x1000n, DATA + 0x1000n, 4096);
          const pde1 = pt.entryAddr(VA1, 2);
          gmem.write64(pt.entryAddr(VA2, 2), gmem.read64(pde1) & ~PTE.W); // same PT, read-only
        })];
      },
      regs: { cpl: 3 },
      program(b) {
        b.store(VA1, 0x1111n);
        b.load(VA2 + 0x1000n); // links PDE2 to the shared shadow PT
        b.store(VA2, 0x2222n); // PDE2 has W=0: #PF(P|W|U)
        b.load(VA1);
      },
    }));
    expect(n.faults).toEqual([{ index: 2, errorCode: 7, cr2: VA2 }]);
    expect(n.loads).toEqual([0n, 0x1111n]);
  });

  // Guards: emulating a split store on a write-protected page table threw (or wrote the first page) when the second page faults.
  it('a split store from a page-table page into an unmapped page is a #PF(W) that writes nothing', async () => {
    const VA3 = 0x40_0000n;
    const n = await allModes(() => ({
      build(gmem) {
        return [addressSpace(gmem, tables(gmem), (pt) => {
          pt.map(VA3, pt.entryAddr(VA3, 1) & ~0xfffn, 4096); // VA maps its own PT page; VA+0x1000 unmapped
        })];
      },
      program(b) {
        b.load(VA3);                                       // shadows and write-protects the PT page
        b.store(VA3 + 0xffcn, 0x1122_3344_5566_7788n, 8);  // crosses into the unmapped page
      },
    }));
    expect(n.faults).toEqual([{ index: 1, errorCode: 2, cr2: VA3 + 0x1000n }]);
  });

  // Guards: a trapped store spanning two PTEs must drop the shadow entries of both, not the first only.
  it('an 8-byte store at offset 4 of a PTE retargets the next PTE, seen after INVLPG', async () => {
    const VA1 = 0x40_0000n, VA2 = VA1 + 0x1000n;
    const X = 0x100_0000n, Y = 0x100_1000n, Z = 0x100_2000n;
    const n = await allModes(() => {
      let pte1 = 0n;
      return {
        build(gmem) {
          const root = addressSpace(gmem, tables(gmem), (pt) => {
            pt.map(VA1, X, 4096); pt.map(VA2, Y, 4096);
            pte1 = pt.entryAddr(VA1, 1);
          });
          gmem.write64(X, 0xaaaan); gmem.write64(Y, 0xbbbbn); gmem.write64(Z, 0xccccn);
          return [root];
        },
        program(b) {
          b.load(VA1);
          b.load(VA2); // both PTEs shadowed; their PT page is write-protected
          // Bytes 4..7 of PTE1 (its high half, unchanged) and bytes 0..3 of PTE2: VA2 → Z.
          b.store(DMAP + pte1 + 4n, ((Z | F) << 32n) & 0xffff_ffff_ffff_ffffn, 8);
          b.invlpg(VA2);
          b.load(VA2);
          b.load(VA1);
        },
      };
    });
    expect(n.faults).toEqual([]);
    expect(n.loads).toEqual([0xaaaan, 0xbbbbn, 0xccccn, 0xaaaan]);
  });

  // Guards: zapAll() inside fill() let link() write into a freed, reused shadow frame, giving the guest host memory.
  it('under shadow-page pressure the guest never reaches host memory outside its own', async () => {
    const VA_A = 0x40_0000n, VA_B = 0x60_0000n;
    const gm = await GuestMachine.create('shadow', { guestBytes: GUEST_BYTES, hostPage: 0x200000 });
    const pt = new PageTableBuilder(gm.gmem, tables(gm.gmem), 4);
    pt.map(VA_A, 0x100_0000n, 4096);
    pt.map(VA_B, 0x100_1000n, 4096);
    pt.map(VA_B + 0x3000n, 0x100_2000n, 4096);
    gm.gmem.write64(0x100_2000n, 0x5a5an);
    // A host frame outside the guest holding a secret.
    const secret = BigInt(gm.hv.frames.alloc(HV_OWNER)) * 4096n;
    gm.m.memory.write64(secret, 0xdeadbeefn);
    // The VM's backing, but freed table frames are reused first (LIFO), as in a real allocator.
    const vmBacking = gm.vm.shadowBacking(), free: bigint[] = [];
    const backing = {
      ...vmBacking,
      allocTableFrame: () => {
        const f = free.pop();
        if (f === undefined) return vmBacking.allocTableFrame();
        gm.m.memory.fill(f, 0, 4096);
        return f;
      },
      freeTableFrame: (h: bigint) => { free.push(h); },
    };
    const mmu = new ShadowMmu(gm.m, gm.cpu, backing, 4); // room for 4 shadow pages only
    (gm.vcpu as { shadow?: ShadowMmu }).shadow = mmu;
    gm.start(pt.root, { cr0: CR0.PG | CR0.WP | CR0.PE, cr4: CR4.PAE, efer: EFER.LME | EFER.LMA | EFER.NXE, cpl: 3 });
    const b = gm.m.createBatch(16);
    b.load(VA_A);
    b.load(VA_B);                                       // a fill under pressure
    b.load(VA_B + 0x3000n);
    b.store(VA_B + 0x3000n + 5n * 8n, secret | 0x67n);  // harmless data, unless VA_B+3 pages maps a shadow PT
    b.load(VA_B + 0x5000n);                             // unmapped for the guest: must #PF
    const faults: { index: number; errorCode: number; cr2: bigint }[] = [];
    gm.run(b, (x) => { faults.push({ index: x.index, errorCode: x.errorCode, cr2: x.cr2 }); return x.index + 1; });
    expect(mmu.stats.zapAlls).toBeGreaterThan(0);
    expect([0, 1, 2].map((i) => b.value(i))).toEqual([0n, 0n, 0x5a5an]);
    expect(gm.gmem.read64(0x100_2028n)).toBe(secret | 0x67n); // the store went to the guest's data page
    expect(faults).toEqual([{ index: 4, errorCode: 4, cr2: VA_B + 0x5000n }]);
    expect(b.value(4)).not.toBe(0xdeadbeefn);
  });
});

// Guards (issue 9): an emulated store (to a guest page table) crossing into a non-canonical
// page threw "guest walk gave GP" in the shadow MMU; natively and under EPT it is #GP at the
// second page's first byte, with nothing written.
describe('shadow emulation of an access that crosses into a non-canonical page', () => {
  it('gives the same #GP as native and nested paging, writing nothing', async () => {
    const { Hypervisor } = await import('../../../../src/hypervisor/index.js');
    const { guestTables, boot } = await import('../../../helpers/guest.js');
    const LAST = 0x7fff_ffff_f000n; // the last canonical page of the lower half
    for (const mode of ['native', 'nested', 'shadow'] as const) {
      const hv = await Hypervisor.create({ hostMemoryBytes: 64 * 2 ** 20 });
      const vm = hv.createVm({ memoryBytes: 32 * 2 ** 20, mode });
      const pt = guestTables(vm);
      pt.map(LAST, 0x10_0000n, 4096); // maps the guest's own PML4 page: a write-protected page table under shadow
      boot(vm.vcpus[0], pt.root);
      const before = vm.memory.asPhysicalMemory().read64(0x10_0ff8n);
      const b = hv.machine.createBatch(2);
      b.load(LAST, 8).store(LAST + 0xffcn, 0x1122334455667788n, 8);
      expect(vm.vcpus[0].run(b), mode).toEqual({ reason: 'GP', index: 1, va: 0x8000_0000_0000n });
      expect(vm.memory.asPhysicalMemory().read64(0x10_0ff8n), mode).toBe(before);
    }
  });
});
