// The large-page defragmenter (src/hypervisor/pagers/defrag.ts): chunks split by sharing
// get their 2 MiB EPT leaf back, contents unchanged, frames exact, with the sharing
// trade-off (maxSharedParts) counted frame by frame.
import { describe, it, expect } from 'vitest';
import { Defragmenter, CHUNK } from '../../../src/hypervisor/pagers/defrag.js';
import { PAGE_2M } from '../../../src/core/bits.js';
import type { Gfn } from '../../../src/core/addr.js';
import { host, vmOn, pattern, setPage, page, sharedGfns, MiB, bootGuest, guestLoad, guestStore } from './sharing/setup.js';
import { expectExactAccounting, expectBytes } from './sharing/setup.js';

/** Distinct contents in every page of [0, n), except `zeros` pages per chunk left zero. */
function fill(vm: Parameters<typeof setPage>[0], n: number, zerosPerChunk: (chunk: number) => number): void {
  for (let g = 0; g < n; g++) {
    const c = Math.floor(g / CHUNK), i = g % CHUNK;
    if (i >= CHUNK - zerosPerChunk(c)) continue; // the chunk's last pages stay zero
    const p = pattern(3); p[0] = g & 0xff; p[1] = g >> 8; p[2] = 0x5a; setPage(vm, g, p);
  }
}

const large = (vm: { ept: { lookup(g: Gfn): { size: number } | null } | null }, chunk: number) =>
  vm.ept!.lookup((chunk * CHUNK) as Gfn)?.size === PAGE_2M;

