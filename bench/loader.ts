// npm run bench:loader — loading the MMU core with the compiler's generated bindings
// (build/memvisor.js, asconfig "bindings": "raw", what src/core/wasm.ts uses) versus
// @assemblyscript/loader, which the design card names. Prints JSON; asserts nothing.
// The loader is not a dependency: `npm install --no-save @assemblyscript/loader@0.28.20` first
// (the script says so and exits if it is missing).
//
//   instantiateUs   one instance of the compiled module (every Machine makes one)
//   callNs          one call of a u64-returning export (physSize) and a u32 one (maxEvents)
//                   through each path; the loader hands back raw values (signed i64/i32),
//                   so its figure is before the adaptation our TypeScript would then need.

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { instantiate as rawInstantiate } from '../build/memvisor.js';

const REPS = Number(process.env.BENCH_REPS ?? 7);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

function perOp(n: number, fn: () => void): number {
  fn();
  const runs: number[] = [];
  for (let r = 0; r < REPS; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) fn();
    runs.push(Number(process.hrtime.bigint() - t0) / n);
  }
  return median(runs);
}

async function perOpAsync(n: number, fn: () => Promise<unknown>): Promise<number> {
  await fn();
  const runs: number[] = [];
  for (let r = 0; r < REPS; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) await fn();
    runs.push(Number(process.hrtime.bigint() - t0) / n);
  }
  return median(runs);
}

let loader: { instantiate(m: WebAssembly.Module, imports: object): Promise<{ exports: Record<string, any> }> };
try {
  loader = (await import('@assemblyscript/loader' as string)).default;
} catch {
  console.error('bench:loader needs @assemblyscript/loader: npm install --no-save @assemblyscript/loader@0.28.20');
  process.exit(1);
}

const bytes = readFileSync(fileURLToPath(new URL('../build/memvisor.wasm', import.meta.url)));
const module = await WebAssembly.compile(bytes);
const raw = await rawInstantiate(module, { env: {} });
const viaLoader = (await loader.instantiate(module, { env: {} })).exports;
let sink = 0n;
let sinkN = 0;
const CALLS = 2_000_000;
const result = {
  node: process.version,
  wasmBytes: bytes.length,
  instantiateUs: {
    raw: (await perOpAsync(200, () => rawInstantiate(module, { env: {} }))) / 1000,
    loader: (await perOpAsync(200, () => loader.instantiate(module, { env: {} }))) / 1000,
  },
  callNs: {
    rawU64: perOp(CALLS, () => { sink ^= raw.physSize(); }),
    loaderU64: perOp(CALLS, () => { sink ^= BigInt.asUintN(64, viaLoader.physSize()); }),
    rawU32: perOp(CALLS, () => { sinkN ^= raw.maxEvents(); }),
    loaderU32: perOp(CALLS, () => { sinkN ^= viaLoader.maxEvents() >>> 0; }),
  },
};
console.log(JSON.stringify(result, null, 2));
if (sink === -1n && sinkN === -1) console.log(''); // keeps the calls observable
