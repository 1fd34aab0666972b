// Views over the core's linear memory follow it when it grows: PhysicalMemory (reads,
// writes, code-write tracking) and the walk-path view notice a grown memory by the
// zero length of their views (growing a non-shared Wasm memory detaches the old buffer).

import { describe, it, expect } from 'vitest';
import { Machine } from '../../src/index.js';
import { env, PWU } from '../helpers/tables.js';

/** Allocates batches until the core's memory has grown (its buffer object changes). */
function growCore(m: Machine): void {
  const before = m.core.memory.buffer;
  for (let i = 0; i < 64 && m.core.memory.buffer === before; i++) m.createBatch(4096);
  expect(m.core.memory.buffer).not.toBe(before); // the test must really grow the memory
}

describe('views across memory growth', () => {
  it('PhysicalMemory reads what was written before, and writes land, after the core grows', async () => {
    const { m } = await env();
    m.memory.write64(0x5000n, 0x1122_3344_5566_7788n);
    growCore(m);
    expect(m.memory.read64(0x5000n)).toBe(0x1122_3344_5566_7788n);
    m.memory.write64(0x5008n, 0xfedc_ba98_7654_3210n);
    growCore(m);
    expect(m.memory.read(0x5008n, 2)).toEqual(new Uint8Array([0x10, 0x32]));
  });

  it('walkValue gives the last walk\'s entries after the core grows', async () => {
    const { m, cpu, t } = await env();
    t.map(0x7000_0000n, 0x40_0000n, { flags: PWU });
    const before = cpu.walkValue(1); // the view is made before the growth
    expect(cpu.translate(0x7000_0000n).ok).toBe(true);
    growCore(m);
    const pte = cpu.walkValue(1);
    expect(pte & 0x000f_ffff_ffff_f000n).toBe(0x40_0000n);
    expect(pte).not.toBe(before);
    expect(cpu.walkPath().values[0]).toBe(pte);
  });

  it('a batch decodes and takes ops after the core grows', async () => {
    const { m } = await env();
    const b = m.createBatch(4);
    b.set(0, 'store', 0x1234_5000n, 4, 0xabcdn, { user: true });
    growCore(m);
    expect(b.op(0)).toEqual({ kind: 'store', va: 0x1234_5000n, size: 4, value: 0xabcdn, user: true, implicit: false });
    b.set(1, 'fetch', 0x9000n, 2);
    growCore(m);
    expect(b.op(1)).toMatchObject({ kind: 'fetch', va: 0x9000n, size: 2 });
  });
});
