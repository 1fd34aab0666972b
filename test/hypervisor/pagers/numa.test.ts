// NUMA placement and rebalancing (src/hypervisor/pagers/numa.ts, HostFrames nodes): frames
// come from the home node first, spill in order, and the balancer moves remote pages home
// at its rate with bytes, the guest's view and per-node frame counts exact.
import { describe, it, expect } from 'vitest';
import { Hypervisor } from '../../../src/hypervisor/monitor/hypervisor.js';
import { NumaBalancer, placement } from '../../../src/hypervisor/pagers/numa.js';
import type { Gfn } from '../../../src/core/addr.js';
import { P2M, frameField } from '../../../src/hypervisor/monitor/p2m.js';
import { bootGuest, guestLoad, pattern, setPage, page, expectBytes } from './sharing/setup.js';

const MiB = 2 ** 20;

/** A 2-node host: VM pool 32 MiB (16 MiB = 4096 frames per node). */
async function twoNodes() {
  const hv = await Hypervisor.create({ hostMemoryBytes: 36 * MiB, hypervisorBytes: 4 * MiB, numaNodes: 2 });
  return hv;
}

describe('NUMA nodes', () => {
  it('splits the VM pool into equal node ranges; a VM gets frames on its home node first, then spills', async () => {
    const hv = await twoNodes();
    expect(hv.frames.nodes).toBe(2);
    expect(hv.frames.nodeRange(0)).toEqual({ start: 0, end: 4096 });
    expect(hv.frames.nodeRange(1)).toEqual({ start: 4096, end: 8192 });
    const vm = hv.createVm({ memoryBytes: 24 * MiB, mode: 'nested' });
    hv.frames.setHome(vm.id, 1);
    vm.prefault(0n, 8n * BigInt(MiB));
    expect(placement(vm, hv.frames).perNode).toEqual([0, 2048]);
    vm.prefault(8n * BigInt(MiB), 12n * BigInt(MiB)); // 3072 more: 2048 fit at home, 1024 spill to node 0
    const p = placement(vm, hv.frames);
    expect(p.perNode).toEqual([1024, 4096 - hv.frames.nodeFree(1)]);
    expect(hv.frames.nodeFree(1)).toBe(0);
    expect(p.remote).toBeCloseTo(1024 / 5120, 10);
    expect(() => hv.frames.setHome(vm.id, 2)).toThrow(/home node 2 outside 0..1/);
  });

  it('the balancer moves remote pages home at its rate; contents, the guest view and node counts stay exact', async () => {
    const hv = await twoNodes();
    const hog = hv.createVm({ memoryBytes: 16 * MiB, mode: 'nested' });
    hog.prefault(0n, 15n * BigInt(MiB)); // node 0 nearly full: 256 frames left
    const vm = hv.createVm({ memoryBytes: 8 * MiB, mode: 'nested' });
    bootGuest(vm);
    for (let g = 512; g < 1024; g++) setPage(vm, g, (() => { const b = pattern(5); b[0] = g & 0xff; b[1] = g >> 8; return b; })());
    const before = placement(vm, hv.frames);
    expect(before.perNode[0]).toBeLessThanOrEqual(256);
    expect(before.remote).toBeGreaterThan(0.5);
    const want = Array.from({ length: 512 }, (_, i) => page(vm, 512 + i).slice());

    hv.destroyVm(hog); // node 0 frees up: time to go home
    const bal = new NumaBalancer(hv.frames, hv.machine.memory, { pagesPerPass: 100 });
    const hot = [1000, 999, 998];
    const first = bal.pass(vm, hot);
    expect(first).toMatchObject({ migrated: 100, noFrame: 0, cycles: 100 * 1300 });
    for (const g of hot) expect(hv.frames.nodeOf(vm.p2m.lookup(g as Gfn)!)).toBe(0); // hot pages went first
    let passes = 1;
    while (placement(vm, hv.frames).remote > 0) { bal.pass(vm); passes++; }
    const remoteBefore = before.pages - before.perNode[0];
    expect(passes).toBe(Math.ceil(remoteBefore / 100));
    expect(placement(vm, hv.frames)).toMatchObject({ perNode: [before.pages, 0], remote: 0 });
    expect(hv.frames.usedBy(vm.id)).toBe(before.pages);
    for (let i = 0; i < 512; i++) expectBytes(page(vm, 512 + i), want[i], `gfn ${512 + i}`);
    for (const g of [512, 700, 1023]) {
      expect(guestLoad(hv, vm, BigInt(g) << 12n) & 0xffffn).toBe(BigInt((g & 0xff) | ((g >> 8) << 8)));
    }
  });

  it('stops when the home node is full', async () => {
    const hv = await twoNodes();
    const vm = hv.createVm({ memoryBytes: 24 * MiB, mode: 'nested' });
    vm.prefault(0n, 20n * BigInt(MiB)); // 4096 on node 0 (home), 1024 spilled to node 1
    const r = new NumaBalancer(hv.frames, hv.machine.memory, { pagesPerPass: 50 }).pass(vm);
    expect(r).toMatchObject({ migrated: 0, noFrame: 1 });
    expect(placement(vm, hv.frames).perNode).toEqual([4096, 1024]);
  });
});

