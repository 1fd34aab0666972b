// Properties of the loader (fast-check; LOADER_SEED / LOADER_RUNS explore others):
// 1. any valid layout of R / RW / RX segments loads, and every page of the image
//    translates (through the CPU's walker) to its p_paddr with exactly its segment's rights;
// 2. a corrupted kernel file is either loaded or refused with an ELF/Limine error, never a
//    crash, and a refusal leaves the VM's memory and frames untouched.
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { Hypervisor, type Vm } from '../../src/hypervisor/index.js';
import { loadKernel } from '../../src/board/loader.js';
import { ElfError, PF_R, PF_W, PF_X } from '../../src/board/elf.js';
import { LimineError } from '../../src/board/limine.js';
import { buildElf, type SegSpec } from './elf-builder.js';
import { kernelImage, KBASE, PBASE } from './kernel-image.js';

const SEED = Number(process.env.LOADER_SEED ?? 0x10ad_e4), RUNS = Number(process.env.LOADER_RUNS ?? 40);
const RAM = 16n * 2n ** 20n;
const RIGHTS = [PF_R, PF_R | PF_W, PF_R | PF_X] as const;

let hv: Hypervisor;
async function vm(): Promise<Vm> {
  hv ??= await Hypervisor.create({ hostMemoryBytes: 512 * 2 ** 20 });
  for (const v of hv.list()) hv.destroyVm(v);
  return hv.createVm({ memoryBytes: RAM, mode: 'nested' });
}

describe('loader properties', () => {
  it('every page of a random valid image maps to its p_paddr with its segment\'s rights', async () => {
    const layout = fc.array(fc.record({ pages: fc.integer({ min: 1, max: 4 }), gap: fc.integer({ min: 0, max: 3 }),
      rights: fc.constantFrom(...RIGHTS), bssPages: fc.integer({ min: 0, max: 3 }) }), { minLength: 1, maxLength: 5 });
    await fc.assert(fc.asyncProperty(layout, async (segs) => {
      if (!segs.some((s) => s.rights & PF_X)) segs[0].rights = PF_R | PF_X; // the entry needs an executable segment
      let at = 0n;
      const specs: SegSpec[] = segs.map((s) => {
        at += BigInt(s.gap) * 0x1000n;
        const spec = { vaddr: KBASE + at, paddr: PBASE + at, flags: s.rights, data: new Uint8Array(s.pages * 4096).fill(s.rights),
          memsz: BigInt((s.pages + s.bssPages) * 4096) };
        at += spec.memsz;
        return spec;
      });
      const entry = specs.find((s) => s.flags & PF_X)!.vaddr;
      const v = await vm();
      const boot = loadKernel(v, buildElf({ entry, segments: specs }));
      const cpu = v.vcpus[0].cpu;
      const r = boot.registers;
      v.vcpus[0].setRegisters({ cr0: r.cr0, cr3: r.cr3, cr4: r.cr4, efer: r.efer, cpl: 0 });
      for (const s of specs) {
        for (let off = 0n; off < s.memsz!; off += 0x1000n) {
          const pa = v.memory.hpaOf(s.paddr + off);
          expect(cpu.translate(s.vaddr + off)).toMatchObject({ ok: true, pa });
          expect(cpu.translate(s.vaddr + off, { write: true }).ok).toBe((s.flags & PF_W) !== 0);
          expect(cpu.translate(s.vaddr + off, { fetch: true }).ok).toBe((s.flags & PF_X) !== 0);
          expect(cpu.translate(s.vaddr + off, { user: true }).ok).toBe(false);
        }
      }
    }), { seed: SEED, numRuns: RUNS });
  });

  it('a corrupted kernel is loaded or refused cleanly; a refusal changes nothing', async () => {
    const base = kernelImage().elf;
    const hot = fc.oneof(fc.integer({ min: 0, max: 0x40 }), fc.integer({ min: 0x40, max: 0x40 + 3 * 56 }), // header, program headers
      fc.integer({ min: 0, max: base.length - 1 }));
    const edits = fc.array(fc.tuple(hot, fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 });
    let refused = 0, loaded = 0;
    await fc.assert(fc.asyncProperty(edits, fc.integer({ min: 0, max: base.length }), async (es, cut) => {
      const f = base.slice(0, Math.max(cut, 64));
      for (const [at, b] of es) if (at < f.length) f[at] = b;
      const v = await vm();
      const before = { backed: v.stats.pagesBacked, frames: hv.frames.usedBy(v.id) };
      try {
        loadKernel(v, f);
        loaded++;
      } catch (e) {
        expect(e instanceof ElfError || e instanceof LimineError, String(e)).toBe(true);
        expect({ backed: v.stats.pagesBacked, frames: hv.frames.usedBy(v.id) }).toEqual(before);
        refused++;
      }
    }), { seed: SEED, numRuns: RUNS * 5 });
    expect(refused).toBeGreaterThan(0); // the generator does reach the refusals
    expect(loaded + refused).toBe(RUNS * 5);
  });
});
