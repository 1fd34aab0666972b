// The ELF64 + Limine loader: translations of the kernel, the HHDM and their rights under
// every paging mode (through the CPU's own walker), the responses in guest memory, the
// base revision handshake, and clean refusals of bad files.
import { describe, it, expect } from 'vitest';
import { Hypervisor, type Vm } from '../../src/hypervisor/index.js';
import type { Cpu } from '../../src/core/cpu.js';
import { PFEC } from '../../src/core/bits.js';
import { loadKernel, SELECTOR, DEFAULT_STACK_BYTES, type BootInfo } from '../../src/board/loader.js';
import { HHDM_OFFSET, MEMMAP, BASE_REVISION_MAGIC } from '../../src/board/limine.js';
import { guestGpa } from '../../src/board/cpu-adapter.js';
import type { SegSpec } from './elf-builder.js';
import { kernelImage, requestWords, KBASE, PBASE, TEXT, RODATA, DATA, BSS, ENTRY_OFFSET, STACK_REQUEST } from './kernel-image.js';

const MiB = 2n ** 20n, GiB = 2n ** 30n;
const RAM = 32n * MiB;
type Mode = 'native' | 'nested' | 'shadow';

async function machine(mode: Mode, ram = RAM): Promise<{ hv: Hypervisor; vm: Vm }> {
  const hv = await Hypervisor.create({ hostMemoryBytes: Number(ram + 32n * MiB) });
  return { hv, vm: hv.createVm({ memoryBytes: ram, mode }) };
}

/** A CPU that walks the guest's tables as the guest would: the vCPU itself, or (shadow) a nested walker on the VM's EPT. */
function walker(hv: Hypervisor, vm: Vm, boot: BootInfo): Cpu {
  const r = boot.registers;
  const regs = { cr0: r.cr0, cr3: r.cr3, cr4: r.cr4, efer: r.efer, rflags: r.rflags, cpl: 0 };
  vm.vcpus[0].setRegisters(regs);
  if (vm.mode !== 'shadow') return vm.vcpus[0].cpu;
  const cpu = hv.machine.createCpu();
  cpu.setVmcs({ mode: 'nested', eptp: vm.ept!.eptp, vpid: 999 });
  cpu.setRegisters(regs);
  return cpu;
}

const u64 = (vm: Vm, gpa: bigint) => vm.memory.read64(gpa);

/** The guest's own leaf entry for va (without A/D), read from guest memory; upper levels must be P|W, supervisor. */
function guestLeaf(vm: Vm, pml4: bigint, va: bigint): { level: number; entry: bigint } {
  let table = pml4;
  for (let level = 4; level >= 1; level--) {
    const e = u64(vm, table + ((va >> BigInt(3 + 9 * level)) & 511n) * 8n);
    // A and D are the walker's (the translations above set them), not the loader's.
    if (level === 1 || e & 0x80n) return { level, entry: e & ~0x60n };
    expect(e & 0x8000_0000_0000_0fdfn).toBe(3n);
    table = e & 0x000f_ffff_ffff_f000n;
  }
  throw new Error('unreachable');
}
const cstring = (vm: Vm, hhdmPtr: bigint) => {
  const b = vm.memory.read(hhdmPtr - HHDM_OFFSET, 256);
  return new TextDecoder().decode(b.subarray(0, b.indexOf(0)));
};
const resp = (vm: Vm, reqGpa: bigint) => u64(vm, reqGpa + 40n) - HHDM_OFFSET;

