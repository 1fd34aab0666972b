// The shipped C guest OS (guests/os/bin/memvisor-os.elf) on memvisor's interpreter and board
// (src/board/os-machine.ts), for npm run bench:
//   boot to prompt   cmdline `shell`: host ms from creating the machine (ELF load included)
//                    to the last byte of the first `memvisor-os> ` prompt (and, of that, the
//                    creation alone), and the guest instructions retired by then (exact: the
//                    prompt byte is an IO exit)
//   user workload    10^8 guest instructions of a user program, counted from the moment it
//                    started (its `[1 …] started` line): `random` (random word reads and
//                    writes over 16 MiB, so the TLBs miss about 1 access in 100) and
//                    `toucher` (sequential passes over 4 MiB), each given more work than
//                    fits in 10^8 instructions, under nested and shadow paging with the
//                    coherence checker OFF (the production setting for speed), and `random`
//                    under nested paging with it ON as well.
// Rates are guest instructions per wall second and per second of this process's CPU time
// (steadier when other processes share the cores). Nothing here asserts a speed.

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Hypervisor } from '../src/hypervisor/monitor/hypervisor.js';
import { OsMachine } from '../src/board/os-machine.js';
import { interpretingCpu } from '../src/board/cpu-adapter.js';

const KERNEL_PATH = fileURLToPath(new URL('../guests/os/bin/memvisor-os.elf', import.meta.url));
const MEMORY = 64 * 2 ** 20;
const PROMPT = 'memvisor-os> ';
const WORKLOAD_INSTRUCTIONS = 1e8;
const WORKLOADS = {
  random: 'run=random:16:100000000',  // 10^8 accesses: about 10^9 instructions, never done here
  toucher: 'run=toucher:4:100000',    // 10^5 passes over 4 MiB
} as const;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

async function machine(mode: 'nested' | 'shadow', cmdline: string, coherenceChecker: boolean, kernel: Uint8Array) {
  const hv = await Hypervisor.create({ hostMemoryBytes: MEMORY + 32 * 2 ** 20 });
  let text = '';
  let onText = (): void => {};
  const m = new OsMachine({ hv, kernel, memoryBytes: MEMORY, mode, cpu: interpretingCpu, coherenceChecker,
    load: { cmdline, path: '/boot/memvisor-os.elf' },
    console: (b) => { text += String.fromCharCode(b); onText(); } });
  return { m, text: () => text, watch: (fn: () => void) => { onText = fn; } };
}

/** Runs in small steps until `until()` holds; throws if the guest stops or takes too long first. */
function runUntil(m: OsMachine, until: () => boolean, what: string, limit = 5e7): void {
  while (!until()) {
    if (m.stopped) throw new Error(`bench os: the guest stopped (${m.stopped.stop}) before ${what}`);
    if (m.cpu.instructions() > limit) throw new Error(`bench os: no ${what} within ${limit} instructions`);
    m.run({ instructions: m.cpu.instructions() + 20_000 });
  }
}

async function bootToPrompt(mode: 'nested' | 'shadow', kernel: Uint8Array): Promise<{ ms: number; createMs: number; instructions: number }> {
  const t0 = process.hrtime.bigint();
  const g = await machine(mode, 'shell', false, kernel);
  const t1 = process.hrtime.bigint();
  let at = -1;
  g.watch(() => { if (at < 0 && g.text().endsWith(PROMPT)) at = g.m.cpu.instructions(); });
  runUntil(g.m, () => at >= 0, 'shell prompt');
  const ms = Number(process.hrtime.bigint() - t0) / 1e6; // overshoot: at most one 20 000-instruction step
  return { ms, createMs: Number(t1 - t0) / 1e6, instructions: at };
}

async function workload(mode: 'nested' | 'shadow', cmdline: string, checker: boolean, kernel: Uint8Array) {
  const g = await machine(mode, cmdline, checker, kernel);
  runUntil(g.m, () => /\[1 \w+\] started/.test(g.text()), 'program start');
  const i0 = g.m.cpu.instructions();
  const t0 = process.hrtime.bigint(), u0 = process.cpuUsage();
  const r = g.m.run({ instructions: i0 + WORKLOAD_INSTRUCTIONS });
  const wall = Number(process.hrtime.bigint() - t0) / 1e9, u = process.cpuUsage(u0);
  if (r.stop !== 'timeout') throw new Error(`bench os: ${cmdline} stopped early (${r.stop})`);
  const n = r.instructions - i0;
  const c = g.m.counters();
  return { wall: n / wall, cpu: n / ((u.user + u.system) / 1e6), walksPer1000: (1000 * c.walks) / c.instructions, staleUses: c.staleUses };
}

export async function osBench(reps: number): Promise<Record<string, unknown>> {
  const kernel = new Uint8Array(readFileSync(KERNEL_PATH));
  const out: Record<string, unknown> = {};
  for (const mode of ['nested', 'shadow'] as const) {
    await bootToPrompt(mode, kernel); // warm-up: lets the engine tier the Wasm up
    const boots = [];
    for (let r = 0; r < reps; r++) boots.push(await bootToPrompt(mode, kernel));
    out[`${mode}BootToPrompt`] = {
      hostMs: Number(median(boots.map((b) => b.ms)).toFixed(1)),
      // of which creating the hypervisor, the VM and the Wasm core and loading the ELF
      hostMsCreate: Number(median(boots.map((b) => b.createMs)).toFixed(1)),
      guestInstructions: boots[0].instructions,
    };
  }
  const n = Math.max(1, Math.min(reps, 3)); // 10^8 instructions take seconds each
  for (const [name, cmdline] of Object.entries(WORKLOADS)) {
    for (const mode of ['nested', 'shadow'] as const) {
      const runs = [];
      for (let r = 0; r < n; r++) runs.push(await workload(mode, cmdline, false, kernel));
      out[`${name}${mode === 'nested' ? 'Nested' : 'Shadow'}`] = {
        cmdline, instructions: WORKLOAD_INSTRUCTIONS, coherenceChecker: false,
        guestInstrPerSec: Math.round(median(runs.map((x) => x.wall))), guestInstrPerCpuSec: Math.round(median(runs.map((x) => x.cpu))),
        walksPer1000Instructions: Number(runs[0].walksPer1000.toFixed(2)),
      };
    }
  }
  const on = await workload('nested', WORKLOADS.random, true, kernel);
  out.randomNestedChecker = {
    cmdline: WORKLOADS.random, instructions: WORKLOAD_INSTRUCTIONS, coherenceChecker: true,
    guestInstrPerSec: Math.round(on.wall), guestInstrPerCpuSec: Math.round(on.cpu), staleUses: on.staleUses,
  };
  return { guestOs: out };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  osBench(Number(process.env.BENCH_REPS ?? 3)).then((o) => console.log(JSON.stringify(o, null, 2)));
}
