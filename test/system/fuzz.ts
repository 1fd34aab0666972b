// The whole-system fuzz's commands and one run of them (used by fuzz.test.ts, and by a
// longer hunt with MEMFUZZ_SEED / MEMFUZZ_RUNS): a fresh system, every command followed by
// the model's full check, then a read of all memory through the host and a teardown that
// must give every frame and swap slot back. Returns what the run exercised.
import fc from 'fast-check';
import { system, type Sys } from './setup.js';
import { SystemModel, VALUES, WORDS, type Op } from './model.js';

export const SEED = Number(process.env.MEMFUZZ_SEED ?? 0x5e5a);

const vmI = fc.integer({ min: 0, max: 2 });
const slotI = fc.integer({ min: 0, max: 32 });               // index into a VM's data gfns
const wordI = fc.integer({ min: 0, max: WORDS.length - 1 });
const valI = fc.integer({ min: 0, max: VALUES.length - 1 });

export const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ k: fc.constant('gstore' as const), vm: vmI, slot: slotI, word: wordI, val: valI }) },
  { weight: 4, arbitrary: fc.record({ k: fc.constant('gload' as const), vm: vmI, slot: slotI, word: wordI }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('touch' as const), vm: vmI, i: fc.nat(64), store: fc.boolean(), val: valI }) },
  { weight: 3, arbitrary: fc.record({ k: fc.constant('hwrite' as const), vm: vmI, slot: slotI, word: wordI, val: valI }) },
  { weight: 3, arbitrary: fc.record({ k: fc.constant('hfill' as const), vm: vmI, slot: slotI, pat: fc.integer({ min: 0, max: 3 }) }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('hread' as const), vm: vmI, slot: slotI }) },
  { weight: 3, arbitrary: fc.record({ k: fc.constant('copy' as const), from: vmI, fslot: slotI, to: vmI, tslot: slotI }) },
  { weight: 3, arbitrary: fc.record({ k: fc.constant('scan' as const), secs: fc.constantFrom(0.2, 1, 3) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('shareNow' as const), vm: vmI }) },
  { weight: 3, arbitrary: fc.record({ k: fc.constant('swapOut' as const), vm: vmI, n: fc.integer({ min: 1, max: 12 }) }) },
  { weight: 3, arbitrary: fc.record({ k: fc.constant('lock' as const), vm: vmI, slot: slotI }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('unlock' as const), vm: vmI, i: fc.nat(64) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('restart' as const), vm: vmI }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('sample' as const), vm: vmI }) },
);

/** A command sequence of one run. */
export const opsArb = fc.array(opArb, { minLength: 30, maxLength: 70 });

/** The host a run uses: hashBits 3 forces hash collisions; largeLeaf puts a 2 MiB EPT leaf under one VM. */
export interface RunConfig { hashBits: number; largeLeaf: boolean }
export const configArb: fc.Arbitrary<RunConfig> = fc.record({ hashBits: fc.constantFrom(53, 53, 3), largeLeaf: fc.boolean() });

/** One run: a fresh system, the commands with a full check after each, a final read of everything. */
export async function run(ops: Op[], c: RunConfig, mutate?: (s: Sys) => void): Promise<Sys['seen'] & Record<string, number>> {
  const s = await system({ seed: SEED ^ ops.length, ...c });
  mutate?.(s);
  try {
    const model = new SystemModel(s);
    model.check();
    ops.forEach((op, i) => {
      try {
        model.apply(op);
        model.check();
      } catch (e) {
        (e as Error).message = `command ${i} ${JSON.stringify(op)}: ${(e as Error).message}`;
        throw e;
      }
    });
    model.finalCheck();
    const trapTouches = s.vms.reduce((n, v) => n + s.sampler.estimates(v.vm).current.touched + (s.sampler.estimates(v.vm).last?.touched ?? 0), 0);
    const sh = s.sharing.stats, sw = s.swap.stats();
    const splits = s.vms.reduce((n, v) => n + (v.vm.ept?.stats.splits ?? 0), 0);
    model.teardown(ops.length % 3);
    return { ...s.seen, sharing: sh.pagesSharing + sh.cowBreaks, cowBreaks: sh.cowBreaks, cowReuses: sh.cowReuses,
      falseMatches: sh.falseMatches, zeroShared: sh.zeroShared, swapIns: sw.swapIns, swapOuts: sw.swapOuts, trapTouches, splits };
  } finally {
    s.close();
  }
}

export const sum = (a: Record<string, number>, b: Record<string, number>) => { for (const k of Object.keys(b)) a[k] = (a[k] ?? 0) + b[k]; };

