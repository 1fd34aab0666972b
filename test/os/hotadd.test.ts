// Memory hot-add on memvisor-os (the committed ELF): OsMachine.hotAdd grows the VM, the
// hotplug device rings the guest's vector, the kernel extends its direct map and frame
// allocator; its `memory` line then reports exactly the VM's new size, and a program
// larger than the VM was before runs to a verified checksum in frames the host backs only
// in the added range. Bad sizes are refused before anything changes; the guest runs on.
import { describe, expect, it } from 'vitest';
import { Hypervisor } from '../../src/hypervisor/monitor/hypervisor.js';
import { OsMachine } from '../../src/board/os-machine.js';
import { interpretingCpu } from '../../src/board/cpu-adapter.js';
import { readShippedOs } from '../../src/board/shipped-os.js';
import { toucherChecksum } from '../../guests/os/programs.js';
import type { Gfn } from '../../src/core/addr.js';

const KERNEL = readShippedOs();
const MiB = 2 ** 20;
const FRAMES_PER_MIB = 256;

async function boot(mode: 'nested' | 'shadow', memMiB: number, cmdline = 'shell', hostMiB = 160) {
  const hv = await Hypervisor.create({ hostMemoryBytes: hostMiB * MiB });
  let out = '';
  const m = new OsMachine({ hv, kernel: KERNEL, memoryBytes: memMiB * MiB, mode, cpu: interpretingCpu,
    load: { cmdline }, console: (b) => { out += String.fromCharCode(b); } });
  /** Runs until the console after `from` matches `re` (or `seconds` of guest time pass); returns that text. */
  const until = (from: number, re: RegExp, seconds: number) => {
    const end = m.seconds + seconds;
    while (!m.stopped && m.seconds < end && !re.test(out.slice(from))) m.run({ seconds: Math.min(end, m.seconds + 0.02) });
    return out.slice(from);
  };
  /** Types a shell line and runs until the guest has answered it (the next prompt), or until `re` matches. */
  const type = (line: string, re = /\nmemvisor-os> /, seconds = 5) => {
    const from = out.length;
    m.uart.pushInput(line + '\n');
    return until(from, re, seconds);
  };
  return { hv, m, type, until, console: () => out };
}

/** The guest's `memory` line: frames online. */
function onlineFrames(answer: string): number {
  const x = /^memory: (\d+) frames \((\d+) KiB\) online/m.exec(answer);
  if (!x) throw new Error(`no memory line in ${JSON.stringify(answer)}`);
  expect(Number(x[2])).toBe(Number(x[1]) * 4);
  return Number(x[1]);
}

/** Gfns in [from, to) the host backs (the guest touched them). */
function backedIn(m: OsMachine, from: number, to: number): number {
  let n = 0;
  for (let g = from; g < to; g++) if (m.vm.p2m.lookup(g as Gfn) !== null) n++;
  return n;
}

/** The guest's `mem` line: frames the allocator counts and has free. */
function memLine(answer: string): { total: number; free: number } {
  const x = /^mem: (\d+) frames total, (\d+) free/m.exec(answer);
  if (!x) throw new Error(`no mem line in ${JSON.stringify(answer)}`);
  return { total: Number(x[1]), free: Number(x[2]) };
}

