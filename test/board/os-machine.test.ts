// The machine-code board's run loop against a scripted vCPU (the interpreting CPU is tested
// end to end in os-boot.test.ts): IO dispatch to the UART, the power-off ports and the
// backdoor with its register file; HLT advancing virtual time; triple fault; timeout; the
// balloon doorbell becoming an injected interrupt.
import { describe, it, expect } from 'vitest';
import { Hypervisor } from '../../src/hypervisor/index.js';
import { OsMachine, type GuestCpu, type CpuExit } from '../../src/board/os-machine.js';
import type { GprFile } from '../../src/devices/backdoor-inl.js';
import type { BootRegisters } from '../../src/board/loader.js';
import { CMD, STATUS } from '../../src/devices/balloon.js';
import { kernelImage } from './kernel-image.js';

type Step = CpuExit & { instr?: number; regs?: Partial<GprFile> };

/** A vCPU that replays exits; it keeps what the board writes back. */
class ScriptedCpu implements GuestCpu {
  regs: GprFile & { rip: bigint; rflags: bigint } = { rax: 0n, rbx: 0n, rcx: 0n, rdx: 0n, rsi: 0n, rdi: 0n, rip: 0n, rflags: 2n };
  ioData: bigint[] = [];
  injected: number[] = [];
  booted: BootRegisters | null = null;
  private n = 0; private t = 0n;
  timer: bigint | null = null;
  constructor(private readonly script: Step[]) {}
  boot(r: BootRegisters): void { this.booted = r; this.regs.rip = r.rip; }
  run(max: number): CpuExit {
    const s = this.script.shift();
    if (!s) { this.n += max; this.t += BigInt(max); return { reason: 'BUDGET' }; }
    const k = Math.min(max, s.instr ?? 10);
    this.n += k; this.t += BigInt(k);
    if (s.regs) Object.assign(this.regs, s.regs);
    const { instr: _i, regs: _r, ...exit } = s;
    return exit as CpuExit;
  }
  gprs() { return { ...this.regs }; }
  setGprs(r: Partial<GprFile>): void { Object.assign(this.regs, r); }
  setIoData(v: bigint): void { this.ioData.push(v); this.regs.rax = v; }
  injectInterrupt(v: number): void { this.injected.push(v); }
  instructions(): number { return this.n; }
  tsc(): bigint { return this.t; }
  advanceTo(t: bigint): void { this.t = t; }
  nextTimer(): bigint | null { return this.timer; }
  dump() { return { rip: '0x' + this.regs.rip.toString(16), lastException: '#GP(0) at 0x1234' }; }
  counters() { return { instructions: this.n }; }
}

async function board(script: Step[], cpu = new ScriptedCpu(script)) {
  const hv = await Hypervisor.create({ hostMemoryBytes: 64 * 2 ** 20 });
  const out: number[] = [];
  const m = new OsMachine({ hv, kernel: kernelImage().elf, memoryBytes: 16 * 2 ** 20, mode: 'nested', console: (b) => out.push(b), cpu: () => cpu });
  return { m, cpu, out, hv };
}

const outb = (port: number, value: number, size = 1): Step => ({ reason: 'IO', port, size, direction: 'out', value: BigInt(value) });
const inb = (port: number, size = 1, regs?: Partial<GprFile>): Step => ({ reason: 'IO', port, size, direction: 'in', value: 0n, regs });

