// EPT D-bit tracking sees a write through a translation the TLB cached from a read (the
// core re-walks to set D, as hardware does for a clean TLB entry), and a store the harvest
// missed is impossible: read, harvest, read, write → dirty.
import { describe, it, expect } from 'vitest';
import { DirtyTracker } from '../../../src/hypervisor/migration/dirty.js';
import { DIRECT, DATA_FIRST } from '../../../src/experiment/migration-guest.js';
import { twoHosts, writerVm } from './setup.js';

describe('EPT D-bit tracking', () => {
  it('a write after a read through the same cached translation is dirty', async () => {
    const [h1] = await twoHosts();
    const { vm } = writerVm(h1, 'nested', { dataPages: 16, dupPages: 0, hotPages: 16 });
    const t = new DirtyTracker(vm, 'ept-dirty');
    const va = DIRECT + (BigInt(DATA_FIRST + 5) << 12n);
    const b = h1.machine.createBatch(8);
    const run = () => expect(vm.vcpus[0].run(b).reason).toBe('end');
    b.clear().load(va); run();
    const first = t.harvest();                                  // page tables only (walks count as writes)
    expect(first).not.toContain(DATA_FIRST + 5);
    b.clear().load(va).load(va + 8n); run();                    // the TLB now holds a clean translation
    expect(t.harvest()).not.toContain(DATA_FIRST + 5);
    b.clear().load(va).store(va + 16n, 7n); run();              // read, then write through the same entry
    expect(t.harvest()).toContain(DATA_FIRST + 5);
    expect(t.harvest()).not.toContain(DATA_FIRST + 5);          // cleared again
    t.stop();
  });
});