describe.each(['nested', 'shadow'] as const)('memory hot-add on memvisor-os (%s paging)', (mode) => {
  it('the guest onlines the added memory, reports the new size exactly and runs a program larger than the old VM in it', async () => {
    const { m, type } = await boot(mode, 16);
    m.run({ seconds: 1.1 });                                  // past the balloon's first pass (it allocates its batch page)
    expect(onlineFrames(type('memory'))).toBe(16 * FRAMES_PER_MIB);
    const before = memLine(type('mem'));
    expect(type('run toucher:20', /toucher: .*\n/)).toContain('toucher: mmap of 20 MiB failed');   // more than the VM has

    const first = m.hotAdd(16 * MiB);
    expect(first).toBe(16 * FRAMES_PER_MIB);
    expect(m.vm.frameCount).toBe(32 * FRAMES_PER_MIB);
    expect(m.hotplug.frames).toBe(32 * FRAMES_PER_MIB);
    expect(backedIn(m, 16 * FRAMES_PER_MIB, 32 * FRAMES_PER_MIB)).toBe(0);
    m.run({ seconds: m.seconds + 0.05 });                                             // the interrupt is taken at once
    expect(m.hotplug.unsignalled).toBe(0);
    expect(onlineFrames(type('memory'))).toBe(m.vm.frameCount);
    const after = memLine(type('mem'));
    // every added frame is free, less the larger frame metadata (2 bytes + 1 bit a frame), plus the old metadata freed
    const meta = (frames: number) => Math.ceil((Math.ceil(frames / 64) * 8 + frames * 2) / 4096);
    expect(after.free - before.free).toBe(16 * FRAMES_PER_MIB - meta(32 * FRAMES_PER_MIB) + meta(16 * FRAMES_PER_MIB));
    expect(after.total - before.total).toBe(after.free - before.free);

    const answer = type('run toucher:20', /toucher: .*\n/, 30);
    expect(answer).toContain(`toucher: 20 MiB pass 1 checksum ${toucherChecksum(20, 1)} ok`);
    // 20 MiB cannot fit in what was free before the add: the rest came from the new frames, which the host now backs
    const needNew = 20 * FRAMES_PER_MIB - before.free;
    expect(needNew).toBeGreaterThan(0);
    expect(backedIn(m, 16 * FRAMES_PER_MIB, 32 * FRAMES_PER_MIB)).toBeGreaterThanOrEqual(needNew);
    expect(memLine(type('wait\nmem', /mem: .*\n/)).free).toBe(after.free);            // every frame came back once it exited
    type('poweroff');
    expect(m.stopped).toMatchObject({ stop: 'power-off', status: 0 });
    expect(m.counters().staleUses).toBe(0);
    expect(m.counters().hotplugEvents).toBe(1);
  }, 120_000);

  it('refuses bad sizes with a clear error, changes nothing, and the guest runs on and takes a later add', async () => {
    const { m, type } = await boot(mode, 16);
    m.run({ seconds: 0.3 });
    for (const bad of [4095, 0, -4096, 1.5 * 4096, 64 * 2 ** 30]) expect(() => m.hotAdd(bad)).toThrow(RangeError);
    expect(() => m.hotAdd(64 * 2 ** 30)).toThrow(/positive multiple of 4096 bytes keeping the VM at most 64 GiB/);
    expect(m.vm.frameCount).toBe(16 * FRAMES_PER_MIB);
    expect(m.hotplug.sequence).toBe(0);
    expect(m.stopped).toBeNull();
    expect(onlineFrames(type('memory'))).toBe(16 * FRAMES_PER_MIB);
    m.hotAdd(4 * MiB);
    expect(onlineFrames(type('memory'))).toBe(20 * FRAMES_PER_MIB);
    expect(type('run toucher:1', /toucher: .*\n/)).toContain(`toucher: 1 MiB pass 1 checksum ${toucherChecksum(1, 1)} ok`);
  }, 60_000);
});

describe('memory hot-add on memvisor-os: sizes and timing', () => {
  it('memory added before the driver armed its vector is found at boot', async () => {
    const { m, type, console } = await boot('nested', 16);
    m.hotAdd(8 * MiB);                                        // before the first instruction
    expect(m.hotplug.unsignalled).toBe(1);
    m.run({ seconds: 0.3 });
    expect(console()).toContain('hotplug: device at port 0x5680, vector 0x42, memory 6144 frames');
    expect(console()).toMatch(/^hotplug: memory 6144 frames \(24 MiB\), onlined frames 4096-6144/m);
    expect(onlineFrames(type('memory'))).toBe(6144);
  }, 60_000);

  it('small and unaligned adds (metadata placed in the old memory) accumulate exactly, while a program runs', async () => {
    const { m, type, until, console } = await boot('nested', 16, 'shell');
    m.run({ seconds: 0.3 });
    const from = console().length;
    type('run toucher:6:20:5');                                // keeps running through the adds
    let frames = 16 * FRAMES_PER_MIB;
    for (const bytes of [4096, 3 * 4096, MiB + 4096, 2 * MiB - 8192, 5 * MiB]) {
      m.hotAdd(bytes);
      frames += bytes / 4096;
      m.run({ seconds: m.seconds + 0.02 });
      expect(onlineFrames(type('memory'))).toBe(frames);
    }
    expect(frames).toBe(m.vm.frameCount);
    const out = until(from, /pass 20 checksum .*\n/, 20);
    expect(out).not.toContain('BAD');
    for (let p = 1; p <= 20; p++) expect(out).toContain(`toucher: 6 MiB pass ${p} checksum ${toucherChecksum(6, p)} ok\n`);
    expect(out).toMatch(/^memory: \d+ frames/m);             // the adds came while the passes ran (output interleaves)
    expect(m.counters().staleUses).toBe(0);
  }, 120_000);

  it('a 1 GiB add crosses into a new page directory; the randomized allocator touches frames above 1 GiB', async () => {
    const { m, type } = await boot('nested', 32, 'shell seed=7', 192);
    m.run({ seconds: 0.3 });
    m.hotAdd(2 ** 30);
    expect(onlineFrames(type('memory'))).toBe(32 * FRAMES_PER_MIB + 2 ** 18);
    const out = type('run toucher:16', /toucher: .*\n/, 20);
    expect(out).toContain(`toucher: 16 MiB pass 1 checksum ${toucherChecksum(16, 1)} ok`);
    expect(backedIn(m, 2 ** 18, m.vm.frameCount)).toBeGreaterThan(0);   // beyond 1 GiB: the new page directory's range
    expect(m.counters().staleUses).toBe(0);
  }, 120_000);
});
