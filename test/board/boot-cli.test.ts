// `memvisor boot` plumbing that needs no CPU: argument parsing, the shipped-kernel lookup,
// and the report built from a run (validated by the report writer's schema).
import { describe, it, expect } from 'vitest';
import { mkdtempSync, writeFileSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseMemory, parseTimeout, shippedKernel, bootResult, runSampled } from '../../src/cli/boot.js';
import { validateResult } from '../../src/report/result.js';
import { renderReport } from '../../src/report/write.js';
import { Hypervisor } from '../../src/hypervisor/index.js';
import { OsMachine, type GuestCpu, type CpuExit } from '../../src/board/os-machine.js';
import { kernelImage } from './kernel-image.js';

describe('memvisor boot arguments', () => {
  it('parses memory sizes and refuses nonsense', () => {
    expect(parseMemory('64MiB')).toBe(64 * 2 ** 20);
    expect(parseMemory('1GiB')).toBe(2 ** 30);
    expect(parseMemory('65536')).toBe(65536);
    expect(() => parseMemory('12x')).toThrow(/expected a size/);
    expect(() => parseMemory('1000')).toThrow(/multiple of 4 KiB/);
  });

  it('parses a timeout in virtual seconds or instructions', () => {
    expect(parseTimeout('10s')).toEqual({ seconds: 10 });
    expect(parseTimeout('1e9')).toEqual({ instructions: 1e9 });
    expect(() => parseTimeout('soon')).toThrow(/virtual seconds/);
  });

  it('finds the shipped kernel, or says what is missing', () => {
    const dir = mkdtempSync(join(tmpdir(), 'memvisor-os-'));
    try {
      expect(() => shippedKernel(join(dir, 'none'))).toThrow(/no shipped OS found/);
      mkdirSync(join(dir, 'bin'));
      writeFileSync(join(dir, 'bin', 'a.elf'), '');
      expect(shippedKernel(join(dir, 'bin'))).toBe(join(dir, 'bin', 'a.elf'));
      writeFileSync(join(dir, 'bin', 'b.elf'), '');
      expect(() => shippedKernel(join(dir, 'bin'))).toThrow(/several kernels/);
      writeFileSync(join(dir, 'bin', 'kernel.elf'), '');
      expect(shippedKernel(join(dir, 'bin'))).toBe(join(dir, 'bin', 'kernel.elf'));
    } finally { rmSync(dir, { recursive: true, force: true }); }
  });
});

describe('the boot report', () => {
  it('is a valid ExperimentResult with the counters, exits, balloon figures and the console', async () => {
    const hv = await Hypervisor.create({ hostMemoryBytes: 64 * 2 ** 20 });
    const script: CpuExit[] = [
      { reason: 'IO', port: 0x3f8, size: 1, direction: 'out', value: 0x68n },
      { reason: 'IO', port: 0x3f8, size: 1, direction: 'out', value: 0x0an },
      { reason: 'IO', port: 0xf4, size: 1, direction: 'out', value: 0n },
    ];
    let n = 0;
    const cpu: GuestCpu = {
      boot() {}, run: () => { n += 100; return script.shift() ?? { reason: 'BUDGET' }; },
      gprs: () => ({ rax: 0n, rbx: 0n, rcx: 0n, rdx: 0n, rsi: 0n, rdi: 0n, rip: 0n, rflags: 2n }),
      setGprs() {}, setIoData() {}, injectInterrupt() {}, instructions: () => n, tsc: () => BigInt(n),
      advanceTo() {}, nextTimer: () => null, dump: () => ({}), counters: () => ({ instructions: n, tlbMisses: 3 }),
    };
    const m = new OsMachine({ hv, kernel: kernelImage().elf, memoryBytes: 16 * 2 ** 20, mode: 'shadow', cpu: () => cpu });
    const { result: r, timeline } = runSampled(m, { instructions: 1e6 });
    expect(timeline.length).toBeGreaterThan(0);
    expect(timeline.at(-1)).toMatchObject({ instructions: 300, balloonMiB: 0 });
    const res = bootResult(m, r, { kernel: '/x/kernel.elf', mode: 'shadow', memoryBytes: 16 * 2 ** 20, cmdline: 'a b', wall: 0.5 }, timeline);
    expect(() => validateResult(res)).not.toThrow();
    expect(res.summary).toMatchObject({ stop: 'power-off', status: 0, instructions: 300, tlbMisses: 3, exit_IO: 3, consoleBytes: 2 });
    expect(res.series.exits).toEqual([{ reason: 'IO', count: 3 }]);
    expect(res.notes).toContain('h');
    const files = await renderReport(res);
    expect([...files.keys()]).toEqual(expect.arrayContaining(['result.json', 'index.html', 'exits.svg', 'counters.csv']));
  });
});
