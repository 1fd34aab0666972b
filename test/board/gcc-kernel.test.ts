// The loader on a kernel built by the system gcc + ld (as a user's kernel would be): a
// freestanding C file with Limine requests in .limine_requests between the markers,
// linked at 0xffffffff80200000 / physical 0x200000. Skipped, visibly, without gcc.
import { describe, it, expect } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Hypervisor } from '../../src/hypervisor/index.js';
import { loadKernel } from '../../src/board/loader.js';
import { HHDM_OFFSET } from '../../src/board/limine.js';
import { parseElf, PF_W, PF_X } from '../../src/board/elf.js';

const hasGcc = (() => { try { execFileSync('gcc', ['--version'], { stdio: 'ignore' }); return true; } catch { return false; } })();

const C = `
#include <stdint.h>
#define REQ __attribute__((used, section(".limine_requests"))) static volatile
#define MAGIC 0xc7b1dd30df4c8b88ULL, 0x0a82e883a194f07bULL
struct request { uint64_t id[4]; uint64_t revision; void *response; };
__attribute__((used, section(".limine_requests_start"))) static volatile uint64_t start_marker[4] =
  { 0xf6b8f4b39de7d1aeULL, 0xfab91a6940fcb9cfULL, 0x785c6ed015d3e316ULL, 0x181e920a7852b9d9ULL };
REQ uint64_t base_revision[3] = { 0xf9562b2d5c95a6c8ULL, 0x6a7b384944536bdcULL, 3 };
REQ struct request hhdm = { { MAGIC, 0x48dcf1cb8ad2b852ULL, 0x63984e959a98244bULL }, 0, 0 };
REQ struct request memmap = { { MAGIC, 0x67cf3d9d378a806fULL, 0xe304acdfc50c3c62ULL }, 0, 0 };
REQ struct request cmdline = { { MAGIC, 0x4b161536e598651eULL, 0xb390ad4a2f1f303aULL }, 0, 0 };
__attribute__((used, section(".limine_requests_end"))) static volatile uint64_t end_marker[2] =
  { 0xadc0e0531bb10d03ULL, 0x9572709f31764c62ULL };
const char banner[] = "hello from gcc";
uint64_t scratch[1024];
void _start(void) { for (;;) __asm__ volatile ("hlt"); }
`;

const LD = `
ENTRY(_start)
PHDRS { text PT_LOAD FLAGS(5); rodata PT_LOAD FLAGS(4); data PT_LOAD FLAGS(6); }
SECTIONS {
  . = 0xffffffff80200000;
  .text : AT(ADDR(.text) - 0xffffffff80000000) { *(.text .text.*) } :text
  . = ALIGN(4096);
  .rodata : AT(ADDR(.rodata) - 0xffffffff80000000) { *(.rodata .rodata.*) } :rodata
  . = ALIGN(4096);
  .data : AT(ADDR(.data) - 0xffffffff80000000) {
    KEEP(*(.limine_requests_start)) KEEP(*(.limine_requests)) KEEP(*(.limine_requests_end)) *(.data .data.*)
  } :data
  .bss : AT(ADDR(.bss) - 0xffffffff80000000) { *(.bss .bss.*) *(COMMON) } :data
  /DISCARD/ : { *(.eh_frame*) *(.note*) *(.comment) }
}`;

function build(): Uint8Array {
  const dir = mkdtempSync(join(tmpdir(), 'memvisor-elf-'));
  try {
    writeFileSync(join(dir, 'k.c'), C);
    writeFileSync(join(dir, 'k.ld'), LD);
    execFileSync('gcc', ['-ffreestanding', '-fno-pic', '-fno-stack-protector', '-mcmodel=kernel', '-mno-red-zone', '-O2',
      '-nostdlib', '-static', '-no-pie', '-Wl,-z,max-page-size=0x1000', '-Wl,--build-id=none', '-T', join(dir, 'k.ld'),
      '-o', join(dir, 'k.elf'), join(dir, 'k.c')], { stdio: 'pipe' });
    return new Uint8Array(readFileSync(join(dir, 'k.elf')));
  } finally { rmSync(dir, { recursive: true, force: true }); }
}

describe('a gcc-built Limine kernel', () => {
  it.skipIf(!hasGcc)('loads: requests answered, segments mapped with their rights (skipped without gcc)', async () => {
    const elf = build();
    const hv = await Hypervisor.create({ hostMemoryBytes: 64 * 2 ** 20 });
    const vm = hv.createVm({ memoryBytes: 16 * 2 ** 20, mode: 'nested' });
    const img = parseElf(elf, vm.memoryBytes);
    expect(img.physBase).toBe(0x20_0000n);
    expect(img.segments.map((s) => s.flags & (PF_W | PF_X))).toEqual([PF_X, 0, PF_W]);
    const boot = loadKernel(vm, elf, { cmdline: 'from gcc' });
    expect(boot.baseRevision).toMatchObject({ requested: 3n, loaded: 3n, supported: true });
    expect(Object.keys(boot.responses).sort()).toEqual(['executableCmdline', 'hhdm', 'memmap']);
    for (const r of boot.requests) expect(vm.memory.read64(r.gpa + 40n)).toBe(HHDM_OFFSET + boot.responses[r.kind]!);
    const r = boot.registers;
    const cpu = vm.vcpus[0].cpu;
    vm.vcpus[0].setRegisters({ cr0: r.cr0, cr3: r.cr3, cr4: r.cr4, efer: r.efer, cpl: 0 });
    const data = img.segments[2];
    vm.memory.hpaOf(data.paddr);
    expect(cpu.translate(data.vaddr, { write: true })).toMatchObject({ ok: true, pa: vm.memory.hpaOf(data.paddr) });
    expect(cpu.translate(data.vaddr, { fetch: true })).toMatchObject({ ok: false, fault: 'PF' });
    expect(cpu.translate(r.rip, { fetch: true })).toMatchObject({ ok: true, pa: vm.memory.hpaOf(img.segments[0].paddr + (r.rip - img.segments[0].vaddr)) });
    expect(cpu.translate(img.segments[0].vaddr, { write: true })).toMatchObject({ ok: false, fault: 'PF' });
  });
});
