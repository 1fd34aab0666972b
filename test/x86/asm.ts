// Assembles test programs with the system's GNU as (Intel syntax) into raw bytes.
// Without `as` the suites that need it skip, and say so (HAVE_AS is false).

import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

function probe(): boolean {
  try { execFileSync('as', ['--version'], { stdio: 'ignore' }); execFileSync('objcopy', ['--version'], { stdio: 'ignore' }); return true; }
  catch { return false; }
}

export const HAVE_AS = probe();
if (!HAVE_AS) console.warn('x86 tests: GNU as/objcopy not found; suites that assemble programs are SKIPPED');

const cache = new Map<string, Uint8Array>();

/** Assembles `src` (Intel syntax, 64-bit) at address `org`; returns the .text bytes. */
export function asm(src: string, org = 0n): Uint8Array {
  const key = `${org}:${src}`;
  const hit = cache.get(key);
  if (hit) return hit;
  const dir = mkdtempSync(join(tmpdir(), 'memvisor-asm-'));
  try {
    writeFileSync(join(dir, 'a.s'), `.intel_syntax noprefix\n.text\n${src}\n`);
    execFileSync('as', ['--64', '-o', join(dir, 'a.o'), join(dir, 'a.s')], { stdio: ['ignore', 'ignore', 'pipe'] });
    execFileSync('ld', ['-o', join(dir, 'a.elf'), '-Ttext', `0x${org.toString(16)}`, '-e', '0', '--no-warn-rwx-segments', join(dir, 'a.o')],
      { stdio: ['ignore', 'ignore', 'pipe'] });
    execFileSync('objcopy', ['-O', 'binary', '-j', '.text', join(dir, 'a.elf'), join(dir, 'a.bin')], { stdio: 'ignore' });
    const out = new Uint8Array(readFileSync(join(dir, 'a.bin')));
    cache.set(key, out);
    return out;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
