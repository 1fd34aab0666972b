// Content-based page sharing: exact savings, read-only EPT mappings, copy-on-write breaks
// through the vCPU (nested and shadow), the zero page, large EPT leaves, rate limits,
// hints, hash collisions and VM destruction.
import { describe, it, expect } from 'vitest';
import { P2M, SHARED_OWNER, RWX, type Vm } from '../../../../src/hypervisor/index.js';
import { EPT, PAGE_2M } from '../../../../src/core/bits.js';
import { ActiveSampler } from '../../../../src/hypervisor/pagers/sampling.js';
import { type Gfn, hpaOf } from '../../../../src/core/addr.js';
import {
  host, vmOn, bootGuest, pattern, setPage, page, guestStore, guestLoad, expectExactAccounting, privateFrames, expectBytes,
} from './setup.js';

const RX = EPT.R | EPT.X;
const hfnOf = (vm: Vm, gfn: number) => vm.p2m.lookup(gfn as Gfn);
const isShared = (vm: Vm, gfn: number) => (vm.p2m.raw(gfn as Gfn) & P2M.SHARED) !== 0;

/** 16 pages identical in both VMs, 4 unique pages each, and one more copy of page 0 in VM 1. */
function fillPair(a: Vm, b: Vm): void {
  for (let i = 0; i < 16; i++) { setPage(a, 0x300 + i, pattern(i + 1)); setPage(b, 0x300 + i, pattern(i + 1)); }
  for (let i = 0; i < 4; i++) { setPage(a, 0x400 + i, pattern(100 + i)); setPage(b, 0x400 + i, pattern(200 + i)); }
  setPage(a, 0x500, pattern(1));
}

