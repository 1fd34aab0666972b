// Model-based fuzz of the whole memory system: random guest stores and loads (through the
// vCPU, nested and shadow), host writes, reads and cross-VM page copies, sharing scans,
// hypervisor swap-outs, balloon LOCK / UNLOCK, guest touches of ballooned pages and
// sampling periods, on three VMs of one overcommitted host. After every command each VM's
// memory equals its plain reference copy and the frame accounting is exact (see model.ts):
// no byte lost, no byte visible to another VM.
//
// A second property runs the same fuzz with copy-on-write copies broken (the host's page
// copy made a no-op) and expects it to fail: the fuzz can catch a lost byte.
//
// MEMFUZZ_SEED / MEMFUZZ_RUNS run another seed or a longer hunt (CI runs the defaults;
// PROPERTY_SEED / PROPERTY_SEEDS, see helpers/seeds.ts, override the fast-check seed);
// MEMFUZZ_VERBOSE=1 prints what the runs exercised.
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { assertAsyncProperty, seedsFor } from '../helpers/seeds.js';
import { opsArb, configArb, run, sum, SEED } from './fuzz.js';

const RUNS = Number(process.env.MEMFUZZ_RUNS ?? 40);

/** Events every default run set must reach: each mechanism and their interactions. */
const MUST_HAPPEN = [
  'oof', 'guestOof', 'reclaimed',                          // the pool ran dry (host and guest paths) and swapping answered
  'nestedResolves', 'shadowResolves',                      // swap-ins, COW breaks, trap touches on the guests' own paths
  'touches', 'shadowTouches', 'locks', 'starts', 'restarts', // ballooning and its resets
  'lockedShared',                                         // a LOCK of a shared or swapped gfn drops its reference / slot
  'sharing', 'cowBreaks', 'cowReuses', 'falseMatches', 'zeroShared',
  'swapIns', 'swapOuts', 'trapTouches', 'splits',
];

describe('the whole memory system against a reference copy of each VM', () => {
  it('no byte lost, none visible to another VM, frame accounting exact', async () => {
    const seen: Record<string, number> = {};
    await assertAsyncProperty(fc.asyncProperty(opsArb, configArb, async (ops, c) => { sum(seen, await run(ops, c)); }),
      { numRuns: RUNS, seed: SEED });
    if (process.env.MEMFUZZ_VERBOSE) console.log(seen);
    for (const k of MUST_HAPPEN) expect(seen[k], `${k} never happened`).toBeGreaterThan(0);
  }, 60_000 + RUNS * 2_000 * seedsFor(SEED).length);

  it('can fail: with copy-on-write copies lost, the fuzz finds a lost byte', async () => {
    const r = await fc.check(fc.asyncProperty(opsArb, async (ops) => {
      await run(ops, { hashBits: 53, largeLeaf: false }, (s) => { s.hv.machine.memory.copy = () => {}; });
    }), { numRuns: 30, seed: SEED, endOnFailure: true });
    expect(r.failed).toBe(true);
    // A COW break leaves a zero page: a data byte or a guest page-table entry is lost.
    expect(String((r.errorInstance as Error).message)).toMatch(/bytes differ|guest load|unexpected exit/);
  });
});