describe('OsMachine run loop', () => {
  it('boots the loaded kernel, streams the UART, answers IN, stops at power-off', async () => {
    const { m, cpu, out } = await board([
      ...[...'ok\n'].map((c) => outb(0x3f8, c.charCodeAt(0))), inb(0x3fd), inb(0x80), outb(0x604, 0x2000, 2), outb(0x3f8, 0x41)]);
    expect(cpu.booted!.rip).toBe(m.boot.registers.rip);
    const r = m.run({ instructions: 1e6 });
    expect(r).toMatchObject({ stop: 'power-off', status: 0, powerOff: { via: 'acpi' } });
    expect(String.fromCharCode(...out)).toBe('ok\n');
    expect(cpu.ioData).toEqual([0x60n, 0xffn]); // LSR; an unclaimed port floats high
    expect(m.counters()).toMatchObject({ exit_IO: 6, consoleBytes: 3, unclaimedPorts: 1 });
  });

  it('isa-debug-exit reports its code', async () => {
    const { m } = await board([outb(0xf4, 3)]);
    expect(m.run()).toMatchObject({ stop: 'power-off', status: 3, powerOff: { via: 'debug-exit' } });
  });

  it('the backdoor gets the register file and writes EAX (as IN data), EBX and ECX back', async () => {
    const magic = 0x456c6d6fn;
    const { m, cpu } = await board([
      inb(0x5670, 4, { rax: magic, rcx: BigInt(CMD.START), rbx: 0x3en, rdx: 0x5670n, rsi: 0n, rdi: 99n }),
      inb(0x5670, 4, { rax: magic, rcx: BigInt(CMD.VMCI_DOORBELL_SET), rbx: 0n, rsi: 0x41n }),
      inb(0x5670, 4, { rax: magic, rcx: BigInt(CMD.GET_TARGET), rbx: 1000n, rsi: 0n }),
      outb(0xf4, 0)]);
    m.run();
    expect(cpu.ioData).toEqual([BigInt(STATUS.SUCCESS_WITH_CAPABILITIES), 0n, 0n]);
    expect(cpu.regs).toMatchObject({ rbx: 0n, rcx: BigInt(CMD.GET_TARGET), rdi: 99n, rdx: 0x5670n });
    expect(m.balloon.capabilities).toBe(0x3e);
    // The host changes the target: the doorbell is an interrupt at the registered vector.
    m.balloon.setTarget(512);
    expect(cpu.injected).toEqual([0x41]);
    expect(m.counters()).toMatchObject({ backdoorCalls: 3, balloonViolations: 0, doorbellRings: 1 });
  });

  it('HLT advances virtual time to the next timer; HLT with nothing armed stops as halted', async () => {
    const cpu = new ScriptedCpu([{ reason: 'HLT' }, { reason: 'HLT' }]);
    cpu.timer = 2_000_000n;
    const { m } = await board([], cpu);
    m.run({ instructions: 25 });
    expect(cpu.tsc()).toBeGreaterThanOrEqual(2_000_000n);
    cpu.timer = null;
    const c2 = new ScriptedCpu([{ reason: 'HLT' }]);
    const b2 = await board([], c2);
    expect(b2.m.run()).toMatchObject({ stop: 'halted', message: expect.stringMatching(/no timer armed/) });
  });

  it('a triple fault stops with the registers and the last exception; a budget ends in a timeout', async () => {
    const { m } = await board([{ reason: 'SHUTDOWN' }]);
    expect(m.run()).toMatchObject({ stop: 'triple-fault', dump: { lastException: '#GP(0) at 0x1234' } });
    const t = await board([]);
    expect(t.m.run({ instructions: 5e6 })).toMatchObject({ stop: 'timeout', instructions: 5e6 });
    const s = await board([]);
    expect(s.m.run({ seconds: 0.001 })).toMatchObject({ stop: 'timeout' });
    expect(s.m.seconds).toBeGreaterThanOrEqual(0.001);
  });

  it('a kernel the loader refuses leaves no VM behind', async () => {
    const hv = await Hypervisor.create({ hostMemoryBytes: 64 * 2 ** 20 });
    expect(() => new OsMachine({ hv, kernel: new Uint8Array(100), memoryBytes: 16 * 2 ** 20, mode: 'nested', cpu: () => new ScriptedCpu([]) }))
      .toThrow(/ELF/);
    expect(hv.list()).toEqual([]);
  });
});

