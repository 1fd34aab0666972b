// The numbers shared across the JS/Wasm boundary have one source, the core's table
// (assembly/abi.ts), and the host's tables are checked against it at load.
import { describe, it, expect } from 'vitest';
import { Machine } from '../../src/core/machine.js';
import { readAbi, hostAbi, abiMismatches } from '../../src/core/abi.js';

describe('shared numbers', () => {
  it('the host agrees with the core on every exit, cache, register, op, control bit, mode and size', async () => {
    const m = await Machine.create({ memoryBytes: 1 << 20 });
    const core = readAbi(m.core);
    expect(core.get('exit.HLT')).toBe(8);
    expect(core.get('cache.epml5e')).toBe(14);
    expect(core.get('layout.tlbs')).toBe(m.core.numTlbs());
    expect(core.get('layout.counters')).toBe(m.core.numCounters());
    expect(abiMismatches(core, hostAbi(m.counterNames.length))).toEqual([]);
  });

  it('a number changed on one side is named', async () => {
    const m = await Machine.create({ memoryBytes: 1 << 20 });
    const host = hostAbi(m.counterNames.length);
    host.set('op.hlt', 9);
    host.delete('reg.cpl');
    expect(abiMismatches(readAbi(m.core), host)).toEqual(['op.hlt: core 6, host 9', 'reg.cpl: core 6, host (none)']);
  });
});
