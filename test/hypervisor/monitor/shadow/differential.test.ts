// The same guest program leaves byte-identical guest memory, the same loaded values and
// the same guest-visible faults under native, shadow and nested paging.
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { assertAsyncProperty } from '../../../helpers/seeds.js';
import { FrameBump, PTE, type PhysicalMemory } from '../../../../src/index.js';
import { runGuest, addressSpace, DMAP, type GuestSetup } from '../../../helpers/modes.js';
import { Rng } from '../../../../src/util/rng.js';

const USER_VA = 0x40_0000n;      // a 64-page user region
const PAGES = 64;
const TABLES = 0x10_0000n;        // guest page-table frames: 1..8 MiB
const DATA = 0x100_0000n;         // data frames from 16 MiB

/** Builds a random program over two address spaces sharing the direct map. */
function setupFor(seed: number, ops: number): GuestSetup {
  const rng = new Rng(seed);
  const ptes: bigint[] = []; // gpa of each user PTE in space 0
  let gm: PhysicalMemory;
  return {
    build(gmem) {
      gm = gmem;
      const frames = new FrameBump(gmem, TABLES, 0x80_0000n);
      const roots: bigint[] = [];
      for (let s = 0; s < 2; s++) {
        roots.push(addressSpace(gmem, frames, (pt) => {
          for (let i = 0; i < PAGES; i++) {
            const va = USER_VA + BigInt(i) * 4096n;
            if (s === 0 && rng.below(8) === 0) continue; // some holes
            pt.map(va, DATA + BigInt(rng.below(256)) * 4096n, 4096,
              { write: rng.below(4) !== 0, user: rng.below(6) !== 0, nx: rng.below(4) === 0 });
            if (s === 0) ptes[i] = pt.entryAddr(va, 1);
          }
          for (let i = 0; i < PAGES; i++) if (s === 0 && ptes[i] === undefined) ptes[i] = pt.entryAddr(USER_VA + BigInt(i) * 4096n, 1);
        }));
      }
      return roots;
    },
    program(b, roots) {
      for (let i = 0; i < ops; i++) {
        const r = rng.below(100);
        const page = rng.below(PAGES);
        const va = USER_VA + BigInt(page) * 4096n + BigInt(rng.below(4096 - 8));
        if (r < 40) b.store(va, BigInt(rng.u32()) << 16n | BigInt(i), 1 + rng.below(8), { user: rng.below(3) === 0 });
        else if (r < 75) b.load(va, 1 + rng.below(8), { user: rng.below(3) === 0 });
        else if (r < 80) b.fetch(va, 1 + rng.below(4), { user: rng.below(3) === 0 });
        else if (r < 92) {
          // Edit a user PTE of space 0 through the direct map, then INVLPG it.
          const e = BigInt(rng.below(512)) * 4096n + DATA | PTE.P | (rng.below(3) ? PTE.W : 0n) |
            (rng.below(4) ? PTE.U : 0n) | (rng.below(5) ? 0n : PTE.XD);
          const value = rng.below(6) === 0 ? 0n : e;
          b.store(DMAP + ptes[page], value, 8);
          b.invlpg(USER_VA + BigInt(page) * 4096n);
        } else if (r < 96) b.movCr3(roots[rng.below(2)]);
        else b.load(DMAP + BigInt(rng.below(0x200_0000)) * 2n, 8); // kernel reads anywhere
      }
      void gm;
    },
  };
}

describe('native, shadow and nested paging agree', () => {
  it('on random programs with page-table edits, faults and address-space switches', async () => {
    await assertAsyncProperty(fc.asyncProperty(fc.integer({ min: 1, max: 2 ** 31 }), async (seed) => {
      const [n, s, e] = await Promise.all((['native', 'shadow', 'nested'] as const).map((m) => runGuest(m, setupFor(seed, 600))));
      expect(s.faults).toEqual(n.faults);
      expect(e.faults).toEqual(n.faults);
      expect(s.loads).toEqual(n.loads);
      expect(e.loads).toEqual(n.loads);
      expect(Buffer.compare(Buffer.from(s.memory), Buffer.from(n.memory))).toBe(0);
      expect(Buffer.compare(Buffer.from(e.memory), Buffer.from(n.memory))).toBe(0);
      // The program exercised what it is meant to.
      expect(n.faults.length).toBeGreaterThan(0);
      const st = s.shadow!.stats;
      expect(st.ptWritesEmulated).toBeGreaterThan(0);
      expect(st.hiddenFaults).toBeGreaterThan(0);
      expect(st.cr3Switches).toBeGreaterThan(0);
      expect(st.rootCacheHits).toBeGreaterThan(0);
    }), { numRuns: 6, seed: 0x5ad0_0006 });
  });
});
