// The 'translation' scenario kind as a registered experiment: the runs of
// src/experiment/translation.ts (TLB reach, walk lengths, PSC effect) with a report.
// The parameter schema is the translation scenario minus its header fields, so scenario
// files and `parseScenario` keep accepting exactly what they did before.
// simAccessesPerSec is host wall-clock throughput, the one column that varies between runs.

import { Machine } from '../core/machine.js';
import { runTranslation, type TranslationResult } from './translation.js';
import { translationChecks, translationFields, type TranslationScenario } from '../scenario/schema.js';
import { table } from '../report/table.js';
import { defineExperiment } from './registry.js';
import type { ExperimentResult, Row } from '../report/result.js';

export const translationParams = translationFields.omit({ $schema: true, kind: true, name: true, description: true, seed: true });

/** The parameters plus every check a run makes, so `validate` refuses what `run` would. */
export const translationChecked = translationParams.superRefine(translationChecks);

export const translationExperiment = defineExperiment({
  kind: 'translation',
  title: 'Address translation: TLB reach and page-walk cost',
  description: 'One address space mapped with a chosen page size, one access pattern per run; TLB misses, walk references and modeled cycles.',
  schema: translationChecked,
  async run(params, ctx) {
    const sc: TranslationScenario = { kind: 'translation', name: ctx.name, description: ctx.description, seed: ctx.seed, ...params };
    const m = await Machine.create({ memoryBytes: sc.memory });
    const results: TranslationResult[] = [];
    for (const [i, r] of sc.runs.entries()) {
      ctx.progress(i / sc.runs.length, `${r.trace !== undefined ? 'trace' : r.pattern} ${r.pageSize}`);
      results.push(runTranslation(m, sc, r, i));
    }
    return {
      summary: { runs: results.length, 'accesses per run': sc.accesses, 'memory (bytes)': sc.memory, ...perRunFigures(results), ...traceSummary(results) },
      series: { runs: results.map(toRow) },
      plots: [
        barPlot('cycles-per-access', 'Modeled cycles per access', 'cyclesPerAccess', 'cycles / access'),
        barPlot('walks-per-1000', 'Page walks (L2 TLB misses) per 1000 accesses', 'walksPer1000', 'walks / 1000 accesses'),
      ],
      notes: ['simAccessesPerSec in runs.csv is host wall-clock throughput of the simulation, not a modeled figure.'],
    };
  },
  formatSummary: consoleTable,
});

/**
 * Each run's modeled cycles per access and walks per 1000 accesses as summary figures, so a
 * sweep's summary (mean and interval over seeds) has them. Named by position (`runs[2]: …`),
 * not label, so the names stay the same when a sweep varies what the label shows.
 */
function perRunFigures(results: readonly TranslationResult[]): Record<string, number> {
  const out: Record<string, number> = {};
  results.forEach((r, i) => {
    const name = results.length === 1 ? '' : `runs[${i}]: `;
    out[`${name}cycles/access`] = r.cyclesPerAccess;
    out[`${name}walks/1000`] = r.walksPer1000;
  });
  return out;
}

function toRow(r: TranslationResult): Row {
  const { trace, ...rest } = r;
  return { ...rest, psc: String(r.psc), ...(trace ? { traceFile: trace.file, traceRecords: trace.accesses, traceFetches: trace.I,
    traceLoads: trace.L, traceStores: trace.S, traceModifies: trace.M, tracePages: trace.pages } : {}) };
}

/** Per trace run: records by kind and distinct 4 KiB pages replayed. */
function traceSummary(results: TranslationResult[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const r of results) {
    if (r.trace) out[`${r.label}: trace I / L / S / M, pages`] = `${r.trace.I} / ${r.trace.L} / ${r.trace.S} / ${r.trace.M}, ${r.trace.pages}`;
  }
  return out;
}

function barPlot(id: string, title: string, field: keyof TranslationResult, axis: string) {
  return {
    id, title,
    vegaLite: {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      data: { name: 'runs' },
      width: 420,
      mark: 'bar',
      encoding: {
        y: { field: 'label', type: 'nominal', sort: null, title: null, axis: { labelLimit: 320 } },
        x: { field, type: 'quantitative', title: axis },
        color: { field: 'pageSize', type: 'nominal', title: 'page size' },
        tooltip: [{ field: 'label' }, { field, type: 'quantitative', format: '.2f' }],
      },
    },
  };
}

/** The table `memvisor run` has always printed for translation scenarios. */
function consoleTable(r: ExperimentResult): string {
  const rows = r.series.runs;
  const n = (v: unknown, d: number) => Number(v).toFixed(d);
  const traces = rows.filter((x) => x.pattern === 'trace').length;
  const perRun = traces === rows.length ? 'each trace replayed once'
    : `${r.summary['accesses per run']} accesses per pattern run${traces ? ', each trace replayed once' : ''}`;
  return `${r.scenario}: ${r.description ?? ''}\nseed ${r.seed}, ${perRun}\n\n` + table(
    ['run', 'L1 miss/1k', 'walks/1k', 'refs/walk', 'PSC hits/1k', 'cycles/access', 'sim M acc/s'],
    rows.map((x) => [String(x.label), n(x.l1MissesPer1000, 1), n(x.walksPer1000, 1), n(x.refsPerWalk, 2),
      n(x.pscHitsPer1000, 1), n(x.cyclesPerAccess, 2), n(Number(x.simAccessesPerSec) / 1e6, 1)]),
  );
}
