// A managed host sizes its hypervisor region for the overhead admission control reserves
// (paging-structure pools plus an ESX-style fixed + per-MiB part), and each admitted VM
// holds exactly its fixed + per-MiB part there.
import { describe, it, expect } from 'vitest';
import { managedHost, hypervisorMiBFor } from '../../src/experiment/host.js';
import { IdleKernel } from '../../guests/idle.js';
import '../../src/experiment/catalogue.js';
import { parseExperimentScenario } from '../../src/experiment/registry.js';

describe('managed host overhead', () => {
  it('sizes the hypervisor region for its VMs and takes each VM\'s overhead at admission', async () => {
    const overhead = { fixedFrames: 512, framesPerMiB: 4 }; // 2 MiB + 16 KiB per MiB
    const vms = [{ memMiB: 16, mode: 'nested' as const }, { memMiB: 16, mode: 'nested' as const }];
    // Per VM: 11 EPT frames + 512 + 64 = 587; two: 1174 frames, 4.59 MiB → 5 MiB.
    expect(hypervisorMiBFor(vms, overhead)).toBe(5);
    expect(hypervisorMiBFor(vms)).toBe(4); // the floor: 22 frames
    const h = await managedHost({ seed: 1, vmPoolMiB: 24, hz: 2e6, vms, overhead, sampler: false });
    try {
      expect(h.hv.frames.total - h.hv.frames.hypervisorStart).toBe(5 * 256);
      const gs = ['a', 'b'].map((name) => h.add({ name, memoryBytes: 16 << 20, mode: 'nested', workload: new IdleKernel() }, { min: 0, max: 4096, shares: 10 }));
      for (const g of gs) expect(g.vm.stats.overheadFrames).toBe(512 + 64);
      // A third VM's overhead no longer fits the region: refused, naming MiB.
      expect(() => h.add({ name: 'c', memoryBytes: 16 << 20, mode: 'nested', workload: new IdleKernel() }, { min: 0, max: 4096, shares: 10 }))
        .toThrow(/^c not admitted: not enough unreserved hypervisor memory for overhead: the candidate needs 2.293 MiB \(587 frames\)/);
      expect(h.hv.list()).toHaveLength(2);
    } finally { h.close(); }
  });

  it('host scenarios take the overhead model in policy', () => {
    const sc = parseExperimentScenario({ kind: 'host', name: 'o', hostMiB: 16, vms: [{ name: 'a', memMiB: 8, workload: { type: 'idle' } }],
      policy: { overheadFixedMiB: 2, overheadKiBPerMiB: 16 } }) as { params: { policy: Record<string, number> } };
    expect(sc.params.policy).toMatchObject({ overheadFixedMiB: 2, overheadKiBPerMiB: 16 });
  });
});
