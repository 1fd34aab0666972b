// Shadow paging specifics: A/D emulation, stale TLB behaviour, the root cache, write
// protection of guest page tables, reflected faults.
import { describe, it, expect } from 'vitest';
import { FrameBump, PTE, PFEC } from '../../../../src/index.js';
import { runGuest, addressSpace, DMAP } from '../../../helpers/modes.js';

const VA = 0x40_0000n;
const DATA = 0x100_0000n;
let ptePa = 0n; // gpa of the PTE for VA

function build(extra?: (roots: bigint[]) => void) {
  return (gmem: Parameters<typeof addressSpace>[0]) => {
    const frames = new FrameBump(gmem, 0x10_0000n, 0x80_0000n);
    const roots = [0, 1].map((s) => addressSpace(gmem, frames, (pt) => {
      pt.map(VA, DATA, 4096);
      pt.map(VA + 0x1000n, DATA + 0x1000n, 4096, { write: false });
      if (s === 0) ptePa = pt.entryAddr(VA, 1); // the PTE of the space the guest starts in
    }));
    extra?.(roots);
    return roots;
  };
}

describe('shadow paging', () => {
  it('emulates guest A/D: A after a read, D only after a write', async () => {
    let readPte = 0n;
    const r = await runGuest('shadow', {
      build: build(),
      program(b) {
        b.load(VA);
        b.load(DMAP + ptePa); // the guest reads its own PTE
        b.store(VA + 8n, 1n);
        b.load(DMAP + ptePa);
      },
    });
    readPte = r.loads[1];
    expect(readPte & (PTE.A | PTE.D)).toBe(PTE.A);
    expect(r.loads[2] & (PTE.A | PTE.D)).toBe(PTE.A | PTE.D);
  });

  it('a guest that forgets INVLPG keeps the stale translation; INVLPG fixes it (as natively)', async () => {
    for (const mode of ['native', 'shadow'] as const) {
      const r = await runGuest(mode, {
        build: build(),
        program(b) {
          b.store(VA, 0x1111n);                        // frame DATA
          b.store(DMAP + DATA + 0x5000n, 0x5555n);     // frame DATA+5 holds 0x5555
          b.store(DMAP + ptePa, (DATA + 0x5000n) | PTE.P | PTE.W); // retarget VA, no INVLPG
          b.load(VA);                                  // stale: still DATA
          b.invlpg(VA);
          b.load(VA);                                  // now DATA+5
        },
      });
      expect(r.loads, mode).toEqual([0x1111n, 0x5555n]);
    }
  });

  it('reflects faults the guest tables forbid, with the guest error code', async () => {
    const r = await runGuest('shadow', {
      build: build(),
      program(b) { b.store(VA + 0x1000n, 1n); b.load(VA + 0x2000n, 8, { user: true }); },
    });
    expect(r.faults).toEqual([
      { index: 0, errorCode: PFEC.P | PFEC.W, cr2: VA + 0x1000n },
      { index: 1, errorCode: PFEC.U, cr2: VA + 0x2000n },
    ]);
    expect(r.shadow!.stats.reflectedFaults).toBe(2);
  });

  it('caches shadow roots per guest CR3: switching back builds nothing', async () => {
    let roots: bigint[] = [];
    const r = await runGuest('shadow', {
      build: build((rs) => { roots = rs; }),
      program(b, rs) {
        b.load(VA);
        b.movCr3(rs[1]); b.load(VA);
        b.movCr3(rs[0]); b.load(VA);
        b.movCr3(rs[1]); b.load(VA);
      },
    });
    const st = r.shadow!.stats;
    expect(roots.length).toBe(2);
    expect(st.cr3Switches).toBe(3);
    expect(st.rootCacheHits).toBeGreaterThanOrEqual(2);
    // two roots, each with its own PDPT/PD/PT chain for VA; the direct map is not touched
    expect(st.shadowPages).toBe(8);
  });

  it('write-protects guest page tables in the shadow and emulates writes to them', async () => {
    const r = await runGuest('shadow', {
      build: build(),
      program(b) {
        b.load(VA);                                   // shadows the tables for VA
        b.store(DMAP + ptePa, 0n);                    // unmap VA: a trapped, emulated write
        b.invlpg(VA);
        b.load(VA);                                   // now a guest #PF
      },
    });
    expect(r.shadow!.stats.ptWritesEmulated).toBe(1);
    expect(r.faults).toEqual([{ index: 3, errorCode: 0, cr2: VA }]);
    // the shadow leaf for the PT page's direct-map alias is read-only
    expect(r.shadow!.stats.protectedFrames).toBeGreaterThanOrEqual(4);
  });
});
