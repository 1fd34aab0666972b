// The browser's default core source (web/vite.config.ts aliases src/core/wasm-source.ts to
// this file): the bundler emits build/memvisor.wasm as a local asset and gives its URL.
import wasmUrl from '../../build/memvisor.wasm?url';

export async function defaultCoreBytes(): Promise<Uint8Array> {
  const r = await fetch(wasmUrl);
  if (!r.ok) throw new Error(`memvisor: cannot fetch the core (${wasmUrl}): HTTP ${r.status}`);
  return new Uint8Array(await r.arrayBuffer());
}
