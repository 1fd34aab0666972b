// memvisor-os's balloon driver (guests/os/kernel/balloon.c), compiled as a host
// program against a strict model of the backdoor device and a model frame
// allocator (guests/os/test/balloon_hosted.c): the Linux vmw_balloon hypercall
// sequences (reset, 2M inflate with refusals, split of refused 2M pages,
// deflate order, ERROR_RESET, unload, non-batched hosts) and frame accounting.
import { describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
// build.mjs is plain JavaScript; OS_DIR is the guests/os folder.
import { OS_DIR } from '../../guests/os/build.mjs';

const hasGcc = (() => { try { execFileSync('gcc', ['--version']); return true; } catch { return false; } })();

describe('memvisor-os balloon driver (hosted)', () => {
  it.skipIf(!hasGcc)(`follows vmw_balloon's hypercall sequences${hasGcc ? '' : ' [SKIPPED: gcc not installed]'}`, () => {
    const dir = mkdtempSync(join(tmpdir(), 'balloon-hosted-'));
    try {
      const exe = join(dir, 'balloon_hosted');
      const os = OS_DIR as string;
      execFileSync('gcc', ['-DHOSTED_TEST', '-O1', '-Wall', '-I', join(os, 'kernel'), join(os, 'kernel/balloon.c'),
        join(os, 'test/balloon_hosted.c'), '-o', exe]);
      const r = spawnSync(exe, { encoding: 'utf8' });
      const out = r.stdout;
      expect(out).not.toContain('FAIL');
      expect(out.match(/^ok so far: /gm)?.length).toBe(8);
      expect(out.trim().endsWith('ALL OK')).toBe(true);
      expect(r.status).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
