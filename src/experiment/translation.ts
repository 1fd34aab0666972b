// Translation experiments: one address space mapped with a chosen page size, one
// access pattern, one vCPU; reports TLB and walk behaviour and modeled cycles.

import { Machine } from '../core/machine.js';
import { CR0, CR4, EFER } from '../core/bits.js';
import { FrameBump, PageTableBuilder } from '../core/pagetable.js';
import type { Cpu } from '../core/cpu.js';
import { fillBatch, offsets } from '../workload/patterns.js';
import { MAX_OPS_PER_RECORD, pushRecord, TraceCounter, type TraceCounts } from '../workload/lackey.js';
import { TraceReader } from '../workload/trace-file.js';
import type { TranslationRun, TranslationScenario } from '../scenario/schema.js';
import {
  patternLayout, runMemoryProblem, traceLayout, traceMemoryProblem, TABLES, TABLES_END,
} from '../scenario/translation-layout.js';
import { shownPath, traceScan } from '../scenario/trace-field.js';

export { runMemoryProblem };
const VBASE = 0x7f00_0000_0000;     // region va (1 GiB aligned)
const BATCH = 1 << 16;

export interface TranslationResult {
  label: string;
  pattern: string; workingSet: number; pageSize: string; levels: number; psc: boolean;
  accesses: number;
  l1MissesPer1000: number;
  walksPer1000: number;
  refsPerWalk: number;
  pscHitsPer1000: number;
  cyclesPerAccess: number;
  /** Host throughput of the simulation (not a modeled figure). */
  simAccessesPerSec: number;
  /** Trace runs: the file (as shown) and what was replayed (records by kind, distinct 4 KiB pages). */
  trace?: TraceCounts & { file: string };
}

export function runTranslation(m: Machine, sc: TranslationScenario, run: TranslationRun, i: number): TranslationResult {
  if (run.trace !== undefined) return runTrace(m, run, i, run.trace);
  const { size, ws, mapped, dataPa } = patternLayout({ pageSize: run.pageSize, workingSet: run.workingSet! });
  const problem = runMemoryProblem({ pageSize: run.pageSize, workingSet: ws }, m.memory.size);
  if (problem) throw new RangeError(`runs[${i}].workingSet: ${problem}`);
  const pt = freshTables(m, run);
  pt.mapRange(BigInt(VBASE), dataPa, mapped, size, { accessed: true });
  const cpu = startCpu(m, run, pt);
  const batch = scratchBatch(m);
  const spec = { pattern: run.pattern!, base: VBASE, bytes: ws, stride: run.stride, writeRatio: run.writeRatio, seed: sc.seed + i };
  const gen = offsets(spec);
  let left = sc.accesses;
  let wall = 0;
  while (left > 0) {
    const n = Math.min(left, BATCH);
    fillBatch(batch, spec, n, gen);
    wall += execute(cpu, batch, n, i);
    left -= n;
  }
  const label = run.label ?? `${run.pattern} ${fmtBytes(ws)} ${run.pageSize} ${run.levels}-level${run.psc ? '' : ' no-PSC'}`;
  return resultOf(cpu, run, label, run.pattern!, ws, wall);
}

/**
 * A trace run: the trace streamed once; each distinct page (of the run's page size) is mapped
 * at its own address on first touch, before the batch that touches it executes.
 */
