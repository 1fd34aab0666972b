// A CPL0 machine with a GDT, a 64-bit TSS and an IDT built by the host, for the system
// tests. Layout (all identity-mapped, see env.ts):
//   GDT  DATA+0x0000: 0x08 kernel code64, 0x10 kernel data, 0x18 unused, 0x20 user data
//        (DPL3), 0x28 user code64 (DPL3), 0x30 TSS (16 bytes)
//   TSS  DATA+0x0100 (limit 0x67): RSP0 = KSTACK, IST1 = ISTACK
//   IDT  DATA+0x1000, 256 gates, none present unless set with gate()
// STAR: SYSCALL CS/SS 0x08/0x10, SYSRET base 0x18 → SS 0x23, CS 0x2b.

import { flatEnv, DATA, STACK_TOP, type Env } from './env.js';

export const GDT = DATA;
export const TSS = DATA + 0x100n;
export const IDT = DATA + 0x1000n;
export const KSTACK = STACK_TOP - 0x1000n;   // kernel stack top (RSP0)
export const ISTACK = STACK_TOP - 0x8000n;   // IST1 stack top
export const KCODE = 0x08n, KDATA = 0x10n, UDATA = 0x23n, UCODE = 0x2bn, TSS_SEL = 0x30n;

export function setGate(env: Env, vector: number, handler: bigint, opts: { dpl?: number; ist?: number; trap?: boolean; present?: boolean; sel?: bigint } = {}): void {
  const sel = opts.sel ?? KCODE;
  const type = opts.trap ? 0xfn : 0xen;
  const p = opts.present ?? true ? 1n : 0n;
  const lo = (handler & 0xffffn) | (sel << 16n) | (BigInt(opts.ist ?? 0) << 32n) | (type << 40n) |
    (BigInt(opts.dpl ?? 0) << 45n) | (p << 47n) | (((handler >> 16n) & 0xffffn) << 48n);
  const at = IDT + BigInt(vector) * 16n;
  env.m.memory.write64(at, lo);
  env.m.memory.write64(at + 8n, handler >> 32n);
}

export async function sysEnv(): Promise<Env> {
  const env = await flatEnv({ cpl: 0, bitmap: 0 });
  const mem = env.m.memory;
  mem.write64(GDT + 0x08n, 0x0020_9a00_0000_0000n);
  mem.write64(GDT + 0x10n, 0x0000_9200_0000_0000n);
  mem.write64(GDT + 0x20n, 0x0000_f200_0000_0000n);
  mem.write64(GDT + 0x28n, 0x0020_fa00_0000_0000n);
  // 64-bit TSS descriptor: limit 0x67, base TSS, type 9, present.
  const base = TSS;
  const lo = 0x67n | ((base & 0xff_ffffn) << 16n) | (0x89n << 40n) | (((base >> 24n) & 0xffn) << 56n);
  mem.write64(GDT + 0x30n, lo);
  mem.write64(GDT + 0x38n, base >> 32n);
  mem.write64(TSS + 4n, KSTACK);
  mem.write64(TSS + 0x24n, ISTACK);
  mem.write32(TSS + 0x66n, 0x68); // I/O bitmap base at the limit: no bitmap (all denied)
  env.cpu.setRegisters({
    gdtrBase: GDT, gdtrLimit: 0x3fn, idtrBase: IDT, idtrLimit: 0xfffn,
    tr: TSS_SEL, trBase: TSS, trLimit: 0x67n, cs: KCODE, ss: KDATA,
    star: (0x18n << 48n) | (0x08n << 32n), fmask: 0x200n,
  });
  return env;
}
