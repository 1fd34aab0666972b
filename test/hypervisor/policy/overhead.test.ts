// Per-VM overhead memory in admission control (ESX §6.2: a VM reserves min + overhead).
// memvisor's overhead is a fixed + per-MiB part (hypervisor-region frames the VM holds)
// plus the most its paging structures can take: the EPT for every gfn with 4 KiB leaves,
// and in shadow mode each vCPU's shadow pool. The host's accounting includes it:
// total = Σ VM pages + shared + Σ overhead + free, to the frame.
import { describe, it, expect, afterEach } from 'vitest';
import { Hypervisor, HostSwap, HV_OWNER, SHARED_OWNER, type Vm } from '../../../src/hypervisor/index.js';
import { eptTableFrames, tableReserveFrames, DEFAULT_SHADOW_POOL_PAGES } from '../../../src/hypervisor/monitor/paging.js';
import { admit, modelOverhead } from '../../../src/hypervisor/policy/policy.js';
import { Scheduler } from '../../../src/hypervisor/policy/scheduler.js';
import { MemoryManager, type ManagedVm } from '../../../src/hypervisor/policy/manager.js';
import { bootDirectMap, DIRECT } from '../../helpers/guest.js';

const MiB = 2 ** 20;
const managed = (name: string, vm: Vm): ManagedVm => ({ name, vm, blocked: false });

/** frames.total = Σ VM pages + shared + Σ overhead + free, with Σ overhead = every hypervisor-region frame in use. */
function accounting(hv: Hypervisor, vms: Vm[]) {
  const c = hv.frames.counts();
  const pages = vms.reduce((a, v) => a + hv.frames.usedBy(v.id), 0);
  const overhead = vms.reduce((a, v) => a + v.overheadInUse, 0);
  return { total: c.total, sum: pages + hv.frames.usedBy(SHARED_OWNER) + overhead + c.free, overhead, hvUsed: hv.frames.usedBy(HV_OWNER) };
}

describe('table reserve of a paging mode', () => {
  it('counts the EPT tables that map every gfn with 4 KiB leaves, exactly', () => {
    expect(eptTableFrames(1)).toBe(4);                  // PT, PD, PDPT, PML4
    expect(eptTableFrames(4096)).toBe(8 + 1 + 1 + 1);   // 16 MiB
    expect(eptTableFrames(65536)).toBe(128 + 1 + 1 + 1); // 256 MiB
    expect(eptTableFrames(512 * 512 + 1)).toBe(513 + 2 + 1 + 1);
    expect(eptTableFrames(4096, 5)).toBe(12);
    expect(tableReserveFrames(4096, 'native')).toBe(0);
    expect(tableReserveFrames(4096, 'nested')).toBe(11);
    expect(tableReserveFrames(4096, 'shadow')).toBe(11 + DEFAULT_SHADOW_POOL_PAGES);
    expect(tableReserveFrames(4096, 'shadow', { shadowPoolPages: 256 })).toBe(11 + 256);
    expect(() => eptTableFrames(-1)).toThrow('frames must be a whole number >= 0, got -1');
  });

  it('a nested VM backed everywhere holds exactly its reserve; a shadow VM never more than its reserve', async () => {
    const hv = await Hypervisor.create({ hostMemoryBytes: 48 * MiB, hypervisorBytes: 8 * MiB });
    const nested = hv.createVm({ memoryBytes: 16 * MiB, mode: 'nested' });
    nested.prefault(0n, 16n * BigInt(MiB));
    expect(nested.tableReserve).toBe(11);
    expect(nested.stats.tableFrames).toBe(11);
    const shadow = hv.createVm({ memoryBytes: 4 * MiB, mode: 'shadow', shadowPoolPages: 64 });
    expect(shadow.tableReserve).toBe(eptTableFrames(1024) + 64);
    bootDirectMap(shadow, { ptFirst: 0x100, ptEnd: 0x140 });
    // Touch every page through the guest's tables: EPT (walker) and shadow tables fill up.
    const b = hv.machine.createBatch(4096);
    for (let g = 0x200; g < 1024; g += 512) {
      b.clear();
      for (let i = g; i < Math.min(1024, g + 512); i++) b.store(DIRECT + (BigInt(i) << 12n), BigInt(i));
      expect(shadow.vcpus[0].run(b).reason).toBe('end');
      expect(shadow.stats.tableFrames).toBeLessThanOrEqual(shadow.tableReserve);
    }
    expect(shadow.stats.tableFrames).toBeGreaterThan(eptTableFrames(1024)); // the shadow pool is in use too
    const a = accounting(hv, [nested, shadow]);
    expect(a.sum).toBe(a.total);
    expect(a.overhead).toBe(a.hvUsed);
  });

  it('refuses a shadow pool too small to hold one fill', async () => {
    const hv = await Hypervisor.create({ hostMemoryBytes: 8 * MiB });
    expect(() => hv.createVm({ memoryBytes: MiB, mode: 'shadow', shadowPoolPages: 8 })).toThrow('a shadow pool needs at least 16 pages, got 8');
  });
});

