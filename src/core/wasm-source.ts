// The core's default source in Node: build/memvisor.wasm next to the sources. Browser
// builds replace this module (web/vite.config.ts aliases it to web/src/wasm-source.ts).

import { readFileSync, existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

function wasmPath(): string {
  const p = fileURLToPath(new URL('../../build/memvisor.wasm', import.meta.url));
  if (!existsSync(p)) {
    throw new Error(`memvisor: ${p} is missing; run "npm run build" (npm install does it)`);
  }
  return p;
}

export async function defaultCoreBytes(): Promise<Uint8Array> {
  return readFileSync(wasmPath());
}