describe('sharing identical pages of two VMs', () => {
  for (const mode of ['nested', 'shadow'] as const) {
    it(`${mode}: saves exactly the duplicate frames, maps them read-only, and a guest store breaks only the writer's copy`, async () => {
      const { hv, sh } = await host({ scanRatePerVm: 1000, scanRateTotal: 10_000 });
      const a = vmOn(hv, sh, { mode, mib: 8 }), b = vmOn(hv, sh, { mode, mib: 8 });
      fillPair(a, b);
      const before = hv.counts().vmFree;
      expect(hv.frames.usedBy(a.id) + hv.frames.usedBy(b.id)).toBe(21 + 20);
      sh.scan(1);
      // 24 distinct contents: 16 shared frames + 8 unique private pages.
      expect(hv.counts().vmFree - before).toBe(17);
      expect(sh.stats).toMatchObject({ pagesShared: 16, pagesSharing: 17, saved: 17, zeroShared: 0, falseMatches: 0 });
      expect(hv.frames.usedBy(SHARED_OWNER)).toBe(16);
      expect([hv.frames.usedBy(a.id), hv.frames.usedBy(b.id)]).toEqual([4, 4]);
      expect([sh.sharedGfns(a), sh.sharedGfns(b)]).toEqual([17, 16]);
      for (let i = 0; i < 16; i++) {
        expect(hfnOf(a, 0x300 + i)).toBe(hfnOf(b, 0x300 + i));
        expect(a.ept!.lookup((0x300 + i) as Gfn)!.rights).toBe(RX);
        expect(b.ept!.lookup((0x300 + i) as Gfn)!.rights).toBe(RX);
      }
      expect(hfnOf(a, 0x500)).toBe(hfnOf(a, 0x300));
      for (let i = 0; i < 4; i++) expect(isShared(a, 0x400 + i) || isShared(b, 0x400 + i)).toBe(false);
      expect(sh.sharedFrames().find((f) => f.hfn === hfnOf(a, 0x300))!.refs).toBe(3);
      expectExactAccounting(hv, sh, [a, b]);

      // Guests run: A writes its copy of page 0x300; B (reading first under shadow) then writes page 0x301.
      bootGuest(a); bootGuest(b);
      const shared0 = hfnOf(a, 0x300)!, shared1 = hfnOf(b, 0x301)!;
      const old0 = new DataView(pattern(1).buffer).getBigUint64(8, true);
      guestStore(hv, a, 0x300_008n, 0x1122334455667788n);
      expect(isShared(a, 0x300)).toBe(false);
      expect(a.ept!.lookup(0x300 as Gfn)!.rights).toBe(RWX);
      expect(guestLoad(hv, a, 0x300_008n)).toBe(0x1122334455667788n);
      expect(guestLoad(hv, b, 0x300_008n)).toBe(old0);
      expectBytes(page(b, 0x300), pattern(1));
      expectBytes(hv.machine.memory.read(hpaOf(shared0), 4096), pattern(1)); // the shared frame was never written
      const want = pattern(1); new DataView(want.buffer).setBigUint64(8, 0x1122334455667788n, true);
      expectBytes(page(a, 0x300), want);
      expectBytes(page(a, 0x500), pattern(1)); // A's other copy still shares

      const old1 = new DataView(pattern(2).buffer).getBigUint64(0, true);
      expect(guestLoad(hv, b, 0x301_000n)).toBe(old1); // a read keeps sharing (shadow: a read-only leaf)
      expect(isShared(b, 0x301)).toBe(true);
      guestStore(hv, b, 0x301_000n, 42n);
      expect(isShared(b, 0x301)).toBe(false);
      expect(guestLoad(hv, b, 0x301_000n)).toBe(42n);
      expect(guestLoad(hv, a, 0x301_000n)).toBe(old1);
      expectBytes(hv.machine.memory.read(hpaOf(shared1), 4096), pattern(2));
      expect(sh.stats.cowBreaks).toBe(2);
      expect([a.stats.resolves, b.stats.resolves]).toEqual([1, 1]); // through the vCPU's exit path (EPT violation / shadow walk)
      expect(a.stats.pagerCycles).toBe(a.costs.pageAlloc + sh.costs.pageCopy);
      expectExactAccounting(hv, sh, [a, b]);
    });
  }

  for (const mode of ['nested', 'shadow'] as const) {
    it(`${mode}: a page the guest already wrote (writable TLB / shadow entry) is write-protected when shared`, async () => {
      const { hv, sh } = await host({ scanRatePerVm: 1000 });
      const a = vmOn(hv, sh, { mode, guest: true }), b = vmOn(hv, sh);
      setPage(a, 0x300, pattern(4));
      guestStore(hv, a, 0x300_000n, 99n);        // caches a writable translation of the private frame
      const same = pattern(4); same[0] = 99; for (let i = 1; i < 8; i++) same[i] = 0;
      setPage(b, 0x300, same);
      sh.scan(1);
      const s = hfnOf(a, 0x300)!;
      expect(hfnOf(b, 0x300)).toBe(s);
      guestStore(hv, a, 0x300_000n, 100n);       // must fault: the old writable entry is gone
      expect(isShared(a, 0x300)).toBe(false);
      expect(guestLoad(hv, a, 0x300_000n)).toBe(100n);
      expectBytes(page(b, 0x300), same);
      expectBytes(hv.machine.memory.read(hpaOf(s), 4096), same);
      expect(sh.stats.cowBreaks).toBe(1);
      expectExactAccounting(hv, sh, [a, b]);
    });
  }

  it('a copy-on-write break with the VM pool empty exits OUT_OF_FRAMES and changes nothing; it succeeds after reclaim', async () => {
    const { hv, sh } = await host({ scanRatePerVm: 1000 }, 8);
    const a = vmOn(hv, sh, { guest: true });
    for (let g = 0; g < 16; g++) setPage(a, 0x300 + g, pattern(7));
    sh.scan(1);
    expect(sh.stats.saved).toBe(15);
    const filler = hv.createVm({ memoryBytes: 8 * 2 ** 20, mode: 'nested' });
    for (let g = 0; hv.counts().vmFree > 0; g++) filler.memory.write8(BigInt(g) << 12n, 1);
    const b = hv.machine.createBatch(1).store(0x4000_0000_00n + 0x300_000n, 5n);
    expect(a.vcpus[0].run(b)).toMatchObject({ reason: 'OUT_OF_FRAMES', index: 0, pool: 'vm' });
    expect(isShared(a, 0x300)).toBe(true);
    expectBytes(page(a, 0x300), pattern(7));
    expectExactAccounting(hv, sh, [a, filler]);
    hv.destroyVm(filler);
    expect(a.vcpus[0].run(b)).toEqual({ reason: 'end' });
    expect(a.memory.read64(0x300_000n)).toBe(5n);
    expectBytes(page(a, 0x301), pattern(7));
    expectExactAccounting(hv, sh, [a]);
  });

  it('a host write through GuestMemory also breaks sharing; the last sharer takes the frame back without a copy', async () => {
    const { hv, sh } = await host({ scanRatePerVm: 1000 });
    const a = vmOn(hv, sh), b = vmOn(hv, sh);
    setPage(a, 7, pattern(5)); setPage(b, 9, pattern(5));
    sh.scan(1);
    const s = hfnOf(a, 7)!;
    expect(hfnOf(b, 9)).toBe(s);
    a.memory.write8(7n << 12n, 0xee);
    expect(sh.stats).toMatchObject({ cowBreaks: 1, cowReuses: 0, pagesShared: 1, pagesSharing: 0 });
    expectBytes(page(b, 9), pattern(5));
    b.memory.write8((9n << 12n) + 1n, 0xdd);
    expect(sh.stats).toMatchObject({ cowBreaks: 2, cowReuses: 1, pagesShared: 0 });
    expect(hfnOf(b, 9)).toBe(s); // the same frame, now B's own
    expect(hv.frames.ownerOf(s)).toBe(b.id);
    const want = pattern(5); want[1] = 0xdd;
    expectBytes(page(b, 9), want);
    expectExactAccounting(hv, sh, [a, b]);
  });
});

