// guests/os/programs.ts: the host's model of memvisor-os's programs and its command-line
// check. The expected lines are what the kernel printed on memvisor (test/os/boot-memvisor.test.ts).
import { describe, expect, it } from 'vitest';
import { checkConsole, parseOsCmdline, randomLine, toucherChecksum, pagecacheChecksum, pagecacheFilePages, mix64 } from '../../guests/os/programs.js';

describe('memvisor-os programs, host side', () => {
  it('models the checksums the guest printed', () => {
    expect(toucherChecksum(2, 1)).toBe('502e1ea803eeebc9');
    expect(randomLine(1, 5000, 1)).toBe('random: 1 MiB 5000 accesses (2464 writes) checksum 51427d00ddea9dfd ok');
    expect(pagecacheChecksum(0)).toBe('0000000000000000');
  });

  it('parses a command line with defaults, and says what is wrong with a bad one', () => {
    expect(parseOsCmdline('run=toucher:8,pagecache:4:2:3 linger=5')).toEqual({
      programs: [{ name: 'toucher', args: [8, 1, 0] }, { name: 'pagecache', args: [4, 2, 3, 0, 1] }], lingerSeconds: 5, balloon: true });
    expect(parseOsCmdline('balloon=off run=hello').balloon).toBe(false);
    expect(parseOsCmdline('seed=42 run=hello').seed).toBe(42);
    expect(() => parseOsCmdline('seed=x run=hello')).toThrow(/unknown option "seed=x"/);
    expect(() => parseOsCmdline('run=pagecache:1:1:1:2:3:4')).toThrow(/too many arguments/);
    expect(() => parseOsCmdline('linger=2')).toThrow(/needs run=/);
    expect(() => parseOsCmdline('run=crash')).toThrow(/unknown program "crash"/);
    expect(() => parseOsCmdline('run=toucher:-1')).toThrow(/"-1" is not a whole number/);
    expect(() => parseOsCmdline(`run=${'hello,'.repeat(60)}hello`)).toThrow(/characters; the kernel keeps 255/);
  });

  it('verifies every line and flags a wrong checksum, a BAD and a failed mmap', () => {
    const cmd = parseOsCmdline('run=toucher:2:2,random:1:5000:1');
    const good = `toucher: 2 MiB pass 1 checksum ${toucherChecksum(2, 1)} ok\ntoucher: 2 MiB pass 2 checksum ${toucherChecksum(2, 2)} ok\n` +
      `${randomLine(1, 5000, 1)}\nmem: 10 frames total, 3 failed\nlock    1 (0 failed)\n`;
    const c = checkConsole(good, cmd);
    expect(c.units).toEqual({ toucher: 2, random: 1 });
    expect(c.problems).toEqual(['mem: 10 frames total, 3 failed']);
    const bad = checkConsole(good.replace(toucherChecksum(2, 2), '0'.repeat(16)).replace('5000 accesses', '5000 accesses').replace(/ok\nmem.*\n/, 'BAD\n') +
      'toucher: mmap of 2 MiB failed\n', cmd);
    expect(bad.units).toEqual({ toucher: 1 });
    expect(bad.problems).toHaveLength(3);
  });

  it('models pagecache over a file set: a seeded shuffle of its pages, and their checksum', () => {
    const order = pagecacheFilePages(2, 7);
    expect([...order].sort((a, b) => a - b)).toEqual(Array.from({ length: 512 }, (_, i) => i)); // every page once
    expect(pagecacheFilePages(2, 8).slice(0, 256)).not.toEqual(order.slice(0, 256));
    expect(pagecacheFilePages(2, 7)).toEqual(order);
    const M64 = (1n << 64n) - 1n;
    const sum = order.slice(0, 256).reduce((s, f) => (s + mix64((BigInt(f) << 12n) | 1n)) & M64, 0n);
    expect(pagecacheChecksum(1, 2, 7)).toBe(sum.toString(16).padStart(16, '0'));
    expect(pagecacheChecksum(1, 2, 7)).not.toBe(pagecacheChecksum(1));
    const cmd = parseOsCmdline('run=pagecache:1:0:1:2:7');
    const line = (x: string) => `pagecache: took 1 MiB, checksum ${x}\npagecache: released 1 MiB ok\n`;
    expect(checkConsole(line(pagecacheChecksum(1, 2, 7)), cmd)).toMatchObject({ problems: [], units: { pagecache: 1 } });
    expect(checkConsole(line(pagecacheChecksum(1, 2, 8)), cmd).problems).toHaveLength(1);
  });
});