function runTrace(m: Machine, run: TranslationRun, i: number, file: string): TranslationResult {
  const scan = traceScan(file);
  const problem = traceMemoryProblem(run.pageSize, run.levels, scan, m.memory.size);
  if (problem) throw new RangeError(`runs[${i}].trace: ${problem}`);
  const { size, dataPa } = traceLayout(run.pageSize, scan);
  const pt = freshTables(m, run);
  const cpu = startCpu(m, run, pt);
  const batch = scratchBatch(m);
  const mapped = new Set<number>();
  let next = dataPa;
  const mapPages = (va: number, bytes: number) => {
    for (let p = Math.floor(va / size); p <= Math.floor((va + bytes - 1) / size); p++) {
      if (mapped.has(p)) continue;
      mapped.add(p);
      pt.mapRange(BigInt(p) * BigInt(size), next, size, size, { accessed: true });
      next += BigInt(size);
    }
  };
  const counter = new TraceCounter();
  const reader = new TraceReader(file, { name: shownPath(file) });
  let wall = 0, seq = 0;
  try {
    for (let done = false; !done;) {
      batch.clear();
      let n = 0;
      while (n <= BATCH - MAX_OPS_PER_RECORD) {
        const r = reader.next();
        if (r === null) { done = true; break; }
        mapPages(r.addr, r.size);
        counter.add(r);
        n += pushRecord(batch, r.kind, r.addr, r.size, seq++);
      }
      if (n > 0) wall += execute(cpu, batch, n, i);
    }
  } finally { reader.close(); }
  const counts = counter.counts();
  const label = run.label ?? `trace ${shownPath(file).split('/').pop()} ${run.pageSize} ${run.levels}-level${run.psc ? '' : ' no-PSC'}`;
  return { ...resultOf(cpu, run, label, 'trace', counts.pages * 4096, wall), trace: { ...counts, file: shownPath(file) } };
}

function freshTables(m: Machine, run: TranslationRun): PageTableBuilder {
  m.memory.fill(TABLES, 0, Number(TABLES_END - TABLES));
  return new PageTableBuilder(m.memory, new FrameBump(m.memory, TABLES, TABLES_END), run.levels);
}

function startCpu(m: Machine, run: TranslationRun, pt: PageTableBuilder): Cpu {
  const cpu = m.createCpu({ tlb: run.tlb ? undefined : false, psc: run.psc });
  cpu.setRegisters({
    cr0: CR0.PG | CR0.WP, cr3: pt.root, cr4: CR4.PAE | (run.levels === 5 ? CR4.LA57 : 0n),
    efer: EFER.LME | EFER.NXE, cpl: 3,
  });
  return cpu;
}

/** Runs the first n ops of the batch; returns the host milliseconds it took. */
function execute(cpu: Cpu, batch: ReturnType<Machine['createBatch']>, n: number, i: number): number {
  const t0 = performance.now();
  const r = cpu.execute(batch, 0, n);
  const ms = performance.now() - t0;
  if (r.exit.reason !== 'end') throw new Error(`runs[${i}]: unexpected exit ${r.exit.reason} at op ${r.exit.index}`);
  return ms;
}

function resultOf(cpu: Cpu, run: TranslationRun, label: string, pattern: string, ws: number, wall: number): TranslationResult {
  const c = cpu.counters();
  const per1000 = (x: number) => (1000 * x) / c.accesses;
  return {
    label,
    pattern, workingSet: ws, pageSize: run.pageSize, levels: run.levels, psc: run.psc,
    accesses: c.accesses,
    l1MissesPer1000: per1000(c.l1Miss),
    walksPer1000: per1000(c.walks),
    refsPerWalk: c.walks ? c.walkRefs / c.walks : 0,
    pscHitsPer1000: per1000(c.pscHitPde + c.pscHitPdpte + c.pscHitPml4e + c.pscHitPml5e),
    cyclesPerAccess: c.cycles / c.accesses,
    simAccessesPerSec: wall > 0 ? (c.accesses / wall) * 1000 : 0,
  };
}

// Batches are never freed by the core, so one per machine is reused across runs.
const batches = new WeakMap<Machine, ReturnType<Machine['createBatch']>>();
function scratchBatch(m: Machine) {
  let b = batches.get(m);
  if (!b) { b = m.createBatch(BATCH); batches.set(m, b); }
  return b;
}

export function fmtBytes(n: number): string {
  for (const [u, s] of [[2 ** 30, 'GiB'], [2 ** 20, 'MiB'], [2 ** 10, 'KiB']] as const) {
    if (n >= u && n % u === 0) return `${n / u} ${s}`;
  }
  return `${n} B`;
}
