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

const KERNEL = new Uint8Array(readFileSync(join(OS_DIR as string, 'bin/memvisor-os.elf')));
const M64 = (1n << 64n) - 1n;

/** splitmix64's finalizer, as user/ulib.c mix64. */
function mix64(x: bigint): bigint {
  x = (x + 0x9e3779b97f4a7c15n) & M64;
  x = ((x ^ (x >> 30n)) * 0xbf58476d1ce4e5b9n) & M64;
  x = ((x ^ (x >> 27n)) * 0x94d049bb133111ebn) & M64;
  return x ^ (x >> 31n);
}
const hex = (v: bigint) => v.toString(16).padStart(16, '0');

function toucherSums(mib: number, passes: number): string[] {
  const words = BigInt(mib) * (1n << 20n) / 8n, out: string[] = [];
  for (let p = 0n; p < BigInt(passes); p++) {
    const seed = (p + 1n) << 40n;
    let sum = 0n;
    for (let i = 0n; i < words; i += 8n) sum = (sum + mix64(i ^ seed)) & M64;
    out.push(`toucher: ${mib} MiB pass ${p + 1n} checksum ${hex(sum)} ok`);
  }
  return out;
}

function randomLine(mib: number, accesses: number, seed: number): string {
  const words = BigInt(mib) * (1n << 20n) / 8n, s = BigInt(seed);
  const mem = new Map<bigint, bigint>();
  let state = s, sum = 0n, writes = 0;
  for (let n = 0; n < accesses; n++) {
    state = mix64(state);
    const i = (state >> 8n) % words, want = mix64(i ^ s);
    if (state & 1n) { mem.set(i, want); writes++; continue; }
    sum = (sum + (mem.get(i) ?? 0n)) & M64;
  }
  return `random: ${mib} MiB ${accesses} accesses (${writes} writes) checksum ${hex(sum)} ok`;
}

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