describe('OsMachine as a scheduler Runnable', () => {
  it('runs in slices on the virtual clock until it powers off, then idles', async () => {
    const { Scheduler } = await import('../../src/hypervisor/policy/scheduler.js');
    const script: Step[] = Array.from({ length: 5 }, () => ({ reason: 'BUDGET' as const, instr: 1_000_000 }));
    const { m } = await board([...script, outb(0xf4, 0)]);
    const s = new Scheduler({ hz: 2e9, slice: 1_000_000 });
    m.attach(s);
    s.runFor(0.1);
    expect(m.stopped).toMatchObject({ stop: 'power-off', status: 0 });
    expect(m.step(1000)).toBe(0);
    expect(s.usage(m)).toBe(5_000_010);
  });

  it('a halted guest sleeps on the shared clock until its timer; the other guest gets the CPU; time passes for both', async () => {
    const { Scheduler } = await import('../../src/hypervisor/policy/scheduler.js');
    const s = new Scheduler({ hz: 2e9, slice: 1_000_000 });
    const a = new ScriptedCpu([{ reason: 'BUDGET', instr: 1_000_000 }, { reason: 'HLT', instr: 10 }, { reason: 'BUDGET', instr: 1_000_000 }, outb(0xf4, 7)]);
    a.timer = 50_000_000n; // the guest's timer fires at TSC 5e7 (25 ms)
    const b = new ScriptedCpu(Array.from({ length: 200 }, () => ({ reason: 'BUDGET' as const, instr: 1_000_000 })));
    const ma = (await board([], a)).m.attach(s), mb = (await board([], b)).m.attach(s);
    s.runFor(0.01); // 2e7 cycles: A ran 1e6 + 10 and halted; B had the rest
    expect(s.usage(ma)).toBe(1_000_010);
    expect(s.usage(mb)).toBeGreaterThan(18_000_000);
    expect(ma.stopped).toBeNull();
    s.runFor(0.03); // past A's timer: it wakes with its TSC at the scheduler's clock, runs, powers off
    expect(ma.stopped).toMatchObject({ stop: 'power-off', status: 7 });
    expect(a.tsc()).toBeGreaterThanOrEqual(50_000_000n);
    expect(s.usage(ma)).toBe(2_000_020);
  });

  it('a lone halted guest is woken at its timer (the scheduler does not jump past nextWake)', async () => {
    const { Scheduler } = await import('../../src/hypervisor/policy/scheduler.js');
    const s = new Scheduler({ hz: 2e9, slice: 1_000_000 });
    const a = new ScriptedCpu([{ reason: 'HLT', instr: 10 }, outb(0xf4, 5)]);
    a.timer = 60_000_000n;
    const m = (await board([], a)).m.attach(s);
    s.runFor(0.01);
    expect(m.nextWake()).toBe(60_000_000);
    s.runFor(0.1);
    expect(m.stopped).toMatchObject({ stop: 'power-off', status: 5 });
    expect(m.stopped!.seconds).toBeCloseTo(0.03, 6); // woke at 6e7 cycles = 30 ms, not at the end of the run
  });

  it('an injected doorbell interrupt wakes a guest halted with no timer', async () => {
    const { Scheduler } = await import('../../src/hypervisor/policy/scheduler.js');
    const s = new Scheduler({ hz: 2e9, slice: 1_000_000 });
    const magic = 0x456c6d6fn;
    const a = new ScriptedCpu([
      inb(0x5670, 4, { rax: magic, rcx: BigInt(CMD.START), rbx: 0x3en }),
      inb(0x5670, 4, { rax: magic, rcx: BigInt(CMD.VMCI_DOORBELL_SET), rbx: 0n, rsi: 0x41n }),
      { reason: 'HLT' }, outb(0xf4, 0)]);
    const m = (await board([], a)).m.attach(s);
    s.runFor(0.01);
    expect(m.stopped).toBeNull(); // asleep: no timer
    m.balloon.setTarget(100);
    expect(a.injected).toEqual([0x41]);
    s.runFor(0.01);
    expect(m.stopped).toMatchObject({ stop: 'power-off' });
  });

  it('without a scheduler, step() moves a halted guest to its timer, at most budget cycles per call', async () => {
    const cpu = new ScriptedCpu([{ reason: 'HLT', instr: 10 }, { reason: 'HLT', instr: 10 }, { reason: 'HLT', instr: 10 }, outb(0xf4, 4)]);
    cpu.timer = 5_000_000n;
    const { m } = await board([], cpu);
    expect(m.step(2_000_000)).toBe(2_000_000);       // 10 instructions, then idle up to the budget
    expect(m.step(2_000_000)).toBe(2_000_000);
    expect(m.step(2_000_000)).toBe(1_000_000);       // the timer is due at 5e6: no further
    expect(cpu.tsc()).toBe(5_000_000n);
    m.step(2_000_000);
    expect(m.stopped).toMatchObject({ stop: 'power-off', status: 4 });
    cpu.timer = null;
    const lone = await board([{ reason: 'HLT' }]);
    lone.m.step(1000);
    expect(lone.m.stopped).toMatchObject({ stop: 'halted' }); // as run(): nothing can wake it
  });

  it('without the balloon device the backdoor port floats high', async () => {
    const cpu = new ScriptedCpu([inb(0x5670, 4, { rax: 0x456c6d6fn }), outb(0xf4, 0)]);
    const hv = await Hypervisor.create({ hostMemoryBytes: 64 * 2 ** 20 });
    const m = new OsMachine({ hv, kernel: kernelImage().elf, memoryBytes: 16 * 2 ** 20, mode: 'nested', balloon: false, cpu: () => cpu });
    m.run();
    expect(cpu.ioData).toEqual([0xffff_ffffn]);
    expect(m.backdoor.calls).toBe(0);
  });
});