describe.each(['native', 'nested', 'shadow'] as Mode[])('Limine loader under %s paging', (mode) => {
  it('maps the kernel segments with their rights and the HHDM in 2 MiB pages', async () => {
    const { hv, vm } = await machine(mode);
    const k = kernelImage();
    const boot = loadKernel(vm, k.elf, { cmdline: 'console=ttyS0 quiet' });
    const cpu = walker(hv, vm, boot);
    const hpa = (gpa: bigint) => vm.memory.hpaOf(gpa);
    // text: fetch and read, not write; rodata: read only; data and BSS: read/write, no fetch.
    expect(cpu.translate(TEXT + 5n, { fetch: true })).toEqual({ ok: true, pa: hpa(PBASE + 5n), pageSize: 4096 });
    expect(cpu.translate(TEXT, { write: true })).toMatchObject({ ok: false, fault: 'PF', errorCode: PFEC.P | PFEC.W, cr2: TEXT });
    expect(cpu.translate(RODATA + 8n)).toMatchObject({ ok: true, pa: hpa(PBASE + 0x1008n) });
    expect(cpu.translate(RODATA, { write: true })).toMatchObject({ ok: false, errorCode: PFEC.P | PFEC.W });
    expect(cpu.translate(RODATA, { fetch: true })).toMatchObject({ ok: false, errorCode: PFEC.P | PFEC.ID });
    expect(cpu.translate(DATA + 16n, { write: true })).toMatchObject({ ok: true, pa: hpa(PBASE + 0x2010n) });
    expect(cpu.translate(BSS + 0x2ff8n, { write: true })).toMatchObject({ ok: true, pa: hpa(PBASE + 0x5ff8n) });
    expect(cpu.translate(DATA, { fetch: true })).toMatchObject({ ok: false, errorCode: PFEC.P | PFEC.ID });
    // Supervisor only; nothing past the image; no identity map.
    expect(cpu.translate(TEXT, { user: true })).toMatchObject({ ok: false, errorCode: PFEC.P | PFEC.U });
    expect(cpu.translate(KBASE + 0x6000n)).toMatchObject({ ok: false, fault: 'PF', errorCode: 0 });
    expect(cpu.translate(PBASE)).toMatchObject({ ok: false, fault: 'PF', errorCode: 0 });
    // HHDM: all of RAM, 2 MiB pages, writable and executable.
    for (const gpa of [0n, 0x123_4567n, RAM - 8n]) {
      const pa = hpa(gpa); // backs the frame first (nested: an unbacked gfn is an EPT exit)
      // Nested and shadow report the smaller of the guest page and the host (EPT) page.
      expect(cpu.translate(HHDM_OFFSET + gpa, { write: true })).toEqual({ ok: true, pa, pageSize: mode === 'native' ? 0x20_0000 : 4096 });
      expect(guestLeaf(vm, boot.layout.pml4, HHDM_OFFSET + gpa)).toEqual({ level: 2, entry: (gpa & ~0x1f_ffffn) | 0x83n }); // P|W|PS
    }
    expect(guestLeaf(vm, boot.layout.pml4, TEXT)).toEqual({ level: 1, entry: PBASE | 1n }); // P, executable
    expect(guestLeaf(vm, boot.layout.pml4, DATA)).toEqual({ level: 1, entry: (PBASE + 0x2000n) | 3n | (1n << 63n) }); // P|W|XD
    const code = hpa(0x40_0000n);
    expect(cpu.translate(HHDM_OFFSET + 0x40_0000n, { fetch: true })).toMatchObject({ ok: true, pa: code });
    // Past RAM: mapped up to 4 GiB in the guest's tables (an EPT exit), but not under native paging.
    const beyond = cpu.translate(HHDM_OFFSET + 3n * GiB);
    if (mode === 'native') expect(beyond).toMatchObject({ ok: false, fault: 'PF', errorCode: 0 });
    else expect(beyond).toMatchObject({ ok: false, fault: 'EPT_VIOLATION', gpa: 3n * GiB });
    expect(cpu.translate(HHDM_OFFSET + 4n * GiB)).toMatchObject({ ok: false, fault: 'PF' });
    expect(boot.layout.hhdmEnd).toBe(mode === 'native' ? RAM : 4n * GiB);
    if (mode === 'shadow') expect(vm.vcpus[0].guestRegisters().cr3).toBe(boot.layout.pml4);
  });

  it('answers every request in place, with the fields BOOT.md gives', async () => {
    const { vm } = await machine(mode);
    const k = kernelImage();
    const boot = loadKernel(vm, k.elf, { cmdline: 'console=ttyS0 quiet', path: '/boot/test.elf' });
    const r = k.request;
    for (const [kind, gpa] of Object.entries(r)) {
      expect(u64(vm, gpa! + 40n), kind).toBe(HHDM_OFFSET + boot.responses[kind as keyof typeof r]!);
      expect(boot.responses[kind as keyof typeof r]! >= boot.layout.regionBase, kind).toBe(true);
    }
    const info = resp(vm, r.bootloaderInfo!);
    expect(u64(vm, info)).toBe(0n);
    expect(cstring(vm, u64(vm, info + 8n))).toBe('memvisor');
    expect(cstring(vm, u64(vm, info + 16n))).toMatch(/^\d+\.\d+\.\d+$/);
    expect(u64(vm, resp(vm, r.hhdm!) + 8n)).toBe(0xffff_8000_0000_0000n);
    const addr = resp(vm, r.executableAddress!);
    expect([u64(vm, addr + 8n), u64(vm, addr + 16n)]).toEqual([PBASE, KBASE]);
    expect(cstring(vm, u64(vm, resp(vm, r.executableCmdline!) + 8n))).toBe('console=ttyS0 quiet');
    const file = u64(vm, resp(vm, r.executableFile!) + 8n) - HHDM_OFFSET;
    expect(u64(vm, file + 16n)).toBe(BigInt(k.elf.length));
    expect(vm.memory.read(u64(vm, file + 8n) - HHDM_OFFSET, k.elf.length)).toEqual(k.elf);
    expect(cstring(vm, u64(vm, file + 24n))).toBe('/boot/test.elf');
    expect(cstring(vm, u64(vm, file + 32n))).toBe('console=ttyS0 quiet');
    expect(u64(vm, resp(vm, r.pagingMode!) + 8n)).toBe(0n);
    // Memory map: sorted, disjoint, page 0 reserved, the kernel and file "executable", the loader's region reclaimable.
    const mm = resp(vm, r.memmap!);
    const n = Number(u64(vm, mm + 8n)), arr = u64(vm, mm + 16n) - HHDM_OFFSET;
    const entries = Array.from({ length: n }, (_, i) => {
      const e = u64(vm, arr + 8n * BigInt(i)) - HHDM_OFFSET;
      return { base: u64(vm, e), length: u64(vm, e + 8n), type: Number(u64(vm, e + 16n)) };
    });
    expect(entries).toEqual(boot.memmap);
    expect(entries[0]).toEqual({ base: 0n, length: 0x1000n, type: MEMMAP.RESERVED });
    expect(entries).toContainEqual({ base: PBASE, length: 0x6000n, type: MEMMAP.EXECUTABLE_AND_MODULES });
    expect(entries.at(-1)).toMatchObject({ type: MEMMAP.BOOTLOADER_RECLAIMABLE });
    expect(entries.at(-1)!.base + entries.at(-1)!.length).toBe(RAM);
    let usable = 0n;
    for (let i = 0; i < n; i++) {
      if (i > 0) expect(entries[i].base).toBe(entries[i - 1].base + entries[i - 1].length); // RAM tiled exactly
      if (entries[i].type === MEMMAP.USABLE) usable += entries[i].length;
    }
    expect(usable).toBeGreaterThan(RAM - 2n * MiB);
    // The BSS is zero and the loaded bytes are the file's.
    expect(vm.memory.read(PBASE + 0x3000n, 0x3000).every((b) => b === 0)).toBe(true);
    expect(new TextDecoder().decode(vm.memory.read(PBASE + 0x1000n, 9))).toBe('read-only');
  });

  it('sets up the entry state: entry-point request, requested stack, GDT, x2APIC', async () => {
    const { vm } = await machine(mode);
    const boot = loadKernel(vm, kernelImage().elf);
    const r = boot.registers;
    expect(r.rip).toBe(TEXT + ENTRY_OFFSET);
    expect(r.rsp).toBe(HHDM_OFFSET + RAM - 8n);
    expect((r.rsp + 8n) % 16n).toBe(0n);
    expect(u64(vm, r.rsp - HHDM_OFFSET)).toBe(0n); // the 0 return address
    expect(boot.layout.stackTop - boot.layout.stackBottom).toBe(STACK_REQUEST);
    expect(r.cr0 & 0x8001_0031n).toBe(0x8001_0031n); // PG | WP | NE | ET | PE
    expect(r.cr4 & 0x20n).toBe(0x20n);
    expect(r.efer).toBe(0xd00n);
    expect(r.rflags).toBe(2n);
    expect([r.cs, r.ds, r.es, r.ss, r.fs, r.gs]).toEqual([0x28, 0x30, 0x30, 0x30, 0x30, 0x30]);
    expect(r.idtr.limit).toBe(0);
    expect(r.apicBase & 0xc00n).toBe(0xc00n);
    expect(r.gdtr).toEqual({ base: HHDM_OFFSET + boot.layout.gdt, limit: 55 });
    expect(u64(vm, boot.layout.gdt + BigInt(SELECTOR.CODE64))).toBe(0x0020_9a00_0000_0000n);
    expect(u64(vm, boot.layout.gdt + BigInt(SELECTOR.DATA64))).toBe(0x0000_9200_0000_0000n);
    expect(r.cr3).toBe(boot.layout.pml4);
  });
});