describe('NUMA replicas of read-only shared pages', () => {
  it('each node gets one replica per content; refs, frames and bytes stay exact; a write breaks COW from a replica', async () => {
    const { PageSharing } = await import('../../../src/hypervisor/pagers/sharing.js');
    const { expectExactAccounting, sharedGfns, vmOn, guestStore } = await import('./sharing/setup.js');
    const hv = await twoNodes();
    const sh = new PageSharing(hv, { scanRatePerVm: 1e5, scanRateTotal: 1e5 });
    const vms = [0, 0, 1, 1].map((home) => {
      const vm = vmOn(hv, sh, { mib: 4 });
      hv.frames.setHome(vm.id, home);
      return vm;
    });
    const content = (i: number) => { const b = pattern(9); b[0] = i; b[1] = 0x77; return b; };
    for (const vm of vms) for (let i = 0; i < 100; i++) setPage(vm, 600 + i, content(i));
    sh.scan(1);
    sh.scan(1);
    expect(vms.map(sharedGfns)).toEqual([100, 100, 100, 100]);
    expect(sh.stats).toMatchObject({ pagesShared: 100, saved: 300 });
    const remoteShared = (vm: typeof vms[0]) => {
      let n = 0;
      vm.p2m.forEach((_g, w) => { if (hv.frames.nodeOf(frameField(w)) !== hv.frames.homeOf(vm.id)) n++; }, P2M.PRESENT | P2M.SHARED, P2M.PRESENT | P2M.SHARED);
      return n;
    };
    const bal = new NumaBalancer(hv.frames, hv.machine.memory, { pagesPerPass: 1000, sharing: sh });
    const passes = vms.map((vm) => bal.pass(vm));
    expect(vms.map(remoteShared)).toEqual([0, 0, 0, 0]);
    // The first frames sit on one node; the other node gets one replica per content.
    expect(sh.stats).toMatchObject({ pagesShared: 200, saved: 200, replicas: 100 });
    expect(passes.reduce((s, p) => s + p.replicated, 0)).toBe(200);
    expectExactAccounting(hv, sh, vms);
    for (const vm of vms) for (const i of [0, 57, 99]) expectBytes(page(vm, 600 + i), content(i), `VM ${vm.id} gfn ${600 + i}`);
    // A guest write to a replicated page gets a private copy; the replica keeps the others' bytes.
    bootGuest(vms[3]);
    guestStore(hv, vms[3], BigInt(600 + 5) << 12n, 0xabcdn);
    expect(guestLoad(hv, vms[3], BigInt(600 + 5) << 12n)).toBe(0xabcdn);
    expectBytes(page(vms[2], 605), content(5));
    expectExactAccounting(hv, sh, vms);
  });
});
