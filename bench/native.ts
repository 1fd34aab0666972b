// The native side of the CPU benchmark: the loops of bench/cpu-loops.ts run on the host
// CPU through the differential test's gcc-built helper (test/cpu/native/harness.c), at
// CPL 3 from the same addresses. Reports instructions per second (median of `reps`).

import { NativeHelper, nativeUnavailable } from '../test/cpu/native/runner.js';
import { CPU_LOOPS, LOOP_CODE_BASE, LOOP_DATA_BASE, type CpuLoop } from './cpu-loops.js';

const GPRS = ['rax', 'rcx', 'rdx', 'rbx', 'rsp', 'rbp', 'rsi', 'rdi', 'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15'];

export interface NativeLoopRate { name: CpuLoop['name']; instructions: number; seconds: number; instructionsPerSec: number }

/** Iterations per run: a few hundred ms natively. */
const ITERATIONS: Record<CpuLoop['name'], number> = { registerLoop: 100_000_000, tlbHitMemoryLoop: 50_000_000, tlbMissMemoryLoop: 10_000_000 };

/** Runs every loop natively; `undefined` with the reason when the helper cannot be built here. */
export function nativeLoopRates(reps = 5, scale = 1): { rates?: NativeLoopRate[]; skipped?: string } {
  const why = nativeUnavailable();
  if (why) return { skipped: why };
  const helper = NativeHelper.build();
  try {
    return { rates: CPU_LOOPS.map((loop) => rateOf(helper, loop, Math.max(1, Math.round(ITERATIONS[loop.name] * scale)), reps)) };
  } finally {
    helper.dispose();
  }
}

function rateOf(helper: NativeHelper, loop: CpuLoop, iterations: number, reps: number): NativeLoopRate {
  const regs = loop.registers(iterations);
  const gpr = GPRS.map((n) => regs[n] ?? 0n);
  const layout = { codeBase: LOOP_CODE_BASE, codeSize: 4096, dataBase: LOOP_DATA_BASE, dataSize: Math.max(4096, loop.dataBytes), gsBase: 0 };
  // gpr[4] (RSP) stays 0: the loops never touch the stack. The first case warms the pages up.
  const cases = Array.from({ length: reps + 1 }, () => ({ gpr, rflags: 0x202n, code: loop.code }));
  const [res] = helper.run([{ cases }], layout, { noDiff: true });
  for (const r of res) if (r.status !== 'end') throw new Error(`native ${loop.name} stopped with ${r.status} #${r.vector}`);
  const ns = res.slice(1).map((r) => r.ns).sort((a, b) => a - b)[reps >> 1];
  const instructions = iterations * loop.instructionsPerIteration;
  return { name: loop.name, instructions, seconds: ns / 1e9, instructionsPerSec: instructions / (ns / 1e9) };
}
