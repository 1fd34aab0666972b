// Boots the committed memvisor-os under QEMU (TCG) through the test-only
// multiboot shim (guests/os/qemu) — a check of the kernel on a real x86
// implementation, independent of memvisor's interpreter. Skips visibly when
// qemu-system-x86_64 or gcc is missing.
import { describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { OS_DIR } from '../../guests/os/build.mjs';

const has = (cmd: string) => { try { execFileSync(cmd, ['--version']); return true; } catch { return false; } };
const ok = has('qemu-system-x86_64') && has('gcc');
const tag = ok ? '' : ' [SKIPPED: qemu-system-x86_64 or gcc not installed]';

function boot(cmdline: string): string {
  const r = spawnSync('node', [join(OS_DIR as string, 'qemu/run.mjs'), '--timeout', '100', '--cmdline', cmdline],
    { encoding: 'utf8', timeout: 120_000 });
  return r.stdout;
}
const freeFrames = (out: string) => [...out.matchAll(/^mem: \d+ frames total, (\d+) free/gm)].map((m) => Number(m[1]));

describe('memvisor-os under QEMU', () => {
  it.skipIf(!ok)(`runs the default programs, kills only the crashing one, frees every frame${tag}`, () => {
    const out = boot('');
    expect(out).toMatch(/^hello from pid 1/m);
    expect(out).toMatch(/^toucher: 4 MiB pass 1 checksum df5b834b3061f9bd ok$/m);
    expect(out).toMatch(/^random: 4 MiB 20000 accesses \(9999 writes\) checksum 2f1c8b2b10f4832c ok$/m);
    expect(out).toMatch(/^forktree: node 1 pid \d+ checksum ad282892c1ee33df ok$/m);
    expect(out).toMatch(/^forktree: depth 3, 15 processes, all ok$/m);
    expect(out.match(/^forktree: node \d+ pid \d+ checksum [0-9a-f]{16} ok$/gm)?.length).toBe(15);
    expect(out).toMatch(/^\[\d+ crash\] killed: page fault outside any region$/m);
    expect(out).not.toMatch(/still alive|BAD|PANIC/);
    expect(out).toMatch(/^pagecache: released 16 MiB ok$/m);
    expect(out).toMatch(/^memvisor-os: power off$/m);
    expect(out).toMatch(/^hotplug: no device at port 0x5680$/m);   /* QEMU has no memvisor hotplug device: its ID port reads all ones */
    const [atBoot, atEnd] = freeFrames(out);
    expect(atEnd).toBe(atBoot);
  }, 150_000);

  it.skipIf(!ok)(`preempts, sleeps and gives a page-cache program all memory${tag}`, () => {
    const out = boot('run=sleeper:2,pagecache:0:1,random:2:200000 linger=1');
    expect(out).toMatch(/^sleeper: slept 2 s$/m);
    const took = Number(/^pagecache: took (\d+) MiB/m.exec(out)?.[1]);
    expect(took).toBeGreaterThan(100);           /* 128 MiB guest */
    expect(out).toMatch(/^pagecache: released \d+ MiB ok$/m);
    expect(out).toMatch(/^timer: +[1-9]/m);      /* the balloon worker ran once a second */
    const [atBoot, atEnd] = freeFrames(out);
    expect(atEnd).toBe(atBoot);
  }, 150_000);
});
