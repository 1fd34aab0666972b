// memvisor-os (the committed ELF) on memvisor's own x86-64 interpreter and board
// (the board's vCPU adapter), under all three paging modes.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Hypervisor } from '../../src/hypervisor/monitor/hypervisor.js';
import { OsMachine } from '../../src/board/os-machine.js';
import { interpretingCpu } from '../../src/board/cpu-adapter.js';
import { OS_DIR } from '../../guests/os/build.mjs';
import { Scheduler } from '../../src/hypervisor/policy/scheduler.js';

const KERNEL = new Uint8Array(readFileSync(join(OS_DIR as string, 'bin/memvisor-os.elf')));
const MEMORY = 64 * 2 ** 20;

async function machine(mode: 'native' | 'nested' | 'shadow', cmdline: string) {
  const hv = await Hypervisor.create({ hostMemoryBytes: MEMORY + 32 * 2 ** 20 });
  const out: number[] = [];
  const m: OsMachine = new OsMachine({ hv, kernel: KERNEL, memoryBytes: MEMORY, mode, cpu: interpretingCpu,
    load: { cmdline, path: '/boot/memvisor-os.elf' }, console: (b) => out.push(b) });
  return { m, console: () => Buffer.from(out).toString('latin1') };
}

const PROGRAMS = 'run=hello,toucher:2,random:1:5000,forktree:2:16,crash';

