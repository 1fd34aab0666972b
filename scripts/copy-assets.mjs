// After tsc: copies what the compiled code loads by relative path into dist/, so dist/ is
// self-contained: the Wasm core and its bindings (dist/build) and the shipped scenarios.
import { cpSync, mkdirSync } from 'node:fs';

mkdirSync('dist/build', { recursive: true });
for (const f of ['memvisor.wasm', 'memvisor.js', 'memvisor.d.ts']) cpSync(`build/${f}`, `dist/build/${f}`);
cpSync('scenarios', 'dist/scenarios', { recursive: true });
// The shipped guest OS (memvisor boot with no kernel argument looks for it beside the CLI).
cpSync('guests/os/bin', 'dist/guests/os/bin', { recursive: true });
