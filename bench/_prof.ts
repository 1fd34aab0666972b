import { Machine, CR0, CR4, EFER, PageTableBuilder, FrameBump } from '../src/index.js';
import { Rng } from '../src/util/rng.js';
const VBASE = 0x7f00_0000_0000, OPS = 1 << 14;
const m = await Machine.create({ memoryBytes: 256 * 2 ** 20 });
const pt = new PageTableBuilder(m.memory, new FrameBump(m.memory, 0x100_0000n, 0x200_0000n), 4);
pt.mapRange(BigInt(VBASE), 0x400_0000n, 16384 * 4096, 4096, { accessed: true, dirty: true });
const mk = (pages: number, kind: 'load' | 'translate') => { const b = m.createBatch(OPS); const r = new Rng(42); for (let i = 0; i < OPS; i++) b.set(i, kind, VBASE + r.below(pages) * 4096 + r.below(512) * 8, 8); return b; };
const cpu = (o = {}) => { const c = m.createCpu(o); c.setRegisters({ cr0: CR0.PG | CR0.WP, cr3: pt.root, cr4: CR4.PAE, efer: EFER.LME | EFER.NXE }); return c; };
const which = process.argv[2] ?? 'random';
const b = which === 'hit' ? mk(32, 'load') : which === 'walk' ? mk(16384, 'translate') : mk(16384, 'load');
const c = which === 'walk' ? cpu({ tlb: false, psc: false }) : cpu();
const t0 = performance.now(); let n = 0;
while (performance.now() - t0 < 3000) { c.execute(b); n += OPS; }
console.log(which, (n / (performance.now() - t0) * 1000 / 1e6).toFixed(2), 'M/s');
if (which === 'hit') {
  for (let k = 0; k < 3; k++) {
    let t = performance.now(); for (let i = 0; i < 200; i++) c.execute(b); const th = performance.now() - t;
    t = performance.now(); for (let i = 0; i < 200; i++) m.core.rawLoads(b.ptr, OPS); const tr = performance.now() - t;
    const bt = mk(32, 'translate');
    t = performance.now(); for (let i = 0; i < 200; i++) c.execute(bt); const tt = performance.now() - t;
    console.log('hit', (200 * OPS / th / 1e3).toFixed(1), 'raw', (200 * OPS / tr / 1e3).toFixed(1), 'xlate', (200 * OPS / tt / 1e3).toFixed(1), 'M/s', c.counters().l1Hits4k ?? '');
  }
}
