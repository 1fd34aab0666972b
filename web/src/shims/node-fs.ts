// The browser build's node:fs (web/vite.config.ts aliases it): the few synchronous calls
// the hypervisor's swap file makes, over files held in memory. A page has no disk; the swap
// file's bytes live in this map until close() removes its directory.

const files = new Map<string, Uint8Array>();
const fds = new Map<number, string>();
let nextFd = 3;
let nextDir = 0;

export function mkdtempSync(prefix: string): string { return `${prefix}${(nextDir++).toString(36).padStart(6, '0')}`; }
export function openSync(p: string): number {
  files.set(p, new Uint8Array(0));
  fds.set(nextFd, p);
  return nextFd++;
}
function file(fd: number): Uint8Array {
  const p = fds.get(fd);
  if (p === undefined) throw new Error(`EBADF: bad file descriptor ${fd}`);
  return files.get(p)!;
}
export function ftruncateSync(fd: number, n: number): void {
  const old = file(fd);
  const f = new Uint8Array(n);
  f.set(old.subarray(0, Math.min(n, old.length)));
  files.set(fds.get(fd)!, f);
}
export function writeSync(fd: number, data: Uint8Array, off: number, len: number, pos: number): number {
  let f = file(fd);
  if (pos + len > f.length) { ftruncateSync(fd, pos + len); f = file(fd); }
  f.set(data.subarray(off, off + len), pos);
  return len;
}
export function readSync(fd: number, into: Uint8Array, off: number, len: number, pos: number): number {
  const f = file(fd);
  const n = Math.max(0, Math.min(len, f.length - pos));
  into.set(f.subarray(pos, pos + n), off);
  return n;
}
export function closeSync(fd: number): void { fds.delete(fd); }
export function rmSync(p: string): void { for (const k of [...files.keys()]) if (k === p || k.startsWith(p + '/')) files.delete(k); }
export function existsSync(p: string): boolean { return files.has(p); }
export function readFileSync(): never { throw new Error('node:fs readFileSync is not available in the browser'); }
export function statSync(p: string): never { throw new Error(`${p}: node:fs statSync is not available in the browser (trace files need Node)`); }
export default { mkdtempSync, openSync, ftruncateSync, writeSync, readSync, closeSync, rmSync, existsSync, readFileSync, statSync };