describe('zero pages and large EPT leaves', () => {
  it('all zero pages of all VMs map one zero frame', async () => {
    const { hv, sh } = await host({ scanRatePerVm: 1000 });
    const a = vmOn(hv, sh), b = vmOn(hv, sh);
    for (let g = 0; g < 10; g++) setPage(a, 0x40 + g, pattern(0));
    for (let g = 0; g < 5; g++) setPage(b, 0x80 + g, pattern(0));
    setPage(a, 0x90, pattern(3));
    sh.scan(1);
    expect(sh.stats).toMatchObject({ pagesShared: 1, zeroShared: 15, pagesSharing: 14, saved: 14 });
    const z = hfnOf(a, 0x40)!;
    for (let g = 0; g < 10; g++) expect(hfnOf(a, 0x40 + g)).toBe(z);
    for (let g = 0; g < 5; g++) expect(hfnOf(b, 0x80 + g)).toBe(z);
    expect(sh.sharedFrames()).toEqual([{ hfn: z, refs: 15, zero: true }]);
    expect(privateFrames(a)).toBe(1);
    expectExactAccounting(hv, sh, [a, b]);
  });

  it('pages trapped for sampling are not shared: shareNow over zero pages keeps every trap and loses no sample', async () => {
    const { hv, sh } = await host();
    const a = vmOn(hv, sh);
    const gfns = Array.from({ length: 40 }, (_, i) => 0x40 + i);
    for (const g of gfns) setPage(a, g, pattern(0));
    const sampler = new ActiveSampler({ samples: 10, seed: 4 });
    sampler.attach(a);
    const traps = sampler.trapped(a);
    expect(traps).toHaveLength(10);
    expect(sh.shareNow(a, gfns)).toBe(30); // the 30 untrapped zero pages, onto one zero frame
    expect(sampler.trapped(a)).toEqual(traps);
    for (const g of traps) expect(a.p2m.raw(g) & (P2M.TRAPPED | P2M.SHARED)).toBe(P2M.TRAPPED);
    expect(sh.stats).toMatchObject({ zeroShared: 30, saved: 29 });
    expect(sampler.periodEnd(a)).toMatchObject({ sampled: 10, touched: 0, lost: 0 });
    expectExactAccounting(hv, sh, [a]);
  });

  it('sharing a page inside a 2 MiB EPT leaf splits the leaf; a guest write then gets a private zeroed copy', async () => {
    const { hv, sh } = await host({ scanRatePerVm: 5000, scanRateTotal: 5000 });
    const a = vmOn(hv, sh);
    expect(a.prefault(0n, 4n * 2n ** 20n, PAGE_2M)).toBe(2);
    expect(a.ept!.lookup(5 as Gfn)!.size).toBe(PAGE_2M);
    sh.scan(1);
    expect(sh.stats).toMatchObject({ pagesShared: 1, zeroShared: 1024, saved: 1023, eptSplits: 2 });
    expect(a.ept!.lookup(5 as Gfn)).toMatchObject({ size: 4096, rights: RX });
    expect(hv.frames.usedBy(a.id)).toBe(0);
    expectExactAccounting(hv, sh, [a]);
    bootGuest(a); // its page tables land in the (now shared) zero pages: host writes break sharing
    guestStore(hv, a, 0x30_0010n, 7n);
    expect(guestLoad(hv, a, 0x30_0010n)).toBe(7n);
    expect(guestLoad(hv, a, 0x30_1010n)).toBe(0n);
    expect(isShared(a, 0x300)).toBe(false);
    expect(isShared(a, 0x301)).toBe(true);
    expectExactAccounting(hv, sh, [a]);
  });
});

