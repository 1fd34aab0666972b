// Property: after any series of memory hot-adds (sizes in whole 4 KiB frames, 2 MiB-aligned
// or not, small enough that the frame metadata must go to the old memory or large enough to
// hold it), memvisor-os's idea of its memory equals a plain model: it reports exactly the
// VM's size, its free frames grew by the frames added less the metadata's growth (a bitmap
// bit and a 16-bit count a frame, in whole frames, moved each time), and a program filling
// nearly all free memory runs to the model's checksum, the host backing frames it could
// only have got from the added memory. Fixed seed; PROPERTY_SEED(S) explore others.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Hypervisor } from '../../src/hypervisor/monitor/hypervisor.js';
import { OsMachine } from '../../src/board/os-machine.js';
import { interpretingCpu } from '../../src/board/cpu-adapter.js';
import { readShippedOs } from '../../src/board/shipped-os.js';
import { toucherChecksum } from '../../guests/os/programs.js';
import { assertAsyncProperty } from '../helpers/seeds.js';
import type { Gfn } from '../../src/core/addr.js';

const KERNEL = readShippedOs();
const MiB = 2 ** 20;
const BOOT_FRAMES = 8 * 256;
/** The kernel keeps this many frames out of every commit (KERNEL_SLACK_FRAMES), and a few for page tables. */
const SLACK = 64 + 64;

/** Frames of the allocator's metadata for n frames: a bit and a u16 each, page-rounded (pmm.c). */
const metaFrames = (n: number) => Math.ceil((Math.ceil(n / 64) * 8 + n * 2) / 4096);

async function bootShell() {
  const hv = await Hypervisor.create({ hostMemoryBytes: 64 * MiB });
  let out = '';
  const m = new OsMachine({ hv, kernel: KERNEL, memoryBytes: BOOT_FRAMES * 4096, mode: 'nested', cpu: interpretingCpu,
    load: { cmdline: 'shell' }, console: (b) => { out += String.fromCharCode(b); } });
  m.run({ seconds: 1.1 });                                        // past the balloon's first pass
  const type = (line: string, re: RegExp, seconds = 20) => {
    const from = out.length, end = m.seconds + seconds;
    m.uart.pushInput(line + '\n');
    while (!m.stopped && m.seconds < end && !re.test(out.slice(from))) m.run({ seconds: Math.min(end, m.seconds + 0.02) });
    const x = re.exec(out.slice(from));
    if (!x) throw new Error(`no answer to ${line}: ${JSON.stringify(out.slice(from))}`);
    return x;
  };
  const free = () => Number(type('mem', /mem: \d+ frames total, (\d+) free/)[1]);
  const online = () => Number(type('memory', /memory: (\d+) frames/)[1]);
  return { m, type, free, online };
}

const addArb = fc.oneof(fc.integer({ min: 1, max: 16 }), fc.integer({ min: 1, max: 2048 }), fc.constantFrom(512, 1024, 2048));

describe('memvisor-os memory hot-add (property)', () => {
  it('any series of adds: exact size, exact free frames, and a program fills the grown memory to the model\'s checksum', async () => {
    await assertAsyncProperty(fc.asyncProperty(fc.array(addArb, { minLength: 1, maxLength: 4 }), async (adds) => {
      const { m, type, free, online } = await bootShell();
      const free0 = free();
      let frames = BOOT_FRAMES;
      for (const n of adds) {
        m.hotAdd(n * 4096);
        frames += n;
        m.run({ seconds: m.seconds + 0.02 });
      }
      expect(online()).toBe(frames);
      expect(m.vm.frameCount).toBe(frames);
      const freeNow = free();
      expect(freeNow).toBe(free0 + (frames - BOOT_FRAMES) - metaFrames(frames) + metaFrames(BOOT_FRAMES));
      const mib = Math.floor((freeNow - SLACK) / 256);
      const line = type(`run toucher:${mib}`, /toucher: .*\n/)[0];
      expect(line).toBe(`toucher: ${mib} MiB pass 1 checksum ${toucherChecksum(mib, 1)} ok\n`);
      let backedNew = 0;
      for (let g = BOOT_FRAMES; g < frames; g++) if (m.vm.p2m.lookup(g as Gfn) !== null) backedNew++;
      expect(backedNew).toBeGreaterThanOrEqual(mib * 256 - free0);
      expect(m.counters().staleUses).toBe(0);
    }), { seed: 0x40dd, numRuns: 6 });
  }, 180_000);
});
