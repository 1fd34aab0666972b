// Interpreter throughput (guest instructions per second) for three loops, each beside the
// same loop run natively on the host CPU (compiled with the system gcc in a temp dir):
//   register   ALU only                                   (5 instructions per iteration)
//   tlbHit     load + store over 16 KiB: the L1 TLB hits   (7 per iteration)
//   tlbMiss    loads 4160 bytes apart over 64 MiB: every access misses the TLBs and walks
//              (5 per iteration)
// Rates are per second of wall time (median of REPS) and per second of this process's CPU
// time (robust when other processes share the cores). Nothing here asserts a speed.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Machine, PageTableBuilder, FrameBump, CR0, CR4, EFER } from '../src/index.js';
import { asm, HAVE_AS } from '../test/x86/asm.js';

const CODE = 0x40_0000n, DATA = 0x100_0000n, STACK = 0x80_0000n;
const DATA_BYTES = 64 * 2 ** 20;

interface Loop { name: string; body: string; perIter: number; iters: number }
const LOOPS: Loop[] = [
  { name: 'register', perIter: 5, iters: 4_000_000, body: `
    1: add rax, rbx
      xor rcx, rax
      inc rbx
      dec rdx
      jnz 1b` },
  { name: 'tlbHit', perIter: 7, iters: 3_000_000, body: `
    1: mov rax, [rsi + rcx * 8]
      add rax, 1
      mov [rsi + rcx * 8], rax
      inc rcx
      and ecx, 2047
      dec rdx
      jnz 1b` },
  { name: 'tlbMiss', perIter: 5, iters: 1_000_000, body: `
    1: mov rax, [rsi + rcx]
      add rcx, 4160
      and rcx, ${DATA_BYTES - 8}
      dec rdx
      jnz 1b` },
];

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

async function guestRates(loop: Loop, reps: number): Promise<{ wall: number; cpu: number; walksPerIter: number }> {
  const m = await Machine.create({ memoryBytes: 96 * 2 ** 20 });
  const frames = new FrameBump(m.memory, 0x10_0000n, 0x40_0000n);
  const pt = new PageTableBuilder(m.memory, frames);
  pt.mapRange(CODE, CODE, 4096, 4096, { accessed: true });
  pt.mapRange(STACK - 0x1000n, STACK - 0x1000n, 4096, 4096, { nx: true, dirty: true });
  pt.mapRange(DATA, DATA, DATA_BYTES, 4096, { nx: true, dirty: true });
  m.memory.write(CODE, asm(`${loop.body}\nint3`, CODE));
  const cpu = m.createCpu();
  cpu.setRegisters({ cr0: CR0.PG | CR0.PE | CR0.WP, cr4: CR4.PAE, efer: EFER.LME | EFER.NXE, cr3: pt.root, cpl: 3 });
  cpu.setExceptionBitmap(1 << 3);
  const start = () => cpu.setRegisters({ rip: CODE, rsp: STACK, rdx: BigInt(loop.iters), rsi: DATA, rcx: 0n, rax: 0n, rbx: 1n });
  const n = loop.iters * loop.perIter + 1;
  start();
  cpu.run({ maxInstructions: n }); // warm-up: lets the engine tier the Wasm up
  const walls: number[] = [], cpus: number[] = [];
  cpu.resetCounters();
  for (let r = 0; r < reps; r++) {
    start();
    const t0 = process.hrtime.bigint(), u0 = process.cpuUsage();
    const x = cpu.run({ maxInstructions: n });
    const wall = Number(process.hrtime.bigint() - t0) / 1e9, u = process.cpuUsage(u0);
    if (x.reason !== 'EXCEPTION' || x.instructions !== n) throw new Error(`bench loop ${loop.name} ended with ${x.reason}`);
    walls.push(n / wall);
    cpus.push(n / ((u.user + u.system) / 1e6));
  }
  const c = cpu.counters();
  return { wall: median(walls), cpu: median(cpus), walksPerIter: c.walks / (reps * loop.iters) };
}