describe('scan rate limits and order', () => {
  /** A VM with n backed pages of distinct contents. */
  function distinct(vm: Vm, n: number, salt: number): void {
    for (let g = 0; g < n; g++) { const p = pattern(1); p[0] = g & 0xff; p[1] = g >> 8; p[2] = salt; setPage(vm, g, p); }
  }

  it('scanning for 1 s at R pages/s per VM scans exactly R pages, fractions carried across ticks', async () => {
    const { hv, sh } = await host({ scanRatePerVm: 120, scanRateTotal: 10_000 });
    const a = vmOn(hv, sh);
    distinct(a, 500, 1);
    expect(sh.scan(1)).toBe(120);
    expect(sh.stats.scanned).toBe(120);
    for (let i = 0; i < 4; i++) sh.scan(0.25);
    expect(sh.stats.scanned).toBe(240);
    for (let i = 0; i < 3; i++) sh.tick(sh.now + 1 / 3);
    expect(sh.stats.scanned).toBe(360);
    sh.tick(sh.now + 0.004); // 0.48 pages: nothing yet
    expect(sh.stats.scanned).toBe(360);
    sh.tick(sh.now + 0.005); // 1.08
    expect(sh.stats.scanned).toBe(361);
    expect(() => sh.tick(0)).toThrow(/cannot go from/);
    // One pass over 500 distinct pages is not over yet: 361 different pages, one hint each.
    expect([sh.stats.hints, sh.vmStats(a).hints, sh.stats.passes]).toEqual([361, 361, 0]);
  });

  it('the total rate caps all VMs together and is shared round-robin', async () => {
    const { hv, sh } = await host({ scanRatePerVm: 100, scanRateTotal: 150 });
    const vms = [vmOn(hv, sh), vmOn(hv, sh), vmOn(hv, sh)];
    vms.forEach((v, i) => distinct(v, 300, i));
    expect(sh.scan(1)).toBe(150);
    expect(vms.map((v) => sh.vmStats(v).scanned)).toEqual([50, 50, 50]);
    expect(sh.scan(2)).toBe(300);
    expect(vms.map((v) => sh.vmStats(v).scanned)).toEqual([150, 150, 150]);
  });

  it('only eligible pages are scanned: a VM with few pages is rescanned pass after pass, never a page twice in a batch', async () => {
    const { hv, sh } = await host({ scanRatePerVm: 100 });
    const a = vmOn(hv, sh);
    distinct(a, 30, 0);
    expect(sh.scan(1)).toBe(100);
    expect(sh.stats.passes).toBeGreaterThanOrEqual(3);
    expect(sh.stats.hints).toBe(30); // one hint per distinct page, never duplicated
    const empty = vmOn(hv, sh);
    expect(sh.vmStats(empty).scanned).toBe(0);
    sh.scan(1);
    expect(sh.vmStats(empty).scanned).toBe(0);
  });

  it('is deterministic for a seed and depends on it', async () => {
    const run = async (seed: number) => {
      const { hv, sh } = await host({ seed, scanRatePerVm: 40 });
      const a = vmOn(hv, sh), b = vmOn(hv, sh);
      for (let g = 0; g < 200; g++) { setPage(a, g, pattern(g % 37 + 1)); setPage(b, g, pattern(g % 41 + 1)); }
      sh.scan(1);
      return JSON.stringify([sh.stats, sh.sharedFrames()]);
    };
    expect(await run(7)).toBe(await run(7));
    expect(await run(7)).not.toBe(await run(8));
  });
});

