// Translation experiments: one address space mapped with a chosen page size, one
// access pattern, one vCPU; reports TLB and walk behaviour and modeled cycles.

import { Machine } from '../core/machine.js';
import { CR0, CR4, EFER, PAGE_4K, PAGE_2M, PAGE_1G, type PageSize } from '../core/bits.js';
import { FrameBump, PageTableBuilder } from '../core/pagetable.js';
import { fillBatch, offsets } from '../workload/patterns.js';
import type { TranslationRun, TranslationScenario } from '../scenario/schema.js';
import { fmtSize } from '../util/bytes.js';

const PAGE: Record<TranslationRun['pageSize'], PageSize> = { '4K': PAGE_4K, '2M': PAGE_2M, '1G': PAGE_1G };
const TABLES = 0x10_0000n;          // page-table frames: 1 MiB ..
const TABLES_END = 0x200_0000n;     // .. 32 MiB
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
}

/** Where a run's data goes: its first physical address and the bytes mapped from there. */
function layout(run: Pick<TranslationRun, 'pageSize' | 'workingSet'>) {
  const size = PAGE[run.pageSize];
  const ws = Math.ceil(run.workingSet / 8) * 8;
  const mapped = Math.ceil(ws / size) * size;
  // Data frames start after the tables, aligned to the page size (1 GiB pages map pa 0).
  const dataPa = size === PAGE_1G ? 0n : TABLES_END;
  return { size, ws, mapped, dataPa, needs: Number(dataPa) + mapped };
}

/**
 * Why a run cannot fit in `memory` bytes, or undefined: the one check both scenario
 * validation (so `validate` refuses it, naming the field) and runTranslation make.
 */
export function runMemoryProblem(run: Pick<TranslationRun, 'pageSize' | 'workingSet'>, memory: number): string | undefined {
  const { ws, needs, dataPa } = layout(run);
  if (needs <= memory) return undefined;
  const where = dataPa === 0n ? 'from physical address 0' : `after ${fmtSize(Number(dataPa))} of page tables`;
  return `a working set of ${fmtSize(ws)} in ${run.pageSize} pages needs ${fmtSize(needs)} of memory ` +
    `(${where}), but the scenario's memory is ${fmtSize(memory)}`;
}

export function runTranslation(m: Machine, sc: TranslationScenario, run: TranslationRun, i: number): TranslationResult {
  const { size, ws, mapped, dataPa } = layout(run);
  const problem = runMemoryProblem(run, m.memory.size);
  if (problem) throw new RangeError(`runs[${i}].workingSet: ${problem}`);
  m.memory.fill(TABLES, 0, Number(TABLES_END - TABLES));
  const pt = new PageTableBuilder(m.memory, new FrameBump(m.memory, TABLES, TABLES_END), run.levels);
  pt.mapRange(BigInt(VBASE), dataPa, mapped, size, { accessed: true });
  const cpu = m.createCpu({ tlb: run.tlb ? undefined : false, psc: run.psc });
  cpu.setRegisters({
    cr0: CR0.PG | CR0.WP, cr3: pt.root, cr4: CR4.PAE | (run.levels === 5 ? CR4.LA57 : 0n),
    efer: EFER.LME | EFER.NXE, cpl: 3,
  });
  const batch = scratchBatch(m);
  const spec = { pattern: run.pattern, base: VBASE, bytes: ws, stride: run.stride, writeRatio: run.writeRatio, seed: sc.seed + i };
  const gen = offsets(spec);
  let left = sc.accesses;
  let wall = 0;
  while (left > 0) {
    const n = Math.min(left, BATCH);
    fillBatch(batch, spec, n, gen);
    const t0 = performance.now();
    const r = cpu.execute(batch, 0, n);
    wall += performance.now() - t0;
    if (r.exit.reason !== 'end') throw new Error(`runs[${i}]: unexpected exit ${r.exit.reason} at op ${r.exit.index}`);
    left -= n;
  }
  const c = cpu.counters();
  const per1000 = (x: number) => (1000 * x) / c.accesses;
  return {
    label: run.label ?? `${run.pattern} ${fmtBytes(ws)} ${run.pageSize} ${run.levels}-level${run.psc ? '' : ' no-PSC'}`,
    pattern: run.pattern, workingSet: ws, pageSize: run.pageSize, levels: run.levels, psc: run.psc,
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
