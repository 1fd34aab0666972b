// Live migration of a running VM between two hosts: memory equal byte for byte under a
// guest writing during the copy, exact frame counts on both hosts, rounds that add up.
import { describe, it, expect } from 'vitest';
import { migrate, type MigrationResult } from '../../../src/hypervisor/migration/migrate.js';
import { recordBytes } from '../../../src/hypervisor/migration/wire.js';
import { DATA_FIRST } from '../../../src/experiment/migration-guest.js';
import { twoHosts, writerVm, image, diffPages, nonZeroPresent, HZ } from './setup.js';

const LAYOUT = { dataPages: 600, dupPages: 0, hotPages: 64 };
const BANDWIDTH = 40 * 2 ** 20; // 40 MiB/s: a 4 MiB round takes 0.1 s

const cases = [
  { mode: 'nested', tracking: 'ept-dirty' },
  { mode: 'shadow', tracking: 'write-protect' },
  { mode: 'nested', tracking: 'write-protect' },
] as const;

describe.each(cases)('pre-copy migration ($mode, $tracking)', ({ mode, tracking }) => {
  async function run(rate = 20_000, stopPages = 16): Promise<{ r: MigrationResult; before: Uint8Array; expectFrames: number; writes: number;
    h1: Awaited<ReturnType<typeof twoHosts>>[0]; h2: Awaited<ReturnType<typeof twoHosts>>[1]; free1: number }> {
    const [h1, h2] = await twoHosts();
    const free1 = h1.counts().free;
    const { vm, writer } = writerVm(h1, mode, LAYOUT, { rate });
    writer.run(0.01); // the guest has run before the migration starts
    let before: Uint8Array = new Uint8Array(), expectFrames = -1;
    const r = migrate({
      vm, from: h1, to: h2, tracking, bandwidth: BANDWIDTH, hz: HZ, stopPages, maxRounds: 12,
      runGuest: (s) => writer.run(s),
      onSwitchover: (src) => { before = image(h1, src); expectFrames = nonZeroPresent(h1, src); },
    });
    return { r, before, expectFrames, writes: writer.writes, h1, h2, free1 };
  }

  it('the destination holds the source\'s memory byte for byte; the guest wrote during the copy', async () => {
    const { r, before, writes, h2 } = await run();
    expect(writes).toBeGreaterThan(1000);
    expect(r.rounds.length).toBeGreaterThan(2);                     // writes during the copy made more rounds
    expect(r.rounds[1].pagesSent).toBeGreaterThan(0);
    expect(diffPages(image(h2, r.vm), before)).toEqual([]);
  });

  it('the source frees every frame; the destination holds exactly the non-zero pages', async () => {
    const { r, h1, h2, free1, expectFrames } = await run();
    expect(h1.counts().byVm).toEqual({});
    expect(h1.counts().free).toBe(free1);
    expect(h1.list()).toEqual([]);
    expect(h2.frames.usedBy(r.vm.id)).toBe(expectFrames);
    // 600 data pages (none is zero) and the 3 page-table pages the 2 MiB direct map needs
    expect(expectFrames).toBe(LAYOUT.dataPages + 3);
  });

  it('round 0 sends every backed page; bytes and seconds follow the records and the bandwidth', async () => {
    const { r } = await run();
    const r0 = r.rounds[0];
    // backed before the copy: data pages, the 3 table pages, and none else (the writer writes inside the data)
    expect(r0.pagesSent).toBe(LAYOUT.dataPages + 3);
    expect(r0.byKind.page).toBe(LAYOUT.dataPages + 3);
    expect(r0.bytes).toBe(r0.pagesSent * recordBytes('page'));
    for (const x of r.rounds) {
      const bytes = Object.entries(x.byKind).reduce((n, [k, c]) => n + c * recordBytes(k as never), 0);
      expect(x.bytes - (x.stopAndCopy ? r.stateBytes : 0)).toBe(bytes);
      expect(x.seconds).toBeCloseTo(x.bytes / BANDWIDTH, 12);
    }
    const last = r.rounds[r.rounds.length - 1];
    expect(last.stopAndCopy).toBe(true);
    expect(r.downtimeSeconds).toBeCloseTo(last.bytes / BANDWIDTH, 12);
    expect(r.totalBytes).toBe(r.rounds.reduce((n, x) => n + x.bytes, 0));
    // each pre-copy round sends what the previous one dirtied
    for (let i = 1; i < r.rounds.length; i++) expect(r.rounds[i].pagesSent).toBe(r.rounds[i - 1].pagesDirtied);
  });

  it('dirty pages lie in the hot set (plus page tables the walks touch)', async () => {
    const { r } = await run();
    expect(r.rounds[1].pagesSent).toBeLessThanOrEqual(LAYOUT.hotPages + 3);
    expect(r.rounds[1].pagesSent).toBeGreaterThan(LAYOUT.hotPages / 2);
  });

  it('a guest idle during the copy converges after round 0 with nothing left to send', async () => {
    const { r, before, h2 } = await run(0, 0);
    expect(r.converged).toBe(true);
    expect(r.rounds.length).toBe(2);
    const dirtied = r.rounds[0].pagesDirtied;
    expect(dirtied).toBe(0);
    expect(r.rounds[1].pagesSent).toBe(0);
    expect(diffPages(image(h2, r.vm), before)).toEqual([]);
  });

  it('the guest runs on at the destination and its data stays intact', async () => {
    const { r, before, h2 } = await run();
    const vm = r.vm;
    const g = DATA_FIRST + LAYOUT.hotPages + 5; // outside the hot set: never written
    expect(vm.memory.read(BigInt(g) << 12n, 4096)).toEqual(before.subarray(g * 4096, (g + 1) * 4096));
    const b = h2.machine.createBatch(4);
    b.clear().store(0x4000_0000_00n + (BigInt(g) << 12n), 0x1234_5678n).load(0x4000_0000_00n + (BigInt(g) << 12n));
    expect(vm.vcpus[0].run(b).reason).toBe('end');
    expect(b.value(1)).toBe(0x1234_5678n);
  });
});

