// Property: the checksums memvisor-os's user programs print on memvisor equal a plain
// TypeScript model of the same programs (guests/os/user/{toucher,random,forktree}.c),
// for random sizes, access counts, seeds and fork-tree shapes — so demand-zero pages,
// COW copies and every process's memory hold exactly what the programs wrote.
// Fixed seed; MEMVISOR_OS_SEED / MEMVISOR_OS_RUNS explore others.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Hypervisor } from '../../src/hypervisor/monitor/hypervisor.js';
import { OsMachine } from '../../src/board/os-machine.js';
import { interpretingCpu } from '../../src/board/cpu-adapter.js';
import { OS_DIR } from '../../guests/os/build.mjs';
import { mix64, randomLine, toucherChecksum } from '../../guests/os/programs.js';

const KERNEL = new Uint8Array(readFileSync(join(OS_DIR as string, 'bin/memvisor-os.elf')));
const M64 = (1n << 64n) - 1n;

const hex = (v: bigint) => v.toString(16).padStart(16, '0');

// The programs' checksums come from the host's model of them (guests/os/programs.ts, which
// the os-guests scenario also checks consoles with); the kernel must print exactly these.
const toucherSums = (mib: number, passes: number): string[] =>
  Array.from({ length: passes }, (_, p) => `toucher: ${mib} MiB pass ${p + 1} checksum ${toucherChecksum(mib, p + 1)} ok`);

/** Every node's final checksum: first half its own tag, second half the root's. */
function forktreeSums(depth: number, kib: number): Map<number, string> {
  const words = BigInt(kib) * 1024n / 8n, out = new Map<number, string>();
  const val = (i: bigint, tag: bigint) => mix64(i ^ (tag << 32n));
  for (let tag = 1; tag < 2 ** (depth + 1); tag++) {
    let sum = 0n;
    for (let i = 0n; i < words; i++) sum = (sum + val(i, i < words / 2n ? BigInt(tag) : 1n)) & M64;
    out.set(tag, hex(sum));
  }
  return out;
}

async function boot(cmdline: string): Promise<string> {
  const hv = await Hypervisor.create({ hostMemoryBytes: 96 * 2 ** 20 });
  const out: number[] = [];
  const m = new OsMachine({ hv, kernel: KERNEL, memoryBytes: 64 * 2 ** 20, mode: 'nested', cpu: interpretingCpu,
    load: { cmdline }, console: (b) => out.push(b) });
  const r = m.run({ instructions: 2e8 });
  expect(r.stop).toBe('power-off');
  expect(m.counters().staleUses).toBe(0);
  return Buffer.from(out).toString('latin1');
}

describe('memvisor-os checksums against a model of its programs', () => {
  it('toucher, random and forktree print what the model computes', async () => {
    const arb = fc.record({
      tmib: fc.integer({ min: 1, max: 3 }), passes: fc.integer({ min: 1, max: 2 }),
      rmib: fc.integer({ min: 1, max: 4 }), accesses: fc.integer({ min: 1, max: 30_000 }), rseed: fc.integer({ min: 0, max: 1e9 }),
      depth: fc.integer({ min: 0, max: 2 }), kib: fc.constantFrom(8, 16, 40),
    });
    await fc.assert(fc.asyncProperty(arb, async (c) => {
      const out = await boot(`run=toucher:${c.tmib}:${c.passes},random:${c.rmib}:${c.accesses}:${c.rseed},forktree:${c.depth}:${c.kib}`);
      for (const line of toucherSums(c.tmib, c.passes)) expect(out).toContain(`\n${line}\n`);
      expect(out).toContain(`\n${randomLine(c.rmib, c.accesses, c.rseed)}\n`);
      const want = forktreeSums(c.depth, c.kib);
      const got = new Map([...out.matchAll(/^forktree: node (\d+) pid \d+ checksum ([0-9a-f]{16}) ok$/gm)].map((x) => [Number(x[1]), x[2]]));
      expect(got).toEqual(want);
    }), { seed: Number(process.env.MEMVISOR_OS_SEED ?? 0x05c0ffee), numRuns: Number(process.env.MEMVISOR_OS_RUNS ?? 4) });
  }, 240_000);
});
