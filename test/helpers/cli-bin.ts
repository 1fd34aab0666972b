// The CLI as a child process, run from the TypeScript sources (through tsx), so tests see
// the code as edited without a build. The built bin (bin/memvisor.mjs on dist/) is tested
// from a packed and installed tarball in test/package/pack.test.ts.
import { spawnSync, type SpawnSyncOptionsWithStringEncoding, type SpawnSyncReturns } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const ENTRY = fileURLToPath(new URL('./cli-entry.ts', import.meta.url));
// tsx's loader by absolute path, so a test may run the CLI from any working directory.
const TSX = new URL('../../node_modules/tsx/dist/loader.mjs', import.meta.url).href;

export function runCli(args: string[], opts: Partial<SpawnSyncOptionsWithStringEncoding> = {}): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, ['--import', TSX, ENTRY, ...args], { ...opts, encoding: 'utf8' });
}