describe('base revision and request scanning', () => {
  const tagWords = async (revision: bigint | null) => {
    const { vm } = await machine('nested');
    const k = kernelImage({ revision });
    const boot = loadKernel(vm, k.elf);
    return { boot, words: k.tag === null ? null : [u64(vm, k.tag), u64(vm, k.tag + 8n), u64(vm, k.tag + 16n)] };
  };

  it('acknowledges revisions 0..3 by zeroing the third word', async () => {
    for (const n of [0n, 1n, 3n]) {
      const { boot, words } = await tagWords(n);
      expect(words).toEqual([BASE_REVISION_MAGIC[0], BASE_REVISION_MAGIC[1], 0n]);
      expect(boot.baseRevision).toMatchObject({ requested: n, loaded: n, supported: true });
    }
  });

  it('boots an unsupported revision with its own highest, reported in the second word, third word kept', async () => {
    const { boot, words } = await tagWords(7n);
    expect(words).toEqual([BASE_REVISION_MAGIC[0], 3n, 7n]);
    expect(boot.baseRevision).toMatchObject({ requested: 7n, loaded: 3n, supported: false });
  });

  it('no tag means revision 0; the kernel still gets its responses', async () => {
    const { boot, words } = await tagWords(null);
    expect(words).toBeNull();
    expect(boot.baseRevision).toMatchObject({ requested: 0n, loaded: 0n, tag: null });
    expect(Object.keys(boot.responses)).toHaveLength(9);
  });

  it('honours the markers: a request after the end marker is left untouched', async () => {
    const { vm } = await machine('nested');
    const k = kernelImage({ kinds: ['hhdm'], trailer: requestWords('hhdm') });
    loadKernel(vm, k.elf);
    expect(u64(vm, k.request.hhdm! + 40n)).not.toBe(0n);
    expect(u64(vm, k.trailer + 40n)).toBe(0n);
  });

  it('without markers scans all file-backed data and answers only what was asked', async () => {
    const { vm } = await machine('nested');
    const k = kernelImage({ markers: false, kinds: ['memmap', 'hhdm'] });
    const boot = loadKernel(vm, k.elf);
    expect(Object.keys(boot.responses).sort()).toEqual(['hhdm', 'memmap']);
    expect(boot.registers.rip).toBe(TEXT); // no entry-point request: the ELF entry
    expect(boot.layout.stackTop - boot.layout.stackBottom).toBe(BigInt(DEFAULT_STACK_BYTES));
    expect(boot.layout.fileBase).toBeNull(); // no executable-file request: the file is not copied in
  });
});