describe('large-page defragmenter', () => {
  it('restores every chunk whose pages are private, in place, copying only the moved pages', async () => {
    const { hv, sh } = await host({ scanRatePerVm: 1e6, scanRateTotal: 1e6, shareZeroPages: true });
    const vm = vmOn(hv, sh, { mib: 8 });
    expect(vm.prefault(0n, 8n * BigInt(MiB), PAGE_2M)).toBe(4);
    // chunk 0: 3 zero pages, chunk 1: none, chunk 2: 1, chunk 3: 40
    const zeros = [3, 0, 1, 40];
    fill(vm, 4 * CHUNK, (c) => zeros[c]);
    const before = Array.from({ length: 4 * CHUNK }, (_, g) => page(vm, g).slice());
    sh.scan(1);
    expect(sharedGfns(vm)).toBe(44); // all zero pages share the zero frame
    expect([0, 1, 2, 3].map((c) => large(vm, c))).toEqual([false, true, false, false]);
    const used = hv.frames.usedBy(vm.id);
    expect(used).toBe(4 * CHUNK - 44);

    // Trade-off 0: only chunks without shared parts; none left split is eligible.
    const d0 = new Defragmenter(hv.frames).pass(vm);
    expect(d0).toMatchObject({ chunks: 4, alreadyLarge: 1, tooShared: 3, restored: 0, copied: 0 });

    // Up to 3 shared parts: chunks 0 and 2 come back, in place (their old frames were free),
    // costing 4 frames of sharing; chunk 3 (40 zero pages) stays split.
    const d3 = new Defragmenter(hv.frames, { maxSharedParts: 3 }).pass(vm);
    expect(d3).toMatchObject({ restored: 2, inPlace: 2, tooShared: 1, unshared: 4, copied: 4 });
    expect([0, 1, 2, 3].map((c) => large(vm, c))).toEqual([true, true, true, false]);
    expect(sharedGfns(vm)).toBe(40);
    expect(hv.frames.usedBy(vm.id)).toBe(used + 4);
    for (let g = 0; g < 4 * CHUNK; g++) expectBytes(page(vm, g), before[g], `gfn ${g}`);
    expectExactAccounting(hv, sh, [vm]);
  });

  it('a chunk whose pages are scattered goes to a free run; the guest reads the same bytes through the new 2 MiB leaf', async () => {
    const { hv, sh } = await host({ scanRatePerVm: 1e6, scanRateTotal: 1e6 }, 32);
    const vm = vmOn(hv, sh, { mib: 4 });
    bootGuest(vm); // page tables at gpa 1 MiB (chunk 0); chunk 1 is data backed on first touch, 4 KiB at a time
    for (let g = CHUNK; g < 2 * CHUNK; g++) setPage(vm, g, (() => { const p = pattern(7); p[0] = g & 0xff; p[1] = g >> 8; return p; })());
    expect(large(vm, 1)).toBe(false);
    const d = new Defragmenter(hv.frames).pass(vm);
    expect(d.restored).toBe(1);
    // Backed page by page from the free list: not in one aligned run, so all 512 move.
    expect(d).toMatchObject({ chunks: 2, notMovable: 1, restored: 1, inPlace: 0, copied: 512, cycles: 512 * 1000 });
    expect(large(vm, 1)).toBe(true);
    const h0 = vm.p2m.lookup(CHUNK as Gfn)!;
    expect(h0 % CHUNK).toBe(0);
    for (let i = 0; i < CHUNK; i++) expect(vm.p2m.lookup((CHUNK + i) as Gfn)).toBe(h0 + i);
    for (const g of [CHUNK, CHUNK + 1, CHUNK + 300, 2 * CHUNK - 1]) {
      const want = BigInt(g & 0xff) | (BigInt(g >> 8) << 8n) | (BigInt(pattern(7)[2]) << 16n);
      expect(guestLoad(hv, vm, BigInt(g) << 12n) & 0xffffffn).toBe(want);
    }
    guestStore(hv, vm, (BigInt(CHUNK) << 12n) + 8n, 0x1234n); // writable through the large leaf
    expect(guestLoad(hv, vm, (BigInt(CHUNK) << 12n) + 8n)).toBe(0x1234n);
    expectExactAccounting(hv, sh, [vm]);
  });

  it('leaves chunks with unbacked, swapped or page-table entries alone, and a full pool means no run', async () => {
    const { hv, sh } = await host({ scanRatePerVm: 1e6, scanRateTotal: 1e6 }, 16);
    const vm = vmOn(hv, sh, { mib: 4 });
    bootGuest(vm); // chunk 0 holds page tables
    for (let g = CHUNK; g < CHUNK + 10; g++) setPage(vm, g, pattern(9)); // chunk 1 mostly unbacked
    const d = new Defragmenter(hv.frames).pass(vm);
    expect(d).toMatchObject({ chunks: 2, notMovable: 2, restored: 0 });

    // Fill chunk 1 completely, then take every free VM frame: no contiguous run exists.
    for (let g = CHUNK + 10; g < 2 * CHUNK; g++) setPage(vm, g, pattern(9));
    const other = hv.createVm({ memoryBytes: 64 * MiB, mode: 'nested' });
    while (hv.frames.counts().vmFree > 0) other.backGfn(other.p2m.count(0, 0) > 0 ? firstUnbacked(other) : 0 as Gfn);
    const d2 = new Defragmenter(hv.frames).pass(vm);
    expect(d2).toMatchObject({ restored: 0 });
    expect(d2.noRun + d2.notMovable).toBe(2);
  });

  it('rejects bad options and does nothing to a shadow VM', async () => {
    const { hv, sh } = await host();
    expect(() => new Defragmenter(hv.frames, { maxSharedParts: -1 })).toThrow(/maxSharedParts/);
    expect(() => new Defragmenter(hv.frames, { maxSharedParts: 513 })).toThrow(/maxSharedParts/);
    const vm = vmOn(hv, sh, { mode: 'shadow', mib: 4 });
    for (let g = 0; g < 2 * CHUNK; g++) setPage(vm, g, pattern(5));
    expect(new Defragmenter(hv.frames).pass(vm)).toMatchObject({ chunks: 0, restored: 0 });
    expect(() => vm.relocateLarge(0 as Gfn, 0 as never)).toThrow(/nested VM/);
  });
});

function firstUnbacked(vm: { p2m: { raw(g: Gfn): number; frames: number } }): Gfn {
  for (let g = 0; g < vm.p2m.frames; g++) if (vm.p2m.raw(g as Gfn) === 0) return g as Gfn;
  throw new Error('no unbacked gfn');
}