/** The same loops on the host CPU; null without gcc. */
function nativeRates(): Record<string, { wall: number; cpu: number }> | null {
  const dir = mkdtempSync(join(tmpdir(), 'memvisor-bench-'));
  try {
    const fns = LOOPS.map((l) => `
static void run_${l.name}(long iters, char *buf) {
  __asm__ volatile(".intel_syntax noprefix\\n"
    "mov rdx, %0\\n mov rsi, %1\\n xor ecx, ecx\\n xor eax, eax\\n mov ebx, 1\\n"
    ${JSON.stringify(l.body.replace(/^\s+/gm, '') + '\n')}
    ".att_syntax prefix\\n" :: "r"(iters), "r"(buf) : "rax", "rbx", "rcx", "rdx", "rsi", "memory", "cc");
}`).join('\n');
    const calls = LOOPS.map((l) => `  bench("${l.name}", run_${l.name}, ${l.iters}L, ${l.perIter});`).join('\n');
    const src = `#include <stdio.h>
#include <stdlib.h>
#include <time.h>
static double now(clockid_t c) { struct timespec t; clock_gettime(c, &t); return t.tv_sec + t.tv_nsec / 1e9; }
static char *buf;
${fns}
static void bench(const char *name, void (*f)(long, char *), long iters, int per) {
  double best_w = 0, best_c = 0; f(iters, buf);
  double ws[7], cs[7];
  for (int r = 0; r < 7; r++) {
    double w0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_PROCESS_CPUTIME_ID);
    f(iters, buf);
    ws[r] = iters * (double)per / (now(CLOCK_MONOTONIC) - w0);
    cs[r] = iters * (double)per / (now(CLOCK_PROCESS_CPUTIME_ID) - c0);
  }
  for (int i = 0; i < 7; i++) for (int j = i + 1; j < 7; j++) {
    if (ws[j] < ws[i]) { double t = ws[i]; ws[i] = ws[j]; ws[j] = t; }
    if (cs[j] < cs[i]) { double t = cs[i]; cs[i] = cs[j]; cs[j] = t; }
  }
  best_w = ws[3]; best_c = cs[3];
  printf("%s %.0f %.0f\\n", name, best_w, best_c);
}
int main(void) {
  buf = aligned_alloc(4096, ${DATA_BYTES});
  for (long i = 0; i < ${DATA_BYTES}; i += 4096) buf[i] = 1;
${calls}
  return 0;
}
`;
    writeFileSync(join(dir, 'loops.c'), src);
    execFileSync('gcc', ['-O2', '-o', join(dir, 'loops'), join(dir, 'loops.c')], { stdio: ['ignore', 'ignore', 'pipe'] });
    const out: Record<string, { wall: number; cpu: number }> = {};
    for (const line of execFileSync(join(dir, 'loops'), { encoding: 'utf8' }).trim().split('\n')) {
      const [name, w, c] = line.split(' ');
      out[name] = { wall: Number(w), cpu: Number(c) };
    }
    return out;
  } catch (e) {
    console.error(`bench: native loops unavailable (${(e as Error).message.split('\n')[0]})`);
    return null;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function cpuBench(reps: number): Promise<Record<string, unknown>> {
  if (!HAVE_AS) return { guestCode: 'skipped: GNU as not found' };
  const native = process.env.NO_NATIVE ? null : nativeRates();
  const out: Record<string, unknown> = {};
  for (const l of LOOPS) {
    const g = await guestRates(l, reps);
    out[l.name] = {
      guestInstrPerSec: Math.round(g.wall), guestInstrPerCpuSec: Math.round(g.cpu),
      nativeInstrPerSec: native ? native[l.name].wall : null, nativeInstrPerCpuSec: native ? native[l.name].cpu : null,
      walksPerIteration: Number(g.walksPerIter.toFixed(3)),
    };
  }
  return { guestCode: out };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  cpuBench(Number(process.env.BENCH_REPS ?? 5)).then((o) => console.log(JSON.stringify(o, null, 2)));
}