describe('bad kernels are refused before guest memory changes', () => {
  const refused = async (elf: Uint8Array, msg: RegExp, o: { ram?: bigint; cmdline?: string } = {}) => {
    const { hv, vm } = await machine('nested', o.ram ?? RAM);
    const before = { backed: vm.stats.pagesBacked, frames: hv.frames.usedBy(vm.id) };
    expect(() => loadKernel(vm, elf, { cmdline: o.cmdline })).toThrow(msg);
    expect({ backed: vm.stats.pagesBacked, frames: hv.frames.usedBy(vm.id) }).toEqual(before);
  };
  const seg = (over: Partial<SegSpec>) => kernelImage({ spec: { entry: over.vaddr ?? TEXT, segments: [{ vaddr: TEXT, paddr: PBASE, flags: 5, data: new Uint8Array(16), ...over }] } }).elf;

  it('garbage, wrong class, encoding, machine or type', async () => {
    await refused(new TextEncoder().encode('#!/bin/sh\necho not an ELF kernel, but long enough to hold a header.....'), /bad magic/);
    await refused(new Uint8Array(10), /shorter than an ELF64 header/);
    await refused(kernelImage({ spec: { klass: 1 } }).elf, /class 1 is not ELFCLASS64/);
    await refused(kernelImage({ spec: { data: 2 } }).elf, /not little-endian/);
    await refused(kernelImage({ spec: { machine: 183 } }).elf, /e_machine 183 is not x86-64/);
    await refused(kernelImage({ spec: { etype: 3 } }).elf, /e_type 3 is not an executable/);
    await refused(kernelImage({ spec: { phentsize: 32 } }).elf, /e_phentsize 32/);
    const cut = kernelImage().elf;
    await refused(cut.subarray(0, 0x2010), /run past the end of the file/);
  });

  it('segments outside RAM, below the kernel area, overlapping, oversized or inconsistent', async () => {
    await refused(seg({ paddr: RAM - 8n, vaddr: KBASE + RAM - 8n - PBASE }), /outside guest RAM/);
    await refused(seg({ paddr: 0n, vaddr: KBASE - PBASE }), /outside guest RAM 0x1000/);
    await refused(seg({ vaddr: 0x40_0000n }), /not inside the kernel area/);
    await refused(seg({ memsz: 300n * MiB }), /larger than/);
    await refused(seg({ memsz: 8n }), /p_filesz 0x10 exceeds p_memsz 0x8/);
    await refused(seg({ paddr: PBASE + 4n }), /page offset/);
    await refused(kernelImage({ spec: { segments: [
      { vaddr: TEXT, paddr: PBASE, flags: 5, data: new Uint8Array(0x2000) },
      { vaddr: TEXT + 0x1000n, paddr: PBASE + 0x1000n, flags: 6, data: new Uint8Array(16) },
    ] } }).elf, /overlaps/);
    await refused(kernelImage({ spec: { segments: [
      { vaddr: TEXT, paddr: PBASE, flags: 5, data: new Uint8Array(16) },
      { vaddr: TEXT + 0x10_0000n, paddr: PBASE + 0x1000n, flags: 6, data: new Uint8Array(16) },
    ] } }).elf, /differs from the first segment/);
    await refused(kernelImage({ spec: { entry: RODATA } }).elf, /entry point .* is not inside an executable segment/);
  });

  it('RAM too small for the loader, a duplicate request, an overlong command line', async () => {
    await refused(seg({ paddr: 0x7f_0000n, vaddr: KBASE + 0x5f_0000n }), /too small/, { ram: 8n * MiB });
    await refused(kernelImage({ kinds: ['hhdm', 'memmap', 'hhdm'] }).elf, /duplicate hhdm request/);
    await refused(kernelImage().elf, /command line of 5000 bytes/, { cmdline: 'x'.repeat(5000) });
  });
});

