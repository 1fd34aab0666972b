// `memvisor serve`: serves the browser page (web/dist, built by `npm run build:web`; built
// here first when missing) on localhost. A plain static server: the page needs nothing from
// it but its own files (the Wasm core is one of them), so any static host serves it as well.

import { createServer, type Server } from 'node:http';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { extname, join, normalize, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

export const WEB_DIST = fileURLToPath(new URL('../../web/dist', import.meta.url));

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8',
  '.wasm': 'application/wasm', '.json': 'application/json', '.svg': 'image/svg+xml', '.png': 'image/png',
};

/** Builds web/dist with Vite (a dev dependency: present in a clone, not in an installed package). */
export async function buildWeb(): Promise<void> {
  const vite = await import('vite').catch(() => {
    throw new Error('web/dist is missing and Vite is not installed: run "npm run build:web" in a clone of memvisor');
  });
  await vite.build({ configFile: fileURLToPath(new URL('../../web/vite.config.ts', import.meta.url)), logLevel: 'warn' });
}

/** Starts the static server on host:port (port 0: any free port); resolves once listening. */
export function serveDir(dir: string, port: number, host = '127.0.0.1'): Promise<Server> {
  const root = resolve(dir);
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    let file = normalize(join(root, path));
    if (file !== root && !file.startsWith(root + sep)) { res.writeHead(403).end(); return; }
    if (existsSync(file) && statSync(file).isDirectory()) file = join(file, 'index.html');
    if (!existsSync(file)) { res.writeHead(404, { 'content-type': 'text/plain' }).end('not found'); return; }
    res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream', 'cache-control': 'no-cache' });
    res.end(readFileSync(file));
  });
  return new Promise((ok, fail) => { server.once('error', fail); server.listen(port, host, () => ok(server)); });
}

export async function serveCommand(opts: { port: number; build?: boolean }): Promise<void> {
  if (opts.build || !existsSync(join(WEB_DIST, 'index.html'))) await buildWeb();
  const server = await serveDir(WEB_DIST, opts.port);
  const a = server.address();
  const port = typeof a === 'object' && a ? a.port : opts.port;
  console.log(`memvisor in the browser: http://localhost:${port}/  (Ctrl-C stops)`);
}
