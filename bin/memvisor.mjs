#!/usr/bin/env node
// The memvisor command: plain node on the compiled CLI (dist/, made by `npm run build`,
// which `npm install` in a clone and `npm pack` run through the prepare script).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const entry = new URL('../dist/src/cli/main.js', import.meta.url);
if (!existsSync(fileURLToPath(entry))) {
  console.error('memvisor: dist/ is missing; run "npm run build" in the memvisor folder');
  process.exit(1);
}
const { main } = await import(entry.href);
await main();