describe('hints', () => {
  it('a hint whose page changed is dropped on a match; a valid hint shares the hinted page\'s own frame', async () => {
    const { hv, sh } = await host();
    const a = vmOn(hv, sh), b = vmOn(hv, sh);
    setPage(a, 1, pattern(9)); setPage(b, 1, pattern(9)); setPage(a, 2, pattern(9));
    expect(sh.shareNow(a, [1])).toBe(0);
    expect(sh.stats.hints).toBe(1);
    a.memory.write8(1n << 12n, 0); // the hinted page changes (it is not write-protected)
    expect(sh.shareNow(b, [1])).toBe(0);
    expect(sh.stats).toMatchObject({ hintStale: 1, hintHits: 0, hints: 1, pagesShared: 0 });
    const own = hfnOf(b, 1);
    expect(sh.shareNow(a, [2])).toBe(1);
    expect(sh.stats).toMatchObject({ hintStale: 1, hintHits: 1, hints: 0, pagesShared: 1, pagesSharing: 1, compares: 1 });
    expect(hfnOf(b, 1)).toBe(own); // B's frame became the shared one: no copy, no allocation
    expect(hfnOf(a, 2)).toBe(own);
    expect(hv.frames.ownerOf(own!)).toBe(SHARED_OWNER);
    expectExactAccounting(hv, sh, [a, b]);
  });
});