describe('guestGpa (the board\'s software walk for classifying exits)', () => {
  it('agrees with the loader\'s tables: kernel pages, the HHDM, unmapped addresses', async () => {
    const { vm } = await machine('nested');
    const boot = loadKernel(vm, kernelImage().elf);
    const cr3 = boot.registers.cr3;
    expect(guestGpa(vm, cr3, TEXT + 0x12n)).toBe(PBASE + 0x12n);
    expect(guestGpa(vm, cr3, BSS + 0x10n)).toBe(PBASE + 0x3010n);
    expect(guestGpa(vm, cr3, HHDM_OFFSET + 0x123_4567n)).toBe(0x123_4567n);   // a 2 MiB leaf
    expect(guestGpa(vm, cr3, HHDM_OFFSET + 3n * GiB + 5n)).toBe(3n * GiB + 5n); // mapped beyond RAM
    expect(guestGpa(vm, cr3, PBASE)).toBeNull();                             // no identity map
    expect(guestGpa(vm, cr3, KBASE + 0x10_0000n)).toBeNull();
  });
});

describe('the hand-off is the same under every paging mode', () => {
  it('memory map, responses and registers do not depend on the mode', async () => {
    const seen = [];
    for (const mode of ['native', 'nested', 'shadow'] as Mode[]) {
      const { vm } = await machine(mode);
      const b = loadKernel(vm, kernelImage().elf, { cmdline: 'same' });
      seen.push({ memmap: b.memmap, responses: b.responses, registers: b.registers, layout: { ...b.layout, hhdmEnd: 0n } });
    }
    expect(seen[1]).toEqual(seen[0]);
    expect(seen[2]).toEqual(seen[0]);
  });
});