describe('memvisor-os on the memvisor board', () => {
  it('runs the programs to power-off with the same console output under native, nested and shadow paging', async () => {
    const outs: string[] = [];
    for (const mode of ['native', 'nested', 'shadow'] as const) {
      const { m, console } = await machine(mode, PROGRAMS);
      const r = m.run({ instructions: 5e7 });
      expect(r.stop).toBe('power-off');
      expect(r.status).toBe(0);
      expect(m.counters().staleUses).toBe(0);
      outs.push(console());
    }
    const out = outs[0];
    expect(out).toMatch(/PCIDs on/);
    expect(out).toMatch(/^toucher: 2 MiB pass 1 checksum 502e1ea803eeebc9 ok$/m);
    expect(out).toMatch(/^random: 1 MiB 5000 accesses \(2464 writes\) checksum 51427d00ddea9dfd ok$/m);
    expect(out).toMatch(/^forktree: depth 2, 7 processes, all ok$/m);
    expect(out).toMatch(/^\[\d+ crash\] killed: page fault outside any region$/m);
    expect(out).not.toMatch(/still alive|BAD|PANIC/);
    const free = [...out.matchAll(/^mem: \d+ frames total, (\d+) free/gm)].map((x) => Number(x[1]));
    expect(free[1]).toBe(free[0]);                    // every frame came back
    expect(outs[1]).toBe(outs[0]);
    // Shadow paging: the guest runs with its PCIDs too (0 stale uses above, with the
    // coherence checker on), but its exits cost guest time, so the timer preempts at other
    // points and processes interleave their lines differently. Every line is there, once.
    const lines = (o: string) => o.split('\n').sort();
    expect(outs[2]).toMatch(/PCIDs on/);
    expect(lines(outs[2])).toEqual(lines(outs[0]));
  }, 120_000);

  it('a sleeping guest wakes at its timer whether run(), step() alone or a scheduler drives it', async () => {
    const ends: number[] = [];
    for (const drive of ['run', 'step', 'scheduler'] as const) {
      const { m, console } = await machine('nested', 'run=sleeper:1 linger=0');
      if (drive === 'run') m.run({ seconds: 5 });
      else if (drive === 'scheduler') { const s = new Scheduler({ hz: m.hz }); m.attach(s); s.runFor(5); }
      else for (let i = 0; i < 10_000 && !m.stopped; i++) m.step(2e6);
      expect(m.stopped).toMatchObject({ stop: 'power-off', status: 0 });
      expect(console()).toMatch(/^sleeper: slept 1 s$/m);
      ends.push(m.stopped!.seconds);
    }
    expect(ends[0]).toBeGreaterThan(1);
    expect(ends[0]).toBeLessThan(1.1);
    expect(ends[1]).toBe(ends[0]);                    // the same guest time: halts end at the same timer ticks
    expect(ends[2]).toBe(ends[0]);
  }, 60_000);

  it.each([1e9, 3e9])('the kernel times its APIC timer from CPUID 0x15 (TSC at %d Hz): a 1 s sleep is 1 s of guest time', async (hz) => {
    const hv = await Hypervisor.create({ hostMemoryBytes: MEMORY + 32 * 2 ** 20 });
    const out: number[] = [];
    const m = new OsMachine({ hv, kernel: KERNEL, memoryBytes: MEMORY, mode: 'nested', cpu: interpretingCpu, hz,
      load: { cmdline: 'run=sleeper:1 linger=0' }, console: (b) => out.push(b) });
    const r = m.run({ seconds: 5 });
    expect(r.stop).toBe('power-off');
    const text = Buffer.from(out).toString('latin1');
    expect(text).toContain(`apic: x2APIC timer periodic at 100 Hz, clock ${hz} Hz (CPUID 0x15), TSC ${hz} Hz`);
    expect(r.seconds).toBeGreaterThan(1);             // 100 ticks of 10 ms, plus boot and power-off
    expect(r.seconds).toBeLessThan(1.05);
  }, 60_000);

  it.each(['nested', 'shadow'] as const)('inflates and deflates to the host target (2 MiB pages, doorbell) with no protocol violation (%s)', async (mode) => {
    const { m, console } = await machine(mode, 'run=sleeper:7,toucher:2:3');
    const until = (s: number) => { m.run({ seconds: s }); };
    until(1.2);
    expect(m.balloon.violationCount).toBe(0);
    m.balloon.setTarget(5000);
    until(1.7);                                        // the doorbell: no need to wait for the 1 s tick
    expect(m.balloon.size).toBeGreaterThanOrEqual(5000);
    expect(m.balloon.size).toBeLessThan(5000 + 512);   // whole 2 MiB pages, rounded up
    m.balloon.setTarget(1000);
    until(3.5);
    expect(m.balloon.size).toBeGreaterThanOrEqual(1000);
    expect(m.balloon.size).toBeLessThan(1000 + 512);
    m.balloon.setTarget(0);
    until(4.5);
    expect(m.balloon.size).toBe(0);
    m.balloon.setTarget(2000);
    until(5.0);
    expect(m.balloon.size).toBe(2048);
    m.balloon.requestReset();                          // ERROR_RESET: the driver pops, STARTs again, re-inflates
    until(6.2);
    expect(m.balloon.size).toBe(2048);
    m.run({ seconds: 60 });
    expect(m.stopped?.stop).toBe('power-off');
    expect(m.balloon.violationCount).toBe(0);
    expect(m.counters().staleUses).toBe(0);
    const out = console();
    expect(out).toMatch(/^sleeper: slept 7 s$/m);
    expect(out.match(/^toucher: 2 MiB pass \d checksum [0-9a-f]{16} ok$/gm)?.length).toBe(3);
    expect(out).toMatch(/^2m-lock +[1-9]\d* \(0 failed\)$/m);
    expect(out).toMatch(/^2m-unlock +[1-9]\d* \(0 failed\)$/m);
    expect(out).toMatch(/^doorbell: +[1-9]/m);
    expect(out).toMatch(/^reset: +2$/m);
  }, 120_000);

  it.each(['nested', 'shadow'] as const)('a touched ballooned page makes the host reset the driver, which re-inflates (%s)', async (mode) => {
    const { m, console } = await machine(mode, 'shell');
    const until = (s: number) => { m.run({ seconds: s }); };
    until(1.1);
    m.balloon.setTarget(3000);
    until(1.5);
    expect(m.balloon.size).toBe(3072);
    m.uart.pushInput('balloon touch\n');
    until(1.6);
    expect(m.balloon.violations.map((v) => v.kind)).toEqual(['touched-ballooned']);
    expect(m.balloonTouches).toBe(1);                  // one exit (EPT violation; shadow: the fill finds a ballooned gpa)
    until(3.5);                                        // ERROR_RESET at the 2 s pass, reset at the 3 s one
    expect(m.balloon.size).toBe(3072);               // reset (pop, START, GUEST_ID), then inflated again
    m.uart.pushInput('balloon\n');
    until(3.7);
    const out = console();
    expect(out).toMatch(/^balloon: touched ballooned page 0x[0-9a-f]+/m);
    expect(out).toMatch(/^target +\d+ \(1 failed\)$/m);   // the GET_TARGET answered ERROR_RESET
    expect(out).toMatch(/^reset: +2$/m);
    expect(out).toMatch(/^current: +3072$/m);
    expect(m.balloon.violationCount).toBe(1);
  }, 60_000);
});
