// Migration uses the memory metadata: zero pages go as a flag, a shared page's contents
// once and then its hash, swapped pages as swap references (shared swap file) or read from
// swap (separate files). Counts per kind are checked against the source p2m.
import { describe, it, expect, afterEach } from 'vitest';
import { HostSwap, PageSharing, SwapFile, P2M, SHARED_OWNER, type Hypervisor, type Vm } from '../../../src/hypervisor/index.js';
import { migrate } from '../../../src/hypervisor/migration/migrate.js';
import { recordBytes } from '../../../src/hypervisor/migration/wire.js';
import { DATA_FIRST } from '../../../src/experiment/migration-guest.js';
import { twoHosts, writerVm, image, diffPages, HZ } from './setup.js';

const LAYOUT = { dataPages: 200, dupPages: 40, hotPages: 32 };
const ZERO_GFNS = 10;
const SWAP_OUT = 30;
const closers: (() => void)[] = [];
afterEach(() => { while (closers.length) closers.pop()!(); });

/** A source VM with shared duplicates, backed zero pages and swapped pages. */
async function prepared(sharedSwapFile: boolean) {
  const [h1, h2] = await twoHosts();
  const { vm, writer } = writerVm(h1, 'nested', LAYOUT, { rate: 10_000 });
  const zeroFirst = DATA_FIRST + LAYOUT.dataPages + LAYOUT.dupPages;
  for (let i = 0; i < ZERO_GFNS; i++) vm.memory.write(BigInt(zeroFirst + i) << 12n, new Uint8Array(4096)); // backed, all zero
  const sh1 = new PageSharing(h1, { shareZeroPages: false });
  sh1.addVm(vm);
  const dups = Array.from({ length: LAYOUT.dupPages }, (_, i) => DATA_FIRST + LAYOUT.dataPages + i);
  sh1.shareNow(vm, dups);
  const file = new SwapFile({ capacity: 1024 });
  const swap1 = new HostSwap(h1, { file, seed: 3 });
  const swap2 = sharedSwapFile ? new HostSwap(h2, { file }) : new HostSwap(h2, { capacity: 1024 });
  closers.push(() => file.close(), () => swap2.close());
  swap1.swapOut(vm, SWAP_OUT);
  const sh2 = new PageSharing(h2, { shareZeroPages: false });
  return { h1, h2, vm, writer, sh1, sh2, swap1, swap2, file, dups };
}

function countP2m(vm: Vm, mask: number, match: number): number { return vm.p2m.count(mask, match); }

describe('migration metadata', () => {
  for (const shared of [true, false]) {
    it(`zero pages as flags, shared pages once, swapped pages as ${shared ? 'swap references' : 'pages read from swap'}`, async () => {
      const p = await prepared(shared);
      const { vm, h1, h2 } = p;
      // what the source holds when the copy starts
      const swapped = countP2m(vm, P2M.SWAPPED, P2M.SWAPPED);
      const sharedGfns = countP2m(vm, P2M.PRESENT | P2M.SHARED, P2M.PRESENT | P2M.SHARED);
      const present = countP2m(vm, P2M.PRESENT, P2M.PRESENT);
      expect(swapped).toBe(SWAP_OUT);
      expect(sharedGfns).toBe(LAYOUT.dupPages);
      let slotsFree = -1;
      let before: Uint8Array = new Uint8Array(), atStop = { swapped: 0, shared: 0 };
      const r = migrate({
        vm, from: h1, to: h2, tracking: 'ept-dirty', bandwidth: 100 * 2 ** 20, hz: HZ, stopPages: 8, maxRounds: 6,
        runGuest: (s) => p.writer.run(s), swap: { from: p.swap1, to: p.swap2 }, sharing: p.sh2,
        onSwitchover: (src) => {
          before = image(h1, src, p.swap1);
          slotsFree = p.file.freeSlots; // the guest's swap-ins during pre-copy freed some
          atStop = { swapped: countP2m(src, P2M.SWAPPED, P2M.SWAPPED), shared: countP2m(src, P2M.SHARED, P2M.SHARED) };
        },
      });
      const k = r.rounds[0].byKind;
      expect(k.zero).toBe(ZERO_GFNS);
      expect(k.shared).toBe(1);
      expect(k['shared-ref']).toBe(LAYOUT.dupPages - 1);
      expect(k[shared ? 'swap-ref' : 'swap-read']).toBe(SWAP_OUT);
      expect(k[shared ? 'swap-read' : 'swap-ref']).toBe(0);
      expect(k.page).toBe(present - ZERO_GFNS - LAYOUT.dupPages);
      // a duplicate costs 16 bytes instead of 4104
      expect(recordBytes('shared-ref')).toBe(16);
      expect(recordBytes('zero')).toBe(8);
      // the destination holds the same memory
      const dstImage = image(h2, r.vm, shared ? p.swap2 : undefined);
      expect(diffPages(dstImage, before)).toEqual([]);
      expect(p.sh2.sharedGfns(r.vm)).toBe(atStop.shared);
      expect(h2.frames.usedBy(SHARED_OWNER)).toBe(1);
      if (shared) {
        // slots changed hands: none freed, none allocated, the destination's swap holds them
        expect(r.swapSlotsMoved).toBe(atStop.swapped);
        expect(p.file.freeSlots).toBe(slotsFree);
        expect(p.swap2.stats(r.vm).slotsInUse).toBe(atStop.swapped);
        expect(countP2m(r.vm, P2M.SWAPPED, P2M.SWAPPED)).toBe(atStop.swapped);
        expect(p.swap1.stats().slotsInUse).toBe(0);
      } else {
        // read from the source's swap and sent whole; the source's slots are freed with the VM
        expect(r.swapSlotsMoved).toBe(0);
        expect(countP2m(r.vm, P2M.SWAPPED, P2M.SWAPPED)).toBe(0);
        expect(p.file.freeSlots).toBe(1024);
        expect(r.rounds[0].seconds).toBeCloseTo(r.rounds[0].bytes / (100 * 2 ** 20) + SWAP_OUT * p.swap1.swapInCycles / HZ, 12);
      }
      expect(h1.counts().byVm).toEqual({});
      expect(h1.frames.usedBy(SHARED_OWNER)).toBe(0);
    });
  }

  it('a migration with swapped pages and no swap given fails and leaves both hosts as they were', async () => {
    const p = await prepared(true);
    const used2 = p.h2.counts();
    expect(() => migrate({ vm: p.vm, from: p.h1, to: p.h2, tracking: 'ept-dirty', bandwidth: 1e8, hz: HZ, runGuest: () => {} }))
      .toThrow(/swapped but no swap was given/);
    expect(p.h2.counts()).toEqual(used2);
    expect(p.h1.list()).toEqual([p.vm]);
    expect(p.vm.p2m.count(P2M.LOGGED, P2M.LOGGED)).toBe(0);
  });
});

export type { Hypervisor };
