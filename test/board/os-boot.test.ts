// End to end: a hand-written Limine kernel (fixtures/hello.S, built with gcc + ld here)
// boots on the OsMachine board with the interpreting vCPU under every paging mode: it
// checks its responses, prints over the UART, makes a balloon hypercall with `inl` and
// powers off. Skipped, visibly, without gcc.
import { describe, it, expect } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Hypervisor } from '../../src/hypervisor/index.js';
import { OsMachine } from '../../src/board/os-machine.js';
import { interpretingCpu } from '../../src/board/cpu-adapter.js';

const FIX = fileURLToPath(new URL('./fixtures/', import.meta.url));
const hasGcc = (() => { try { execFileSync('gcc', ['--version'], { stdio: 'ignore' }); return true; } catch { return false; } })();

/** Builds a kernel from an assembly file (or source text) with the fixture's linker script. */
function buildKernel(source: string, file = false): Uint8Array {
  const dir = mkdtempSync(join(tmpdir(), 'memvisor-kernel-'));
  try {
    const src = file ? source : join(dir, 'k.S');
    if (!file) writeFileSync(src, source);
    execFileSync('gcc', ['-nostdlib', '-static', '-no-pie', '-Wl,-z,max-page-size=0x1000', '-Wl,--build-id=none',
      '-T', join(FIX, 'hello.ld'), '-o', join(dir, 'k.elf'), src], { stdio: 'pipe' });
    return new Uint8Array(readFileSync(join(dir, 'k.elf')));
  } finally { rmSync(dir, { recursive: true, force: true }); }
}

const EXPECTED = 'hello from a machine-code guest\nballoon START ok\ncmdline: console=ttyS0 answer=42\n';

describe.skipIf(!hasGcc)('booting a hand-written kernel (skipped without gcc)', () => {
  const elf = hasGcc ? buildKernel(join(FIX, 'hello.S'), true) : new Uint8Array();
  it.each(['native', 'nested', 'shadow'] as const)('under %s paging: same console, power-off status 0', async (mode) => {
    const hv = await Hypervisor.create({ hostMemoryBytes: 96 * 2 ** 20 });
    const out: number[] = [];
    const m = new OsMachine({ hv, kernel: elf, memoryBytes: 32 * 2 ** 20, mode, cpu: interpretingCpu,
      load: { cmdline: 'console=ttyS0 answer=42' }, console: (b) => out.push(b) });
    const r = m.run({ instructions: 1e6 });
    expect(r).toMatchObject({ stop: 'power-off', status: 0, powerOff: { via: 'acpi' } });
    expect(new TextDecoder().decode(Uint8Array.from(out))).toBe(EXPECTED);
    expect(m.uart.text()).toBe(EXPECTED);
    const c = m.counters();
    expect(c.instructions).toBe(r.instructions);
    expect(r.instructions).toBeGreaterThan(500);
    expect(c.exit_IO).toBeGreaterThan(2 * EXPECTED.length); // an LSR poll and a THR write per byte
    expect(c.backdoorCalls).toBe(1);
    expect(m.balloon.capabilities).toBe(0x3e);
    expect(c.balloonViolations).toBe(0);
  });

  it('a failing check powers off through isa-debug-exit with its code (no balloon: the inl reads all ones)', async () => {
    const hv = await Hypervisor.create({ hostMemoryBytes: 96 * 2 ** 20 });
    const m = new OsMachine({ hv, kernel: elf, memoryBytes: 32 * 2 ** 20, mode: 'nested', cpu: interpretingCpu, balloon: false });
    expect(m.run({ instructions: 1e6 })).toMatchObject({ stop: 'power-off', status: 15, powerOff: { via: 'debug-exit' } });
    expect(m.uart.text()).toBe('hello from a machine-code guest\n');
  });

  it.each([
    ['ud2 with no IDT', 'ud2', /^#DF \(error 0\) at rip 0xffffffff80200007, cr2 0x0, instruction 1$/],
    ['a #PF at 0xdead000 with no IDT', 'mov rax, [0xdead000]', /^#DF \(error 0\) at rip 0xffffffff80200007, cr2 0xdead000, instruction 1$/],
  ])('a triple fault (%s) stops the run with the registers and the last exception', async (_name, insn, last) => {
    const hv = await Hypervisor.create({ hostMemoryBytes: 96 * 2 ** 20 });
    const k = buildKernel(`.intel_syntax noprefix\n.text\n.global _start\n_start:\n mov rbx, 0x1234\n ${insn}\n hlt\n`);
    const m = new OsMachine({ hv, kernel: k, memoryBytes: 32 * 2 ** 20, mode: 'shadow', cpu: interpretingCpu });
    const r = m.run({ instructions: 1e6 });
    expect(r).toMatchObject({ stop: 'triple-fault', dump: { rbx: '0x1234', idtrLimit: '0x0' } });
    expect(r.dump!.lastException).toMatch(last);
    expect(m.counters().exit_SHUTDOWN).toBe(1);
  });

  it.each(['nested', 'shadow'] as const)('the balloon over inl under %s paging: 2 MiB lock, a touched ballooned page pops it and forces a reset', async (mode) => {
    const hv = await Hypervisor.create({ hostMemoryBytes: 96 * 2 ** 20 });
    const m = new OsMachine({ hv, kernel: buildKernel(join(FIX, 'balloon.S'), true), memoryBytes: 32 * 2 ** 20, mode, cpu: interpretingCpu });
    m.balloon.setTarget(512);
    const r = m.run({ instructions: 1e6 });
    expect(r).toMatchObject({ stop: 'power-off', status: 0 });
    expect(m.uart.text()).toBe('locked\nreset\n');
    expect(m.balloonTouches).toBe(1);
    expect(m.balloon.violations.map((v) => [v.kind, v.gpa])).toEqual([['touched-ballooned', 0x40_0000n]]);
    expect(m.balloonStats.snapshot()).toMatchObject({ inflated: 512, popped: 512, size: 0, violations: 1 });
    expect(m.balloon.protocolState).toBe('reset-pending');
    expect(m.backdoor.calls).toBe(5);
  });

  it.each([['native', 1], ['nested', 1], ['shadow', 1]] as const)('CPUID advertises PCID under %s paging (%d): CR4.PCIDE can be set in every mode', async (mode, pcid) => {
    const hv = await Hypervisor.create({ hostMemoryBytes: 96 * 2 ** 20 });
    const k = buildKernel(`.intel_syntax noprefix\n.text\n.global _start\n_start:\n mov eax, 1\n xor ecx, ecx\n cpuid\n shr ecx, 17\n and ecx, 1\n mov al, cl\n out 0xf4, al\n hlt\n`);
    const m = new OsMachine({ hv, kernel: k, memoryBytes: 32 * 2 ** 20, mode, cpu: interpretingCpu });
    expect(m.run({ instructions: 1e4 })).toMatchObject({ stop: 'power-off', status: pcid });
  });

  it('a timeout stops a kernel that spins', async () => {
    const hv = await Hypervisor.create({ hostMemoryBytes: 96 * 2 ** 20 });
    const m = new OsMachine({ hv, kernel: elf, memoryBytes: 32 * 2 ** 20, mode: 'nested', cpu: interpretingCpu });
    expect(m.run({ instructions: 50 })).toMatchObject({ stop: 'timeout', instructions: 50 });
  });
});
