// `memvisor boot [kernel.elf]`: boots a machine-code kernel (the shipped OS by default) on
// the OsMachine board, streams its serial console to stdout, stops at power-off, timeout or
// triple fault, then prints the counters; with --out it writes result.json and an HTML
// report through the report writer.
//
//   memvisor boot [kernel.elf] [--mode native|shadow|nested] [--memory 64MiB]
//                 [--cmdline "..."] [--out DIR] [--timeout 10s | --timeout 1e9]

import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Hypervisor } from '../hypervisor/monitor/hypervisor.js';
import type { VmMode } from '../hypervisor/monitor/types.js';
import { OsMachine, type Budget, type OsRunResult } from '../board/os-machine.js';
import { interpretingCpu } from '../board/cpu-adapter.js';
import { checkReplaceable, writeReport } from '../report/write.js';
import type { ExperimentResult, Row } from '../report/result.js';
import { table } from '../report/table.js';

export const SHIPPED_OS_DIR = fileURLToPath(new URL('../../guests/os/bin/', import.meta.url));
const MODES: VmMode[] = ['native', 'shadow', 'nested'];
const UNITS: Record<string, number> = { '': 1, b: 1, kib: 2 ** 10, k: 2 ** 10, mib: 2 ** 20, m: 2 ** 20, gib: 2 ** 30, g: 2 ** 30 };

export interface BootCliOptions {
  mode?: string; memory?: string; cmdline?: string; out?: string; timeout?: string; quiet?: boolean;
  /** Host balloon target from the start (a size, e.g. 16MiB). */
  balloonTarget?: string;
  /** Instruction cap besides --timeout (default 2e9, a few minutes of wall time). */
  maxInstructions?: string;
  /** false: no coherence checker (about twice as fast; stale uses are then not reported). */
  checker?: boolean;
  /** Bytes queued on the UART's input (a shell script; "\n" separates lines). */
  input?: string;
}

/** "64MiB", "1GiB", "65536" → bytes (a multiple of 4 KiB). */
export function parseMemory(s: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(s);
  const unit = m ? UNITS[m[2].toLowerCase()] : undefined;
  if (!m || unit === undefined) throw new Error(`--memory ${s}: expected a size such as 64MiB or 1GiB`);
  const bytes = Number(m[1]) * unit;
  if (!Number.isInteger(bytes) || bytes <= 0 || bytes % 4096 !== 0) throw new Error(`--memory ${s}: must be a positive multiple of 4 KiB`);
  return bytes;
}

