// A flat 64-bit machine for interpreter tests: 4-level paging, code, data and stack
// pages mapped 1:1 (user-accessible unless `supervisorOnly`), long mode on.

import { Machine, PageTableBuilder, FrameBump, CR0, CR4, EFER, type Cpu, type CpuOptions } from '../../src/index.js';

export const CODE = 0x40_0000n;
export const DATA = 0x60_0000n;
export const STACK_TOP = 0x80_0000n;
export const CODE_PAGES = 16;
export const DATA_PAGES = 64;
export const STACK_PAGES = 16;

export interface Env { m: Machine; cpu: Cpu; pt: PageTableBuilder; frames: FrameBump }

export interface EnvOptions { cpl?: 0 | 3; bitmap?: number; memoryBytes?: number; cpu?: CpuOptions }

export async function flatEnv(opts: EnvOptions = {}): Promise<Env> {
  const m = await Machine.create({ memoryBytes: opts.memoryBytes ?? 16 * 1024 * 1024 });
  const frames = new FrameBump(m.memory, 0x10_0000n, 0x40_0000n);
  const pt = new PageTableBuilder(m.memory, frames);
  pt.mapRange(CODE, CODE, CODE_PAGES * 4096);
  pt.mapRange(DATA, DATA, DATA_PAGES * 4096, 4096, { nx: true });
  pt.mapRange(STACK_TOP - BigInt(STACK_PAGES * 4096), STACK_TOP - BigInt(STACK_PAGES * 4096), STACK_PAGES * 4096, 4096, { nx: true });
  const cpu = m.createCpu(opts.cpu);
  const cpl = opts.cpl ?? 3;
  cpu.setRegisters({
    cr0: CR0.PG | CR0.PE | CR0.WP, cr4: CR4.PAE, efer: EFER.LME | EFER.NXE | 1n, cr3: pt.root, cpl,
    rflags: 0x2n, rip: CODE, rsp: STACK_TOP, cs: cpl === 3 ? 0x33n : 0x08n, ss: cpl === 3 ? 0x2bn : 0x10n,
  });
  cpu.setExceptionBitmap(opts.bitmap ?? 0xffff_ffff);
  return { m, cpu, pt, frames };
}

export function load(env: Env, bytes: Uint8Array, at = CODE): void {
  env.m.memory.write(at, bytes);
}
