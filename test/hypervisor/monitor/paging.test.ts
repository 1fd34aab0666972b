// The paging strategy chosen once per VM (src/hypervisor/monitor/paging.ts).
import { describe, it, expect } from 'vitest';
import { Hypervisor, PageSharing, HostSwap, ActiveSampler } from '../../../src/hypervisor/index.js';
import { pagingFor, requirePageable } from '../../../src/hypervisor/monitor/paging.js';
import { PAGING_MODES } from '../../../src/core/paging-mode.js';

const MiB = 2 ** 20;

describe('paging strategy', () => {
  it('one strategy per mode; only native is direct, only nested walks the EPT, only shadow is single-vCPU', () => {
    expect(PAGING_MODES.map((m) => [m, pagingFor(m).direct, pagingFor(m).eptWalked, pagingFor(m).maxVcpus])).toEqual([
      ['native', true, false, 64], ['shadow', false, false, 1], ['nested', false, true, 64]]);
    expect(() => pagingFor('nested-shadow' as never)).toThrow(/native, shadow or nested/);
  });

  it('is chosen when the VM is created; every pager refuses a native VM through the one helper', async () => {
    const hv = await Hypervisor.create({ hostMemoryBytes: 16 * MiB });
    const vm = hv.createVm({ memoryBytes: 4 * MiB, mode: 'native' });
    expect(vm.paging).toBe(pagingFor('native'));
    expect(() => requirePageable(vm, 'x')).toThrow(`VM ${vm.id} is native: x`);
    expect(() => new PageSharing(hv).addVm(vm)).toThrow(/is native: its gpa = hpa mapping cannot be remapped/);
    const swap = new HostSwap(hv);
    try { expect(() => swap.attach(vm)).toThrow(/is native: its guest-physical frames are host frames/); } finally { swap.close(); }
    expect(() => new ActiveSampler().attach(vm, 0)).toThrow(/is native: sampling needs EPT or shadow/);
  });

  it('a shadow VM with two vCPUs is refused with the reason', async () => {
    const hv = await Hypervisor.create({ hostMemoryBytes: 16 * MiB });
    expect(() => hv.createVm({ memoryBytes: 4 * MiB, mode: 'shadow', vcpus: 2 })).toThrow(/shadow mode runs one vCPU per VM/);
    expect(hv.createVm({ memoryBytes: 4 * MiB, mode: 'nested', vcpus: 2 }).vcpus).toHaveLength(2);
  });
});