describe('migration checks its arguments', () => {
  it('refuses ept-dirty tracking on a shadow VM and leaves the source running', async () => {
    const [h1, h2] = await twoHosts();
    const { vm } = writerVm(h1, 'shadow', LAYOUT);
    expect(() => migrate({ vm, from: h1, to: h2, tracking: 'ept-dirty', bandwidth: BANDWIDTH, hz: HZ, runGuest: () => {} }))
      .toThrow(/ept-dirty.*nested paging/);
    expect(h1.list()).toEqual([vm]);
    expect(h2.list()).toEqual([]);
    expect(h2.counts().byVm).toEqual({});
  });

  it('refuses a native VM (its memory is host frames [0, n))', async () => {
    const [h1, h2] = await twoHosts();
    const vm = h1.createVm({ memoryBytes: 8 * 2 ** 20, mode: 'native' });
    expect(() => migrate({ vm, from: h1, to: h2, tracking: 'write-protect', bandwidth: 1e8, hz: HZ, runGuest: () => {} }))
      .toThrow(/native.*only nested and shadow VMs migrate/);
    expect(h2.list()).toEqual([]);
  });

  it('refuses a zero bandwidth and the same host twice', async () => {
    const [h1, h2] = await twoHosts();
    const { vm } = writerVm(h1, 'nested', LAYOUT);
    expect(() => migrate({ vm, from: h1, to: h2, tracking: 'ept-dirty', bandwidth: 0, hz: HZ, runGuest: () => {} })).toThrow(/bandwidth/);
    expect(() => migrate({ vm, from: h1, to: h1, tracking: 'ept-dirty', bandwidth: 1, hz: HZ, runGuest: () => {} })).toThrow(/two different hosts/);
  });
});