/** "10s" → 10 virtual seconds; "1e9" → 10⁹ instructions. */
export function parseTimeout(s: string): Budget {
  const sec = /^\s*(\d+(?:\.\d+)?)\s*s\s*$/.exec(s);
  if (sec) return { seconds: Number(sec[1]) };
  const n = Number(s);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--timeout ${s}: expected virtual seconds (10s) or an instruction count (1e9)`);
  return { instructions: Math.round(n) };
}

/** The shipped OS: guests/os/bin/kernel.elf, or the only ELF there. */
export function shippedKernel(dir = SHIPPED_OS_DIR): string {
  const elves = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.elf')).sort() : [];
  const pick = elves.includes('kernel.elf') ? 'kernel.elf' : elves.length === 1 ? elves[0] : null;
  if (!pick) {
    throw new Error(elves.length ? `several kernels in ${dir} (${elves.join(', ')}): name one` :
      `no shipped OS found in ${dir}: pass a kernel ELF (memvisor boot path/to/kernel.elf)`);
  }
  return join(dir, pick);
}

export async function bootCommand(kernelArg: string | undefined, o: BootCliOptions): Promise<OsRunResult> {
  const mode = (o.mode ?? 'nested') as VmMode;
  if (!MODES.includes(mode)) throw new Error(`--mode ${o.mode}: expected one of ${MODES.join(', ')}`);
  const memoryBytes = parseMemory(o.memory ?? '64MiB');
  const cap = Number(o.maxInstructions ?? '2e9');
  if (!(cap > 0) || !Number.isFinite(cap)) throw new Error(`--max-instructions ${o.maxInstructions}: expected a count such as 1e9`);
  const budget = { instructions: Math.round(cap), ...parseTimeout(o.timeout ?? '60s') };
  if (o.balloonTarget && mode === 'native') {
    throw new Error('--balloon-target needs nested or shadow paging: a native guest addresses host memory directly, so nothing can take pages from it');
  }
  const path = resolve(kernelArg ?? shippedKernel());
  let kernel: Uint8Array;
  try { kernel = new Uint8Array(readFileSync(path)); } catch (e) { throw new Error(`cannot read kernel ${path}: ${(e as Error).message}`); }
  if (o.out) checkReplaceable(resolve(o.out));
  const hv = await Hypervisor.create({ hostMemoryBytes: memoryBytes + Math.max(32 * 2 ** 20, memoryBytes / 4) });
  const m = new OsMachine({
    hv, kernel, memoryBytes, mode, cpu: interpretingCpu, coherenceChecker: o.checker ?? true,
    load: { cmdline: o.cmdline ?? '', path: '/boot/' + basename(path) },
    console: (b) => process.stdout.write(Uint8Array.of(b)),
  });
  if (o.balloonTarget) m.balloon.setTarget(parseMemory(o.balloonTarget) / 4096);
  if (o.input) m.uart.pushInput(o.input.replace(/\\n/g, '\n'));
  const t0 = performance.now();
  const { result: r, timeline } = runSampled(m, budget);
  const wall = (performance.now() - t0) / 1000;
  if (!o.quiet) printSummary(m, r, wall);
  if (o.out) {
    const w = await writeReport(o.out, bootResult(m, r, { kernel: path, mode, memoryBytes, cmdline: o.cmdline ?? '', wall }, timeline));
    if (!o.quiet) console.log(`wrote ${w.index}`);
  }
  if (r.stop === 'power-off') process.exitCode = r.status ?? 0;
  else process.exitCode = r.stop === 'timeout' ? 124 : 1;
  return r;
}

const MiB = 2 ** 20;
/** Virtual seconds between timeline samples. */
export const SAMPLE_SECONDS = 0.01;

/** Runs the guest to its end, sampling balloon, memory and progress every SAMPLE_SECONDS of virtual time. */
export function runSampled(m: OsMachine, budget: Budget): { result: OsRunResult; timeline: Row[] } {
  const timeline: Row[] = [];
  const end = budget.seconds ?? Infinity;
  let r: OsRunResult;
  for (let t = SAMPLE_SECONDS; ; t += SAMPLE_SECONDS) {
    r = m.run({ instructions: budget.instructions, seconds: Math.min(t, end) });
    timeline.push(sample(m, r));
    if (r.stop !== 'timeout' || t >= end || (budget.instructions !== undefined && r.instructions >= budget.instructions)) break;
  }
  return { result: r, timeline };
}

function sample(m: OsMachine, r: OsRunResult): Row {
  const c = m.counters();
  return {
    seconds: Number(r.seconds.toFixed(6)), instructions: r.instructions,
    balloonMiB: m.balloon.size * 4096 / MiB, targetMiB: m.balloon.target * 4096 / MiB,
    hostMiB: Number((m.hostFrames * 4096 / MiB).toFixed(3)), vmExits: c.vmExits ?? 0, walks: c.walks ?? 0,
  };
}

function printSummary(m: OsMachine, r: OsRunResult, wall: number): void {
  const c = m.counters();
  console.log(`\n--- memvisor: ${describeStop(r)} after ${r.instructions} instructions, ${r.seconds.toFixed(3)} s virtual ` +
    `(${(r.instructions / 1e6 / Math.max(wall, 1e-9)).toFixed(1)} MIPS, ${wall.toFixed(2)} s wall)`);
  if (r.dump) console.log(table(['register', 'value'], Object.entries(r.dump)));
  console.log(table(['counter', 'value'], headline(c, m.coherenceChecker).map(([k, v]) => [k, String(v)])));
  const exits = Object.entries(c).filter(([k]) => k.startsWith('exit_')).map(([k, v]) => `${k.slice(5)} ${v}`);
  console.log(`exits: ${exits.join(', ') || 'none'}`);
  const b = m.balloonStats.snapshot();
  console.log(`balloon: target ${b.target} frames, size ${b.size}, inflated ${b.inflated}, deflated ${b.deflated}, ` +
    `refused ${b.refused}, resets ${b.resets}, violations ${b.violations}, commands ${b.commands}, doorbell rings ${c.doorbellRings}`);
}

/** The figures the summary shows (every counter is in the --out report). */
export function headline(c: Record<string, number>, checker = true): [string, number][] {
  const pick: [string, number | undefined][] = [
    ['instructions', c.instructions], ['modeled cycles', c.cycles], ['VM exits', c.vmExits],
    ['TLB misses (walks)', c.walks], ['walk references', c.walkRefs], ['  of them EPT references', c.eptRefs],
    ['page faults', (c.pfNotPresent ?? 0) + (c.pfProtection ?? 0) + (c.pfReserved ?? 0) + (c.pfProtectionKey ?? 0)],
    ['pages backed', c.pagesBacked], ['coherence checker: stale uses', checker ? c.staleUses : undefined],
    ['console bytes', c.consoleBytes], ['backdoor calls', c.backdoorCalls], ['balloon touches', c.balloonTouches],
  ];
  return pick.filter((p): p is [string, number] => p[1] !== undefined);
}

export function describeStop(r: OsRunResult): string {
  switch (r.stop) {
    case 'power-off': return `powered off (${r.powerOff!.via}, status ${r.status})`;
    case 'timeout': return 'timeout';
    case 'triple-fault': return 'TRIPLE FAULT';
    default: return `${r.stop}${r.message ? ': ' + r.message : ''}`;
  }
}

/** The run as an ExperimentResult for the report writer. */
export function bootResult(m: OsMachine, r: OsRunResult, a: { kernel: string; mode: string; memoryBytes: number; cmdline: string; wall: number },
  timeline: Row[] = []): ExperimentResult {
  const c = m.counters();
  const exits: Row[] = Object.entries(m.exits).map(([reason, count]) => ({ reason, count }));
  const b = m.balloonStats.snapshot();
  const console = m.uart.text();
  return {
    scenario: 'boot', title: `boot ${basename(a.kernel)} (${a.mode})`, seed: 0,
    description: `Booted ${a.kernel} under ${a.mode} paging with ${a.memoryBytes / 2 ** 20} MiB; stop: ${describeStop(r)}.`,
    summary: {
      stop: r.stop, status: r.status ?? -1, instructions: r.instructions, virtualSeconds: r.seconds,
      wallSeconds: Number(a.wall.toFixed(3)), mode: a.mode, memoryMiB: a.memoryBytes / 2 ** 20,
      balloonTarget: b.target, balloonSize: b.size, balloonViolations: b.violations,
      ...Object.fromEntries(Object.entries(c).filter(([, v]) => Number.isFinite(v))),
    },
    series: {
      exits, ...(timeline.length ? { timeline } : {}), counters: Object.entries(c).filter(([, v]) => Number.isFinite(v)).map(([counter, value]) => ({ counter, value })),
      balloon: [{ target: b.target, size: b.size, inflated: b.inflated, deflated: b.deflated, refused: b.refused,
        violations: b.violations, resets: b.resets, commands: b.commands }],
      ...(r.dump ? { dump: Object.entries(r.dump).map(([register, value]) => ({ register, value })) } : {}),
    },
    plots: [
      ...(exits.length ? [{
        id: 'exits', title: 'VM exits by reason',
        vegaLite: { data: { name: 'exits' }, mark: 'bar', encoding: { x: { field: 'reason', type: 'nominal' }, y: { field: 'count', type: 'quantitative' } } },
      }] : []),
      ...(timeline.length > 1 ? [{
        id: 'balloon', title: 'Balloon size and target, host memory the guest holds (MiB), over virtual time',
        vegaLite: {
          data: { name: 'timeline' }, transform: [{ fold: ['balloonMiB', 'targetMiB', 'hostMiB'], as: ['series', 'MiB'] }],
          mark: 'line', encoding: { x: { field: 'seconds', type: 'quantitative', title: 'virtual seconds' },
            y: { field: 'MiB', type: 'quantitative' }, color: { field: 'series', type: 'nominal' } },
        },
      }] : []),
    ],
    notes: [`command line: ${JSON.stringify(a.cmdline)}`, 'console output:', ...console.split('\n').slice(0, 400)],
    config: { kernel: a.kernel, mode: a.mode, memoryBytes: a.memoryBytes, cmdline: a.cmdline },
  };
}
