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
  accesses: z.number().int().min(0).default(200_000),
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
    return {
      summary: { workloads: p.workloads.length, 'accesses per run': p.accesses },
      series: { runs: rows.map((r): Row => ({ ...r })) },
      plots: [{
        id: 'cycles-per-access', title: 'Modeled cycles per access',
        vegaLite: {
          $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
          data: { name: 'runs' },
          width: 420,
          mark: 'bar',
          encoding: {
            y: { field: 'workload', type: 'nominal', sort: null, title: null, axis: { labelLimit: 320 } },
            yOffset: { field: 'mode', type: 'nominal' },
            x: { field: 'cyclesPerAccess', type: 'quantitative', title: 'cycles / access' },
            color: { field: 'mode', type: 'nominal', title: 'mode' },
          },
        },
      }],
      notes: [COMPARE_NOTE],
    };
  },
  formatSummary: (r: ExperimentResult) =>
    `native vs shadow paging vs nested paging (EPT); ${r.summary['accesses per run']} accesses per run, seed ${r.seed}\n\n` +
    compareTable(r.series.runs as unknown as CompareRow[]) + '\n\n' + COMPARE_NOTE,
});

export const COMPARE_NOTE = 'TLB misses = walks (L2 TLB misses); refs/walk counts guest and EPT references;' +
  '\nexits = shadow faults, CR3/INVLPG intercepts and EPT exits; cycles from the cost model.';

/** The table `memvisor compare` prints: one line per workload and mode. */
export function compareTable(rows: CompareRow[]): string {
  return table(
    ['workload', 'mode', 'TLB misses/1k', 'refs/walk', 'exits/1k', 'cycles/access'],
    rows.map((r) => [r.workload, r.mode, r.tlbMissesPer1000.toFixed(1), r.refsPerWalk.toFixed(2),
      r.exitsPer1000.toFixed(2), r.cyclesPerAccess.toFixed(1)]),
  );
}

