// The vCPU state record (assembly/x86/migrate.ts) moves a vCPU's hidden state to a vCPU of
// another core instance: pending interrupts, HLT, the exception bitmap and a pending
// exception survive the trip slot for slot; a record of the wrong length is refused.
import { describe, it, expect } from 'vitest';
import { Machine } from '../../src/core/machine.js';

describe('vCPU state record', () => {
  it('round-trips between two machines, slot for slot', async () => {
    const [a, b] = [await Machine.create({ memoryBytes: 1 << 20 }), await Machine.create({ memoryBytes: 1 << 20 })];
    const src = a.createCpu(), dst = b.createCpu();
    src.setRegisters({ cr0: 0n, cr3: 0n, cr4: 0n, efer: 0n, rflags: 2n, pkru: 0, cpl: 0, rip: 0x1000n, tsc: 12345n });
    src.injectInterrupt(0x41);
    src.injectInterrupt(0xef);
    src.setExceptionBitmap(1 << 8);
    src.injectException(13, 0);
    const rec = src.saveHiddenState();
    expect(rec.length).toBe(45);
    expect(rec[15]).toBe(1n << 8n);                      // exception bitmap
    expect(rec[17]).toBe(1n);                            // the pending #GP
    expect(rec[18]).toBe(13n);
    expect(rec[28]).toBe(1n << 1n);                      // IRR bit 0x41 (word 1, bit 1)
    expect(rec[30]).toBe(1n << 47n);                     // IRR bit 0xef (word 3, bit 47)
    dst.setRegisters(src.getRegisters());
    dst.loadHiddenState(rec);
    expect(dst.saveHiddenState()).toEqual(rec);
    expect(dst.getRegisters().rip).toBe(0x1000n);
    expect(dst.getRegisters().tsc).toBe(12345n);
    expect(dst.nextTimer()).toBe(src.nextTimer());
    expect(() => dst.loadHiddenState(rec.slice(1))).toThrow(/45 slots/);
  });
});
