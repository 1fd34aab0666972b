// The shipped guest OS (guests/os/bin/memvisor-os.elf; dist/guests/os/bin in the package,
// copied there by scripts/copy-assets.mjs), read from disk beside the code. A namespace
// import of node:fs, so the browser build (whose node:fs shim has no readFileSync) still
// bundles; there the caller gets a clear error instead.
import * as fs from 'node:fs';

/** Where the shipped kernel is, relative to this module (src/board or dist/src/board). */
export const SHIPPED_OS_URL = new URL('../../guests/os/bin/memvisor-os.elf', import.meta.url);

let provided: Uint8Array | undefined;

/**
 * Hands the shipped kernel's bytes to this module where there is no disk to read it from
 * (the browser page's worker fetches the bundled ELF and calls this before a run).
 */
export function provideShippedOs(bytes: Uint8Array): void {
  provided = bytes;
}

/** The shipped kernel's bytes; throws with the path when it cannot be read. */
export function readShippedOs(): Uint8Array {
  if (provided) return provided;
  if (typeof fs.readFileSync !== 'function') {
    throw new Error('the shipped OS is read from disk, which this environment does not have (provideShippedOs hands it over)');
  }
  try {
    return new Uint8Array(fs.readFileSync(SHIPPED_OS_URL));
  } catch (e) {
    throw new Error(`cannot read the shipped OS ${SHIPPED_OS_URL.pathname}: ${(e as Error).message} (npm run build:os builds it)`);
  }
}
