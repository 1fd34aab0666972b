// Where a translation run puts its page tables and data in the machine's memory, and the
// checks that it fits: one definition used by scenario validation (so `validate` and
// parseScenario refuse what `run` would, naming the field, sizes in MiB/GiB) and by the run.
//
//   physical memory:  0 ── 1 MiB ── page tables ── 32 MiB ── data (pattern runs) ──
//   pattern runs map `workingSet` bytes from one 1 GiB-aligned virtual address; with 1 GiB
//   pages their data starts at physical 0 (overlapping the tables, as before);
//   trace runs map each distinct page the trace touches, in order of first touch, from
//   32 MiB aligned to the page size (1 GiB pages: from 1 GiB).

import { z } from 'zod';
import { PAGE_4K, PAGE_2M, PAGE_1G, type PageSize } from '../core/bits.js';
import { memoryProblem } from '../core/machine.js';
import { fmtSize } from '../util/bytes.js';
import type { TraceScan } from '../workload/trace-file.js';

export type PageSizeName = '4K' | '2M' | '1G';
export const PAGE_BYTES: Record<PageSizeName, PageSize> = { '4K': PAGE_4K, '2M': PAGE_2M, '1G': PAGE_1G };
export const TABLES = 0x10_0000n;          // page-table frames: 1 MiB ..
export const TABLES_END = 0x200_0000n;     // .. 32 MiB
/** Page-table frames the table area holds. */
export const TABLE_FRAMES = Number(TABLES_END - TABLES) / 4096;

export interface PatternRunShape { pageSize: PageSizeName; workingSet?: number; levels?: number }
export interface Layout { size: PageSize; ws: number; mapped: number; dataPa: bigint; needs: number }

/** A pattern run's layout: its data from 32 MiB (1 GiB pages: from 0), `workingSet` rounded to 8 bytes. */
export function patternLayout(run: { pageSize: PageSizeName; workingSet: number }): Layout {
  const size = PAGE_BYTES[run.pageSize];
  const ws = Math.ceil(run.workingSet / 8) * 8;
  const mapped = Math.ceil(ws / size) * size;
  const dataPa = size === PAGE_1G ? 0n : TABLES_END;
  return { size, ws, mapped, dataPa, needs: Number(dataPa) + mapped };
}

/** A trace run's layout: one data page per distinct page of the trace, from 32 MiB aligned up to the page size. */
export function traceLayout(pageSize: PageSizeName, scan: Pick<TraceScan, 'pages' | 'pages2M' | 'pages1G'>): Layout {
  const size = PAGE_BYTES[pageSize];
  const pages = pageSize === '4K' ? scan.pages : pageSize === '2M' ? scan.pages2M : scan.pages1G;
  const dataPa = BigInt(Math.ceil(Number(TABLES_END) / size) * size);
  const mapped = pages * size;
  return { size, ws: scan.pages * 4096, mapped, dataPa, needs: Number(dataPa) + mapped };
}

/**
 * Why a pattern run cannot fit in `memory` bytes, or undefined (the message names no field;
 * the caller puts it on runs[i].workingSet).
 */
export function runMemoryProblem(run: { pageSize: PageSizeName; workingSet: number }, memory: number): string | undefined {
  const { ws, needs, dataPa } = patternLayout(run);
  if (needs <= memory) return undefined;
  const where = dataPa === 0n ? 'from physical address 0' : `after ${fmtSize(Number(dataPa))} of page tables`;
  return `a working set of ${fmtSize(ws)} in ${run.pageSize} pages needs ${fmtSize(needs)} of memory ` +
    `(${where}), but the scenario's memory is ${fmtSize(memory)}`;
}

/** Why a trace run cannot fit in `memory` bytes, or undefined. */
export function traceMemoryProblem(pageSize: PageSizeName, levels: number, scan: TraceScan, memory: number): string | undefined {
  const l = traceLayout(pageSize, scan);
  const pages = l.mapped / l.size;
  if (l.needs > memory) {
    return `the trace touches ${pages} distinct ${pageSize} page${pages === 1 ? '' : 's'} (${fmtSize(l.mapped)}), which need ` +
      `${fmtSize(l.needs)} of memory (data from ${fmtSize(Number(l.dataPa))}), but the scenario's memory is ${fmtSize(memory)}`;
  }
  const tables = (levels - 1) * scan.pages + 1; // at most one table per level per 4 KiB page, plus the root
  if (tables > TABLE_FRAMES) {
    return `the trace's ${scan.pages} pages may need ${tables} page-table pages, more than the table area holds (${TABLE_FRAMES})`;
  }
  return undefined;
}

export interface TranslationShape {
  memory: number;
  runs: readonly { pageSize: PageSizeName; levels: number; workingSet?: number; pattern?: string; trace?: string; writeRatio: number; stride?: number }[];
}

/**
 * Every check a translation run makes before it starts, as zod issues on the field at fault:
 * the memory size (what Machine.create accepts), then per run a page larger than memory, and
 * a working set or trace that does not fit.
 */
export function translationIssues(p: TranslationShape, ctx: z.RefinementCtx, scanOf: (file: unknown) => TraceScan | undefined): void {
  const memory = memoryProblem(p.memory);
  if (memory) { ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['memory'], message: memory.replace(/^memoryBytes /, '') }); return; }
  p.runs.forEach((r, i) => {
    const size = PAGE_BYTES[r.pageSize];
    if (size > p.memory) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['runs', i, 'pageSize'],
        message: `a ${fmtSize(size)} page is larger than the scenario's memory (${fmtSize(p.memory)})` });
      return;
    }
    if (r.trace !== undefined) {
      const scan = scanOf(r.trace);
      const problem = scan && traceMemoryProblem(r.pageSize, r.levels, scan, p.memory);
      if (problem) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['runs', i, 'trace'], message: problem });
    } else if (r.workingSet !== undefined) {
      const problem = runMemoryProblem({ pageSize: r.pageSize, workingSet: r.workingSet }, p.memory);
      if (problem) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['runs', i, 'workingSet'], message: problem });
    }
  });
}