describe('hash collisions', () => {
  it('a false match (equal hash, different contents) never shares', async () => {
    // No zero-page test: every candidate match is settled by a full compare.
    const { hv, sh } = await host({ hashBits: 1, scanRatePerVm: 1000, shareZeroPages: false });
    const a = vmOn(hv, sh), b = vmOn(hv, sh);
    const pats = [11, 12, 13, 14, 15];
    pats.forEach((p, i) => setPage(a, 0x10 + i, pattern(p)));
    setPage(b, 0x10, pattern(16));
    sh.scan(2);
    expect(sh.stats.falseMatches).toBeGreaterThan(0); // 6 distinct pages, 2 keys
    // No two pages are equal, so every full compare found a false match, and each false
    // match was found by a full compare (not by the hash alone).
    expect(sh.stats.falseMatches).toBe(sh.stats.compares);
    expect(sh.stats.pagesShared).toBe(0);
    pats.forEach((p, i) => expectBytes(page(a, 0x10 + i), pattern(p)));
    expectBytes(page(b, 0x10), pattern(16));
    expectExactAccounting(hv, sh, [a, b]);
  });

  it('with a 2-bit hash, identical pages still share and different ones never do', async () => {
    const { hv, sh } = await host({ hashBits: 2, scanRatePerVm: 1000 });
    const a = vmOn(hv, sh), b = vmOn(hv, sh);
    const ref = new Map<string, Uint8Array>();
    for (let g = 0; g < 24; g++) {
      for (const [vm, p] of [[a, g % 6 + 1], [b, g % 8 + 1]] as const) { setPage(vm, g, pattern(p)); ref.set(`${vm.id}:${g}`, pattern(p)); }
    }
    for (let i = 0; i < 5; i++) sh.scan(1);
    expect(sh.stats.falseMatches).toBeGreaterThan(0);
    expect(sh.stats.pagesShared).toBeGreaterThan(0);
    for (const [k, v] of ref) { const [id, g] = k.split(':').map(Number); expectBytes(page(id === a.id ? a : b, g), v); }
    for (const f of sh.sharedFrames()) { // every mapper of a shared frame holds the frame's contents
      const bytes = hv.machine.memory.read(hpaOf(f.hfn), 4096);
      let mappers = 0;
      for (const vm of [a, b]) for (let g = 0; g < 24; g++) if (hfnOf(vm, g) === f.hfn) { mappers++; expectBytes(ref.get(`${vm.id}:${g}`)!, bytes); }
      expect(mappers).toBe(f.refs);
    }
    expectExactAccounting(hv, sh, [a, b]);
  });
});

describe('destroying a VM', () => {
  it('drops its references and frees frames only it held; the other VM is intact', async () => {
    const { hv, sh } = await host({ scanRatePerVm: 1000 });
    const vmFree0 = hv.counts().vmFree;
    const a = vmOn(hv, sh, { guest: true }), b = vmOn(hv, sh);
    for (let g = 0; g < 10; g++) { setPage(a, 0x300 + g, pattern(g + 1)); setPage(b, 0x300 + g, pattern(g + 1)); }
    for (let g = 0; g < 3; g++) { setPage(a, 0x320 + g, pattern(50)); setPage(b, 0x330 + g, pattern(60 + g)); }
    sh.scan(2);
    expect(sh.stats).toMatchObject({ pagesShared: 11, pagesSharing: 12 });
    hv.destroyVm(a);
    expect(hv.frames.usedBy(a.id)).toBe(0);
    expect(sh.stats).toMatchObject({ pagesShared: 10, pagesSharing: 0, hints: 3 }); // A's pattern-50 frame freed
    expect(sh.sharedFrames().every((f) => f.refs === 1)).toBe(true);
    for (let g = 0; g < 10; g++) expectBytes(page(b, 0x300 + g), pattern(g + 1));
    expectExactAccounting(hv, sh, [b]);
    b.memory.write8(0x300n << 12n, 1); // the last sharer takes the frame back
    expect(sh.stats).toMatchObject({ pagesShared: 9, cowReuses: 1 });
    expectExactAccounting(hv, sh, [b]);
    hv.destroyVm(b);
    expect(sh.stats).toMatchObject({ pagesShared: 0, pagesSharing: 0, hints: 0 });
    expect(hv.frames.usedBy(SHARED_OWNER)).toBe(0);
    expect(hv.counts().vmFree).toBe(vmFree0);
    expect(hv.counts().byVm).toEqual({});
  });

  it('refuses native VMs and double registration', async () => {
    const { hv, sh } = await host();
    const v = hv.createVm({ memoryBytes: 2 ** 20, mode: 'nested' });
    sh.addVm(v);
    expect(() => sh.addVm(v)).toThrow(/already registered/);
    hv.destroyVm(v);
    const n = hv.createVm({ memoryBytes: 2 ** 20, mode: 'native' });
    expect(() => sh.addVm(n)).toThrow(/native/);
  });
});
