// --stats: every counter of every VM and vCPU, described, as gem5's stats.txt.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Machine } from '../../../src/core/machine.js';
import { CORE_COUNTER_DOCS } from '../../../src/core/counter-docs.js';
import { Hypervisor } from '../../../src/hypervisor/monitor/hypervisor.js';
import { collectStats, formatStats, VCPU_STAT_DOCS, VM_STAT_DOCS } from '../../../src/hypervisor/monitor/stats.js';
import { main } from '../../../src/cli/main.js';

const MiB = 2 ** 20;
afterEach(() => { vi.restoreAllMocks(); process.exitCode = undefined; });

describe('statistics', () => {
  it('documents every counter the core, the VM and the vCPU keep', async () => {
    const m = await Machine.create({ memoryBytes: 4 * MiB });
    for (const n of [...m.counterNames, 'cycles']) expect(CORE_COUNTER_DOCS[n], n).toBeDefined();
    const hv = await Hypervisor.create({ hostMemoryBytes: 64 * MiB });
    const vm = hv.createVm({ memoryBytes: 8 * MiB, mode: 'nested' });
    for (const k of Object.keys(vm.stats)) expect(VM_STAT_DOCS[k], k).toBeDefined();
    for (const k of Object.keys(vm.vcpus[0].stats)) expect(VCPU_STAT_DOCS[k], k).toBeDefined();
  });

  it('lists each VM and vCPU of the hypervisors made while collecting, with the counters they hold', async () => {
    const before = await Hypervisor.create({ hostMemoryBytes: 16 * MiB }); // made before: not listed
    const stats = collectStats();
    const hv = await Hypervisor.create({ hostMemoryBytes: 64 * MiB });
    const a = hv.createVm({ memoryBytes: 8 * MiB, mode: 'nested' });
    hv.createVm({ memoryBytes: 8 * MiB, mode: 'shadow' });
    a.prefault(0n, BigInt(MiB));
    const bare = await Machine.create({ memoryBytes: 4 * MiB });
    bare.createCpu();
    const lines = stats.finish();
    await Hypervisor.create({ hostMemoryBytes: 16 * MiB }); // made after: not listed
    const byName = new Map(lines.map((l) => [l.name, l]));
    expect(byName.get('hv0.vm1.pagesBacked')?.value).toBe(a.stats.pagesBacked);
    expect(byName.get('hv0.vm1.memoryBytes')?.value).toBe(8 * MiB);
    expect(byName.get('hv0.vm2.vcpu0.walks')).toMatchObject({ value: 0, unit: 'walks' });
    expect(byName.get('hv0.frames.total')?.value).toBe(64 * MiB / 4096);
    expect(byName.get('machine0.cpu0.accesses')).toMatchObject({ value: 0, unit: 'accesses' });
    expect(lines.some((l) => l.name.startsWith('hv1') || l.name.startsWith('machine1'))).toBe(false);
    expect(lines.filter((l) => l.name.startsWith('hv0.vm1.vcpu0.')).length).toBe(Object.keys(a.vcpus[0].counters()).length);
    expect(before.list()).toEqual([]);
    const text = formatStats(lines);
    expect(text).not.toContain('undocumented');
    expect(text).toMatch(/^hv0\.vm1\.vcpu0\.l2Miss +0  # L2 TLB misses \(each starts a page walk\) \(events\)$/m);
  });

  it('`run --stats` writes stats.txt into the report with the run\'s counts', async () => {
    const root = mkdtempSync(join(tmpdir(), 'memvisor-stats-'));
    try {
      vi.spyOn(console, 'log').mockImplementation(() => {});
      const file = join(root, 's.json');
      writeFileSync(file, JSON.stringify({ kind: 'translation', name: 's', memory: '64MiB', accesses: 3000,
        runs: [{ pattern: 'random', workingSet: '64KiB' }, { pattern: 'sequential', workingSet: '1MiB' }] }));
      await main(['node', 'memvisor', 'run', file, '--out', join(root, 'r'), '--quiet', '--stats']);
      expect(process.exitCode).toBeUndefined();
      const text = readFileSync(join(root, 'r', 'stats.txt'), 'utf8');
      expect(text).toMatch(/^machine0\.cpu0\.accesses +3000  # /m);
      expect(text).toMatch(/^machine0\.cpu1\.accesses +3000  # /m);
      expect(text).not.toContain('undocumented');
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
