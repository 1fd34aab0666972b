// The core's shadow fill (ShadowMmu.fastFill) under a vCPU running machine code: the
// paging-mode program (paging-program.ts: page-table writes single-stepped, a reflected
// #PF, INVLPG, a CR3 reload, a write under CR0.WP=0) with the core's fill on and off
// gives the same registers (TSC included: the cost model bills the same work), port
// output, host memory byte for byte, exits and statistics.

import { describe, it, expect } from 'vitest';
import { HAVE_AS } from './asm.js';
import { runIn } from './paging-program.js';

describe.skipIf(!HAVE_AS)('the core\'s shadow fill under machine code', () => {
  it('changes nothing the guest or the host can see', async () => {
    const [on, off] = [await runIn('shadow', (v) => { v.shadow!.fastFill = true; }),
      await runIn('shadow', (v) => { v.shadow!.fastFill = false; })];
    const son = on.vcpu.shadow!, soff = off.vcpu.shadow!;
    expect(son.fills.core).toBeGreaterThan(0);  // the core filled ...
    expect(son.fills.host).toBeGreaterThan(0);  // ... and the host too (first fills under each table)
    expect(soff.fills.core).toBe(0);
    expect(son.fills.core + son.fills.host).toBe(soff.fills.host);
    expect(on.x).toEqual(off.x);
    expect(on.out).toEqual(off.out);
    expect(on.vcpu.cpu.getRegisters()).toEqual(off.vcpu.cpu.getRegisters());
    expect(son.guestRegisters()).toEqual(soff.guestRegisters());
    expect(son.stats).toEqual(soff.stats);
    expect(on.vcpu.stats).toEqual(off.vcpu.stats);
    expect(on.vcpu.exits).toEqual(off.vcpu.exits);
    expect(on.vcpu.counters()).toEqual(off.vcpu.counters());
    const mem = (r: typeof on) => r.hv.machine.memory.read(0n, r.hv.machine.memory.size);
    expect(Buffer.compare(Buffer.from(mem(on)), Buffer.from(mem(off)))).toBe(0);
    expect(son.stats.ptWritesEmulated).toBeGreaterThan(0);
    expect(son.stats.reflectedFaults).toBe(1);
  });
});
