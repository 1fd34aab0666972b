// A workload to profile (npm run profile -- bench/workloads/random-translates.ts [config]):
// random translates over 64 MiB of 4 KiB pages, as bench/index.ts's random loads, for a few
// seconds. config: all (default caches), bare (TLBs and PSCs off), psc, l1 or l2 (that
// cache alone); bare2m: bare, with the region mapped by 2 MiB pages; bare-stores: bare,
// with 8-byte stores in place of the translates.

import { Machine, CR0, CR4, EFER, PageTableBuilder, FrameBump, type CpuOptions } from '../../src/index.js';
import { Rng } from '../../src/util/rng.js';

const OPS = 1 << 14, VBASE = 0x7f00_0000_0000, PAGES = 16384, ROUNDS = 3000;
const off = { l1i4k: false, l1i2m: false, l1d4k: false, l1d2m: false, l1d1g: false, l2: false } as const;
const CONFIGS: Record<string, CpuOptions> = {
  all: {}, bare: { tlb: false, psc: false }, psc: { tlb: false },
  l1: { tlb: { ...off, l1d4k: { entries: 64, ways: 4 } }, psc: false },
  l2: { tlb: { ...off, l2: { entries: 1536, ways: 12 } }, psc: false },
  bare2m: { tlb: false, psc: false },
  'bare-stores': { tlb: false, psc: false },
};

async function main(): Promise<void> {
  const name = process.argv[2] ?? 'all';
  const opts = CONFIGS[name];
  if (!opts) throw new Error(`config must be one of ${Object.keys(CONFIGS).join(', ')}`);
  const m = await Machine.create({ memoryBytes: 256 * 2 ** 20 });
  const pt = new PageTableBuilder(m.memory, new FrameBump(m.memory, 0x100_0000n, 0x200_0000n), 4);
  pt.mapRange(BigInt(VBASE), 0x400_0000n, PAGES * 4096, name === 'bare2m' ? 2 ** 21 : 4096, { accessed: true, dirty: true });
  const b = m.createBatch(OPS);
  const rng = new Rng(42);
  const kind = name === 'bare-stores' ? 'store' : 'translate';
  for (let i = 0; i < OPS; i++) b.set(i, kind, VBASE + rng.below(PAGES) * 4096 + rng.below(512) * 8, 8);
  const cpu = m.createCpu(opts);
  cpu.setRegisters({ cr0: CR0.PG | CR0.WP, cr3: pt.root, cr4: CR4.PAE, efer: EFER.LME | EFER.NXE });
  const t0 = performance.now();
  for (let k = 0; k < ROUNDS; k++) cpu.execute(b);
  console.log(`${name}: ${((ROUNDS * OPS) / ((performance.now() - t0) / 1e3) / 1e6).toFixed(1)} M ${kind}s/s`);
}

main().catch((e) => { console.error(e); process.exit(1); });
