// Property: whatever happens to the VM during pre-copy — guest stores at any rate, host
// swap-outs, sharing merges, host-side writes (DMA), balloon-style unbacking — the
// destination's memory equals the source's at switchover, byte for byte, under both
// tracking methods; the source host ends with no frame and no swap slot of the VM; the
// destination holds a frame exactly for each non-zero page that is not swapped.
// Seed: PROPERTY_SEED / PROPERTY_SEEDS (test/helpers/seeds.ts).
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { HostSwap, PageSharing, SwapFile, P2M, SHARED_OWNER, type Vm } from '../../../src/hypervisor/index.js';
import { migrate } from '../../../src/hypervisor/migration/migrate.js';
import { isSwappable } from '../../../src/hypervisor/pagers/swap.js';
import { DATA_FIRST } from '../../../src/experiment/migration-guest.js';
import { Rng } from '../../../src/util/rng.js';
import { assertAsyncProperty } from '../../helpers/seeds.js';
import { twoHosts, writerVm, image, diffPages, HZ } from './setup.js';

type Event = 'swap' | 'share' | 'hostWrite' | 'unback' | 'none';
const EVENTS: Event[] = ['swap', 'share', 'hostWrite', 'unback', 'none'];

/** Frames a destination without page sharing needs: one per present non-zero page; and the swapped pages. */
function framesNeeded(vm: Vm, img: Uint8Array): { privateFrames: number; swapped: number } {
  let privateFrames = 0, swapped = 0;
  vm.p2m.forEach((g, w) => {
    if (w & P2M.SWAPPED) { swapped++; return; }
    if (!(w & P2M.PRESENT)) return;
    if (img.subarray(g * 4096, (g + 1) * 4096).some((b) => b !== 0)) privateFrames++;
  });
  return { privateFrames, swapped };
}

describe('migration property', () => {
  it('memory equal at switchover, frames exact, under random events during pre-copy', async () => {
    await assertAsyncProperty(fc.asyncProperty(
      fc.record({
        config: fc.constantFrom(
          { mode: 'nested', tracking: 'ept-dirty' } as const, { mode: 'shadow', tracking: 'write-protect' } as const,
          { mode: 'nested', tracking: 'write-protect' } as const),
        rate: fc.integer({ min: 0, max: 60_000 }),
        hot: fc.integer({ min: 1, max: 200 }),
        events: fc.array(fc.constantFrom(...EVENTS), { minLength: 1, maxLength: 12 }),
        seed: fc.integer({ min: 1, max: 1 << 30 }),
      }),
      async ({ config: { mode, tracking }, rate, hot, events, seed }) => {
        const [h1, h2] = await twoHosts();
        const layout = { dataPages: 300, dupPages: 16, hotPages: hot };
        const { vm, writer } = writerVm(h1, mode, layout, { rate, seed });
        const file = new SwapFile({ capacity: 256 });
        const swap1 = new HostSwap(h1, { file, seed }), swap2 = new HostSwap(h2, { file });
        const sh1 = new PageSharing(h1, { shareZeroPages: false });
        sh1.addVm(vm);
        const rng = new Rng(seed);
        const data = (n: number) => Array.from({ length: n }, () => DATA_FIRST + rng.below(layout.dataPages + layout.dupPages));
        let round = 0, before: Uint8Array = new Uint8Array(), need = { privateFrames: 0, swapped: 0 };
        try {
          const r = migrate({
            vm, from: h1, to: h2, tracking, bandwidth: 64 * 2 ** 20, hz: HZ,
            stopPages: 8, maxRounds: 6, swap: { from: swap1, to: swap2 },
            runGuest: (s) => {
              writer.run(s);
              const ev = events[round++ % events.length];
              if (ev === 'swap') for (const g of data(6)) { if (isSwappable(vm.p2m.raw(g as never))) swap1.swapOutGfn(vm, g as never); }
              if (ev === 'share') sh1.shareNow(vm, data(24));
              if (ev === 'hostWrite') for (const g of data(3)) vm.memory.write64(BigInt(g) << 12n | 0x80n, BigInt(rng.u32()));
              if (ev === 'unback') for (const g of data(2)) { if ((vm.p2m.raw(g as never) & (P2M.PRESENT | P2M.SHARED)) === P2M.PRESENT) vm.unback(g as never); }
            },
            onSwitchover: (src) => { before = image(h1, src, swap1); need = framesNeeded(src, before); },
          });
          expect(diffPages(image(h2, r.vm, swap2), before)).toEqual([]);
          expect(h1.counts().byVm).toEqual({});
          expect(h1.frames.usedBy(SHARED_OWNER)).toBe(0);
          expect(swap1.stats().slotsInUse).toBe(0);
          expect(h2.frames.usedBy(r.vm.id)).toBe(need.privateFrames);
          expect(swap2.stats(r.vm).slotsInUse).toBe(need.swapped);
        } finally {
          swap2.close();
          file.close();
        }
      }), { seed: 0x6d16, numRuns: 12 });
  }, 240_000);
});
