// The committed memvisor-os binary (guests/os/bin) must match its sources.
// 1. Always: bin/BUILD-INFO.json names the sha256 of the committed ELF and of
//    the sources it was built from; both must match the files in the tree.
// 2. With gcc/ld present (and the same versions that built the committed ELF):
//    a rebuild into a temp dir must be byte-identical (the build is reproducible).
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build, OS_DIR, sourcesHash } from '../../guests/os/build.mjs';

const BIN = join(OS_DIR as string, 'bin');
const info = JSON.parse(readFileSync(join(BIN, 'BUILD-INFO.json'), 'utf8')) as {
  kernel: string; sha256: string; sources: string; gcc: string; ld: string;
};
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

function version(cmd: string): string | null {
  try { return execFileSync(cmd, ['--version'], { encoding: 'utf8' }).split('\n')[0].trim(); } catch { return null; }
}
const gcc = version('gcc'), ld = version('ld');
const sameToolchain = gcc === info.gcc && ld === info.ld;
const why = !gcc || !ld ? 'gcc/ld not installed' : `toolchain differs from the one that built the committed ELF (${info.gcc})`;

describe('memvisor-os committed binary', () => {
  it('BUILD-INFO matches the committed ELF', () => {
    const elf = readFileSync(join(BIN, info.kernel));
    expect(sha256(elf)).toBe(info.sha256);
    expect(elf.subarray(0, 4).toString('latin1')).toBe('\x7fELF');
  });

  it('was built from the sources in the tree (run `npm run build:os` after editing guests/os)', () => {
    expect(sourcesHash()).toBe(info.sources);
  });

  it.skipIf(!sameToolchain)(`rebuilds byte-identically${sameToolchain ? '' : ` [SKIPPED: ${why}]`}`, () => {
    const out = mkdtempSync(join(tmpdir(), 'memvisor-os-test-'));
    try {
      const elf = build(out) as string;
      expect(existsSync(elf)).toBe(true);
      const fresh = readFileSync(elf), committed = readFileSync(join(BIN, info.kernel));
      expect(fresh.length).toBe(committed.length);
      expect(sha256(fresh)).toBe(sha256(committed));
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  }, 120_000);
});
