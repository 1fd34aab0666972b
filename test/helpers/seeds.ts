// Seeds for the property tests (fast-check). Each property has a fixed default seed, so a
// CI run is the same every time and a kill never depends on the day's random draw; the
// environment explores others:
//   PROPERTY_SEED=n       every property runs with seed n instead of its own
//   PROPERTY_SEEDS=k      every property runs with k seeds: its own, then k-1 derived from it
//   PROPERTY_SEEDS=a..b   every property runs with seeds a to b (inclusive)
//   PROPERTY_SEEDS_LOG=f  appends one JSON line per property (seeds run, seeds failed) to f
// With several seeds a property runs them all and then fails listing each failing seed
// (fast-check's own report for it included), so one bad seed does not hide another.
// `npm run test:seeds` (test/helpers/run-seeds.ts) runs every property over many seeds.
import fc from 'fast-check';
import { appendFileSync } from 'node:fs';
import { expect } from 'vitest';

/** Fast-check parameters with the seed required: the property's fixed default. */
export type SeededParameters<Ts> = fc.Parameters<Ts> & { seed: number };

const GOLDEN = 0x9e37_79b9; // spreads derived seeds over the 32-bit range

/** The seeds a property with fixed seed `fixed` runs with under the current environment. */
export function seedsFor(fixed: number, env: NodeJS.ProcessEnv = process.env): number[] {
  const many = env.PROPERTY_SEEDS?.trim();
  if (many) {
    const range = /^(-?\d+)\.\.(-?\d+)$/.exec(many);
    if (range) {
      const [a, b] = [Number(range[1]), Number(range[2])];
      if (b < a) throw new RangeError(`PROPERTY_SEEDS=${many}: empty range`);
      return Array.from({ length: b - a + 1 }, (_, i) => a + i);
    }
    const k = Number(many);
    if (!Number.isInteger(k) || k < 1) throw new RangeError(`PROPERTY_SEEDS=${many}: expected a count >= 1 or a range a..b`);
    return Array.from({ length: k }, (_, i) => (fixed + Math.imul(i, GOLDEN)) | 0);
  }
  const one = env.PROPERTY_SEED?.trim();
  if (one) {
    const s = Number(one);
    if (!Number.isInteger(s)) throw new RangeError(`PROPERTY_SEED=${one}: expected an integer`);
    return [s];
  }
  return [fixed];
}

/** fc.assert of a synchronous property over the seeds of seedsFor(params.seed). */
export function assertProperty<Ts>(prop: fc.IProperty<Ts>, params: SeededParameters<Ts>): void {
  const seeds = seedsFor(params.seed), failed: string[] = [];
  for (const seed of seeds) {
    try { fc.assert(prop, { ...params, seed }); } catch (e) { if (seeds.length === 1) throw e; failed.push(failure(seed, e)); }
  }
  settle(seeds, failed);
}

/** fc.assert of an asynchronous property over the seeds of seedsFor(params.seed). */
export async function assertAsyncProperty<Ts>(prop: fc.IAsyncProperty<Ts>, params: SeededParameters<Ts>): Promise<void> {
  const seeds = seedsFor(params.seed), failed: string[] = [];
  for (const seed of seeds) {
    try { await fc.assert(prop, { ...params, seed }); } catch (e) { if (seeds.length === 1) throw e; failed.push(failure(seed, e)); }
  }
  settle(seeds, failed);
}

/** One line per failing seed: fast-check's report (seed, counterexample) and the error it caught. */
function failure(seed: number, e: unknown): string {
  const lines = String(e instanceof Error ? e.message : e).split('\n').filter((l) => l.trim()).slice(0, 4);
  const cause = e instanceof Error && e.cause !== undefined ? e.cause : undefined;
  if (cause !== undefined) lines.push(`cause: ${String(cause instanceof Error ? cause.message : cause).split('\n')[0]}`);
  return `seed ${seed}: ${lines.join(' | ')}`;
}

/** Logs the seeds run (PROPERTY_SEEDS_LOG) and fails if any failed. */
function settle(seeds: number[], failed: string[]): void {
  const log = process.env.PROPERTY_SEEDS_LOG;
  if (log) {
    const { currentTestName, testPath } = expect.getState();
    appendFileSync(log, JSON.stringify({ file: testPath, test: currentTestName, seeds: seeds.length, failed }) + '\n');
  }
  if (failed.length) throw new Error(`${failed.length} of ${seeds.length} seeds failed:\n${failed.join('\n')}`);
}
