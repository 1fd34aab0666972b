// Property: random guest and host writes and reads interleaved with random swap-outs on
// two VMs (one nested, one shadow) sharing one swap file. Every read equals a plain
// reference copy of memory, and the accounting is exact after every step: each VM's host
// frames = its backed gfns, its swapped gfns = its slots, the file's slots = the sum, and
// no VM-pool frame is created or lost. At the end all of memory equals the reference, and
// destroying the VMs returns every frame and slot.
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { assertProperty } from '../../../helpers/seeds.js';
import { Hypervisor, HostSwap, P2M, isSwappable, type Vm } from '../../../../src/hypervisor/index.js';
import type { Gfn } from '../../../../src/core/addr.js';
import { guestVm, MiB, DATA, va, runToEnd } from './rig.js';

const PAGES = 24, WORDS = 512;

type Op =
  | { t: 'store' | 'hostWrite'; vm: number; page: number; word: number; value: bigint }
  | { t: 'load' | 'hostRead'; vm: number; page: number; word: number }
  | { t: 'swapOut'; vm: number; n: number }
  | { t: 'swapOutGfn'; vm: number; page: number };

const loc = { vm: fc.integer({ min: 0, max: 1 }), page: fc.integer({ min: 0, max: PAGES - 1 }), word: fc.constantFrom(0, 1, 7, 300, 511) };
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ t: fc.constantFrom('store' as const, 'hostWrite' as const), ...loc, value: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }) }) },
  { weight: 5, arbitrary: fc.record({ t: fc.constantFrom('load' as const, 'hostRead' as const), ...loc }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('swapOut' as const), vm: loc.vm, n: fc.integer({ min: 0, max: 40 }) }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('swapOutGfn' as const), vm: loc.vm, page: loc.page }) });

const gpaOf = (page: number, word: number): bigint => (BigInt(DATA + page) << 12n) + BigInt(word * 8);

function checkAccounting(hv: Hypervisor, vms: Vm[], swap: HostSwap, vmPool: number): void {
  let slots = 0;
  for (const vm of vms) {
    expect(hv.frames.usedBy(vm.id)).toBe(vm.p2m.backed);
    const swapped = vm.p2m.count(P2M.SWAPPED, P2M.SWAPPED);
    expect(swap.stats(vm).slotsInUse).toBe(swapped);
    expect(swap.slotsOf(vm)).toHaveLength(swapped);
    slots += swapped;
  }
  expect(swap.file.inUse).toBe(slots);
  expect(hv.frames.counts().vmFree + vms.reduce((s, v) => s + hv.frames.usedBy(v.id), 0)).toBe(vmPool);
}

describe('host swap property', () => {
  it('memory always equals a reference copy and frame/slot accounting is exact', async () => {
    const hv = await Hypervisor.create({ hostMemoryBytes: 16 * MiB });
    const vmPool = hv.frames.counts().vmFree;
    const seen = { swapOuts: 0, swapIns: 0, refused: 0 }; // what the seed's runs exercised
    assertProperty(fc.property(fc.integer(), fc.array(opArb, { minLength: 1, maxLength: 30 }), (seed, ops) => {
      const vms = [guestVm(hv, 'nested'), guestVm(hv, 'shadow')];
      const swap = new HostSwap(hv, { seed, capacity: 256 });
      const ref = [new Map<bigint, bigint>(), new Map<bigint, bigint>()];
      try {
        for (const op of ops) {
          const vm = vms[op.vm], r = ref[op.vm];
          switch (op.t) {
            case 'store': runToEnd(hv, vm, (b) => b.store(va(DATA + op.page, op.word), op.value)); r.set(gpaOf(op.page, op.word), op.value); break;
            case 'hostWrite': vm.memory.write64(gpaOf(op.page, op.word), op.value); r.set(gpaOf(op.page, op.word), op.value); break;
            case 'load': expect(runToEnd(hv, vm, (b) => b.load(va(DATA + op.page, op.word)))[0]).toBe(r.get(gpaOf(op.page, op.word)) ?? 0n); break;
            case 'hostRead': expect(vm.memory.read64(gpaOf(op.page, op.word))).toBe(r.get(gpaOf(op.page, op.word)) ?? 0n); break;
            case 'swapOut': {
              const eligible = vm.p2m.count(P2M.PRESENT | P2M.SHARED | P2M.PAGE_TABLE | P2M.TRAPPED | P2M.WRITE_PROTECTED, P2M.PRESENT);
              const used = hv.frames.usedBy(vm.id);
              const n = swap.swapOut(vm, op.n);
              expect(n).toBe(Math.min(op.n, eligible, swap.file.freeSlots + n));
              expect(hv.frames.usedBy(vm.id)).toBe(used - n);
              break;
            }
            case 'swapOutGfn': {
              const g = (DATA + op.page) as Gfn;
              if (isSwappable(vm.p2m.raw(g)) && swap.file.freeSlots > 0) swap.swapOutGfn(vm, g);
              else { expect(() => swap.swapOutGfn(vm, g)).toThrow(); seen.refused++; }
              break;
            }
          }
          checkAccounting(hv, vms, swap, vmPool);
        }
        for (let v = 0; v < 2; v++) {
          const bytes = vms[v].memory.read(BigInt(DATA) << 12n, PAGES * 4096);
          const want = new BigUint64Array(PAGES * WORDS);
          for (const [gpa, value] of ref[v]) want[Number(gpa - (BigInt(DATA) << 12n)) / 8] = value;
          expect(new BigUint64Array(bytes.buffer)).toEqual(want);
        }
        for (const vm of vms) { seen.swapOuts += swap.stats(vm).swapOuts; seen.swapIns += swap.stats(vm).swapIns; }
      } finally {
        for (const vm of vms) hv.destroyVm(vm);
        swap.close();
      }
      expect(swap.stats().slotsInUse).toBe(0); // destroy freed every slot (detach)
      expect(hv.frames.counts().vmFree).toBe(vmPool);
    }), { numRuns: 25, seed: 0x5a9_0025 });
    for (const [k, n] of Object.entries(seen)) expect(n, `${k} never happened`).toBeGreaterThan(0);
  });
});