describe('admission with overhead in its own region', () => {
  const host = { frames: 1024, overheadFrames: 64, swapFrames: 4096 };
  const vm = (min: number, overhead: number) => ({ min, max: 1024, shares: 10, overhead });

  it('reserves floors in host memory and overheads in the hypervisor region, exactly at both limits', () => {
    expect(admit(host, [vm(512, 40)], vm(512, 24))).toEqual({ ok: true, memoryReserved: 1024, memoryFree: 0,
      overheadReserved: 64, overheadFree: 0, swapReserved: 1024, swapFree: 3072 });
  });

  it('refuses one frame of overhead too many, naming the sizes in MiB', () => {
    const r = admit(host, [vm(512, 40)], vm(0, 25));
    expect(r).toEqual({ ok: false, reason: 'not enough unreserved hypervisor memory for overhead: the candidate needs 0.098 MiB (25 frames), ' +
      '0.094 MiB (24 frames) is unreserved of 0.25 MiB (64 frames) (overhead of all VMs would be 0.254 MiB (65 frames))' });
    const m = admit(host, [vm(512, 40)], vm(513, 0));
    expect(!m.ok && m.reason).toBe('not enough unreserved memory: the candidate needs min 2.004 MiB (513 frames), 2 MiB (512 frames) is unreserved ' +
      'of 4 MiB (1024 frames) (min of all VMs would be 4.004 MiB (1025 frames))');
    expect(admit(host, [], { ...vm(0, 0), overhead: -1 })).toEqual({ ok: false, reason: 'invalid allocation: overhead must be a whole number of frames >= 0, got -1' });
  });

  it('ESX-style model: a fixed part plus a part per MiB, rounded up', () => {
    expect(modelOverhead({ fixedFrames: 64, framesPerMiB: 2 }, 4096)).toBe(64 + 32);
    expect(modelOverhead({ fixedFrames: 0, framesPerMiB: 0.5 }, 256 * 3)).toBe(2); // 1.5 → 2
    expect(() => modelOverhead({ fixedFrames: 1.5, framesPerMiB: 0 }, 1)).toThrow('overhead fixedFrames must be a whole number >= 0, got 1.5');
  });
});

describe('the memory manager reserves each VM\'s overhead', () => {
  const swaps: HostSwap[] = [];
  afterEach(() => { while (swaps.length) swaps.pop()!.close(); });
  async function host(hvMiB: number) {
    const hv = await Hypervisor.create({ hostMemoryBytes: (32 + hvMiB) * MiB, hypervisorBytes: hvMiB * MiB });
    const swap = new HostSwap(hv, { capacity: 1 << 15 });
    swaps.push(swap);
    const mgr = new MemoryManager({ hv, sched: new Scheduler({ hz: 2e6 }), swap, overhead: { fixedFrames: 64, framesPerMiB: 2 } });
    return { hv, mgr };
  }

  it('takes the fixed + per-MiB frames at admission and counts them with the tables', async () => {
    const { hv, mgr } = await host(1);
    const a = hv.createVm({ memoryBytes: 16 * MiB, mode: 'nested' });
    mgr.add(managed('a', a), { min: 1024, max: 4096, shares: 10 });
    expect(a.stats.overheadFrames).toBe(64 + 32);
    a.prefault(0n, 16n * BigInt(MiB));
    expect(a.overheadInUse).toBe(96 + 11);
    const acc = accounting(hv, [a]);
    expect(acc.sum).toBe(acc.total);
    expect(acc.hvUsed).toBe(107);
    hv.destroyVm(a);
    expect(hv.frames.usedBy(HV_OWNER)).toBe(0);
  });

  it('refuses a VM whose overhead does not fit the unreserved hypervisor memory and leaves the host as it was', async () => {
    const { hv, mgr } = await host(1); // 256 frames; each 16 MiB nested VM reserves 96 + 11 = 107
    const vms = ['a', 'b', 'c'].map(() => hv.createVm({ memoryBytes: 16 * MiB, mode: 'nested' }));
    mgr.add(managed('a', vms[0]), { min: 0, max: 4096, shares: 10 });
    mgr.add(managed('b', vms[1]), { min: 0, max: 4096, shares: 10 });
    const before = hv.frames.counts();
    expect(() => mgr.add(managed('c', vms[2]), { min: 0, max: 4096, shares: 10 })).toThrow(
      'c not admitted: not enough unreserved hypervisor memory for overhead: the candidate needs 0.418 MiB (107 frames), ' +
      '0.164 MiB (42 frames) is unreserved of 1 MiB (256 frames) (overhead of all VMs would be 1.254 MiB (321 frames))');
    expect(hv.frames.counts()).toEqual(before);
    expect(mgr.list().map((e) => e.m.name)).toEqual(['a', 'b']);
    expect(vms[2].stats.overheadFrames).toBe(0);
  });

  it('refuses a VM whose min does not fit the unreserved VM memory, in MiB', async () => {
    const { hv, mgr } = await host(4);
    const a = hv.createVm({ memoryBytes: 32 * MiB, mode: 'nested' }), b = hv.createVm({ memoryBytes: 16 * MiB, mode: 'nested' });
    mgr.add(managed('a', a), { min: 6144, max: 8192, shares: 10 }); // 24 of 32 MiB
    expect(() => mgr.add(managed('b', b), { min: 2049, max: 4096, shares: 10 })).toThrow(
      'b not admitted: not enough unreserved memory: the candidate needs min 8.004 MiB (2049 frames), 8 MiB (2048 frames) is unreserved ' +
      'of 32 MiB (8192 frames) (min of all VMs would be 32.004 MiB (8193 frames))');
  });

  it('reserves a shadow VM\'s pool: it does not fit where a nested VM of the same size does', async () => {
    const { hv, mgr } = await host(4); // 1024 frames
    const s = hv.createVm({ memoryBytes: 16 * MiB, mode: 'shadow' });
    expect(() => mgr.add(managed('s', s), { min: 0, max: 4096, shares: 10 })).toThrow(/the candidate needs 16.418 MiB \(4203 frames\)/); // 96 + 11 + 4096
    const small = hv.createVm({ memoryBytes: 16 * MiB, mode: 'shadow', shadowPoolPages: 512 });
    mgr.add(managed('small', small), { min: 0, max: 4096, shares: 10 });
    expect(small.tableReserve).toBe(11 + 512);
  });
});
