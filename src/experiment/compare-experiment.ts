// The 'compare' scenario kind as a registered experiment: the same guest workloads run
// natively, under shadow paging and under EPT (compare.ts), with the report every other
// kind gets (result.json, CSV, plots). `memvisor compare` prints the same table.

import { z } from 'zod';
import { PATTERNS } from '../workload/patterns.js';
import { table } from '../report/table.js';
import { compare, DEFAULT_WORKLOADS, type CompareRow } from './compare.js';
import { defineExperiment } from './registry.js';
import type { ExperimentResult, Row } from '../report/result.js';

const pageSize = z.union([z.literal(4096), z.literal(2097152)]);

export const compareParams = z.object({
  /** Accesses per workload and mode (after one warm-up batch). */
  accesses: z.number().int().min(1).default(200_000),
  workloads: z.array(z.object({
    name: z.string().min(1),
    pattern: z.enum([...PATTERNS, 'pt-heavy']),
    workingSet: z.number().int().positive(),
    guestPage: pageSize,
    hostPage: pageSize,
  }).strict()).min(1).default(DEFAULT_WORKLOADS),
}).strict();

export const compareExperiment = defineExperiment({
  kind: 'compare',
  title: 'Native vs shadow paging vs nested paging (EPT)',
  description: 'The same guest workloads natively, under shadow paging and under EPT: TLB misses, walk references, exits and modeled cycles.',
  schema: compareParams,
  async run(p, ctx) {
    const rows = await compare(p.workloads, p.accesses, ctx.seed, (i, n, label) => ctx.progress(i / n, label));
    return compareOutput(rows, p.accesses, p.workloads.length);
  },
  formatSummary: (r: ExperimentResult) =>
    `native vs shadow paging vs nested paging (EPT); ${r.summary['accesses per run']} accesses per run, seed ${r.seed}\n\n` +
    compareTable(r.series.runs as unknown as CompareRow[]) + '\n\n' + COMPARE_NOTE,
});

/** The report of a comparison: the table's rows, misses per TLB level, exits by reason, and their plots. */
export function compareOutput(rows: CompareRow[], accesses: number, workloads: number) {
  const label = (r: CompareRow) => `${r.workload} / ${r.mode}`;
  const misses: Row[] = rows.flatMap((r) => [
    { run: label(r), workload: r.workload, mode: r.mode, level: 'L1 TLB', missesPer1000: r.l1MissesPer1000 },
    { run: label(r), workload: r.workload, mode: r.mode, level: 'L2 TLB (walks)', missesPer1000: r.tlbMissesPer1000 },
  ]);
  const exits: Row[] = rows.flatMap((r) => Object.entries(r.exitsByReason).map(([reason, per1000]) =>
    ({ run: label(r), workload: r.workload, mode: r.mode, reason, exitsPer1000: per1000 })));
  const walks: Row[] = rows.filter((r) => r.tlbMissesPer1000 > 0).map((r) => ({
    workload: r.workload, mode: r.mode, pages: `guest ${r.guestPage}, host ${r.hostPage === '-' ? 'none (native)' : r.hostPage}`,
    refsPerWalk: r.refsPerWalk,
  }));
  return {
    summary: { workloads, 'accesses per run': accesses },
    series: { runs: rows.map(({ exitsByReason: _e, ...r }): Row => ({ ...r })), misses, exits, walks },
    plots: [
      bars('cycles-per-access', 'Modeled cycles per access', 'runs', 'workload', 'cyclesPerAccess', 'cycles / access', 'mode', 'mode'),
      bars('misses-per-level', 'TLB misses per 1000 accesses, by level', 'misses', 'run', 'missesPer1000', 'misses / 1000 accesses', 'level', 'level'),
      bars('refs-per-walk', 'Memory references per page walk, by page-size mix (mean over workloads)', 'walks', 'pages', 'refsPerWalk', 'references / walk', 'mode', 'mode', 'mean'),
      { ...bars('exits-by-reason', 'Exits to the hypervisor per 1000 accesses, by reason', 'exits', 'run', 'exitsPer1000', 'exits / 1000 accesses', 'reason'),
        caption: 'Native runs make no exits; a run with none is left out.' },
    ],
    notes: [COMPARE_NOTE],
  };
}

/** Horizontal bars: one row per `y`, offset (side by side) by `offset` when given, coloured by `color`. */
function bars(id: string, title: string, data: string, y: string, x: string, xTitle: string, color: string, offset?: string, aggregate?: string) {
  return {
    id, title,
    vegaLite: {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      data: { name: data },
      width: 420,
      mark: 'bar',
      encoding: {
        y: { field: y, type: 'nominal', sort: null, title: null, axis: { labelLimit: 320 } },
        ...(offset ? { yOffset: { field: offset, type: 'nominal' } } : {}),
        x: { field: x, type: 'quantitative', title: xTitle, ...(aggregate ? { aggregate } : {}) },
        color: { field: color, type: 'nominal', title: color },
      },
    },
  };
}

export const COMPARE_NOTE = 'host page: the page size backing guest memory under EPT or shadow paging (2M host pages shorten' +
  '\nthe nested walk, so nested can match native); TLB misses = walks (L2 TLB misses); refs/walk counts guest and EPT references;' +
  '\nexits = shadow faults, CR3/INVLPG intercepts and EPT exits; cycles from the cost model.';

/** The table `memvisor compare` prints: one line per workload and mode. */
export function compareTable(rows: CompareRow[]): string {
  return table(
    ['workload', 'mode', 'host page', 'TLB misses/1k', 'refs/walk', 'exits/1k', 'cycles/access'],
    rows.map((r) => [r.workload, r.mode, r.hostPage, r.tlbMissesPer1000.toFixed(1), r.refsPerWalk.toFixed(2),
      r.exitsPer1000.toFixed(2), r.cyclesPerAccess.toFixed(1)]),
  );
}

