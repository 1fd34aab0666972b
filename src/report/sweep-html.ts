// The files of a sweep's summary (beside the runs/ folder of per-run reports):
//   sweep.json   the SweepDoc (points, runs, statistics): what `memvisor merge` reads back
//   points.csv   one row per point and metric: n, mean, sd, ciLow, ciHigh
//   runs.csv     one row per run: the numeric summary figures
//   metric-<i>.svg  the mean of one figure per point with its 95 % interval as error bars
//   index.html   the table of means ± half-widths, the plots, links to each run's report

import { toCsv } from './csv.js';
import { escapeHtml } from './html.js';
import type { Plot, Row } from './result.js';
import type { RenderOptions } from './render.js';
import { INTERVAL_NOTE, meanCiText, pointRows, runRows, sweepMetrics, variedMetrics, type SweepDoc } from './sweep.js';

/** Plots drawn at most (the table and CSVs hold every figure). */
const MAX_PLOTS = 24;

const CSS = `
body { font: 15px/1.45 system-ui, sans-serif; color: #222; max-width: 1400px; margin: 2em auto; padding: 0 1em; }
h1 { margin-bottom: 0.2em; } .meta { color: #666; margin-top: 0; }
.wide { overflow-x: auto; }
table.points { border-collapse: collapse; margin: 1em 0; }
table.points th, table.points td { border-bottom: 1px solid #ddd; padding: 0.25em 0.7em; text-align: left; white-space: nowrap; }
table.points td.num { text-align: right; font-variant-numeric: tabular-nums; }
section.plot { margin: 2em 0; } section.plot svg { max-width: 100%; height: auto; }
pre { background: #f4f4f4; padding: 0.8em; overflow-x: auto; }
`.trim();

/** Every summary file of the sweep, by name, in a fixed order. */
export async function renderSweepFiles(doc: SweepDoc, opts: RenderOptions = {}): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  files.set('sweep.json', JSON.stringify(doc, null, 2) + '\n');
  const points = pointRows(doc);
  files.set('points.csv', toCsv(points));
  files.set('runs.csv', toCsv(runRows(doc)));
  // The plots read a copy whose x column has a plain name: vega-lite reads "vms[0].shares" as a nested field.
  const paths = Object.keys(doc.points[0]?.params ?? {});
  const series: Record<string, Row[]> = { plot: points.map((r) => (paths.length === 1 ? { ...r, x: r[paths[0]] } : r)) };
  const { renderPlotSvg } = await import('./render.js');
  const svgs = new Map<string, string>();
  for (const plot of sweepPlots(doc)) {
    const svg = await renderPlotSvg(plot, series, opts);
    svgs.set(plot.title, svg);
    files.set(`${plot.id}.svg`, svg.endsWith('\n') ? svg : svg + '\n');
  }
  files.set('index.html', sweepHtml(doc, svgs));
  return files;
}

/** One plot per metric: mean per point, 95 % interval as error bars. */
export function sweepPlots(doc: SweepDoc): Plot[] {
  const paths = Object.keys(doc.points[0]?.params ?? {});
  const numericX = paths.length === 1 && doc.points.every((p) => typeof p.params[paths[0]] === 'number');
  const x = numericX
    ? { field: 'x', type: 'quantitative', title: paths[0], scale: { zero: false } }
    : { field: 'point', type: 'nominal', title: paths.length ? 'point (its values: the table above)' : null, sort: null, axis: { labelAngle: 0 } };
  return variedMetrics(doc).slice(0, MAX_PLOTS).map((metric, i) => ({
    id: `metric-${i}`,
    title: metric,
    vegaLite: {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      data: { name: 'plot' },
      transform: [{ filter: { field: 'metric', equal: metric } }],
      width: 360,
      encoding: { x },
      layer: [
        { mark: numericX ? { type: 'line', point: true } : { type: 'point', filled: true },
          encoding: { y: { field: 'mean', type: 'quantitative', title: `${metric} (mean, 95 % interval)`, scale: { zero: false } } } },
        { mark: { type: 'errorbar', ticks: { size: 8 } }, encoding: { y: { field: 'ciLow', type: 'quantitative', title: `${metric} (mean, 95 % interval)` }, y2: { field: 'ciHigh' } } },
      ],
    },
  }));
}

function sweepHtml(doc: SweepDoc, svgs: Map<string, string>): string {
  const e = escapeHtml;
  const runs = doc.points.reduce((n, p) => n + p.runs.length, 0);
  const parts = [
    '<!DOCTYPE html>', '<html lang="en">', '<head>', '<meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>Sweep: ${e(doc.title)} — ${e(doc.scenario)}</title>`,
    `<style>\n${CSS}\n</style>`, '</head>', '<body>',
    `<h1>Sweep: ${e(doc.title)}</h1>`,
    `<p class="meta">scenario <code>${e(doc.scenario)}</code>, ${doc.points.length} point${doc.points.length === 1 ? '' : 's'} × seeds ${e(doc.seeds.join(', '))}, ${runs} run${runs === 1 ? '' : 's'}${doc.shard ? `, shard ${doc.shard.index}/${doc.shard.count} only (merge the shards for the whole sweep)` : ''}</p>`,
    doc.description ? `<p>${e(doc.description)}</p>` : '',
    `<p>Each cell: ${e(INTERVAL_NOTE)}. A point with one run shows its value alone.</p>`,
    pointsTable(doc),
    ...[...svgs].map(([title, svg]) => `<section class="plot">\n<h2>${e(title)}</h2>\n${svg.trim()}\n</section>`),
    '<h2>Data</h2>',
    '<ul>\n<li><a href="points.csv">points.csv</a> (mean, sd and interval per point and figure)</li>\n' +
      '<li><a href="runs.csv">runs.csv</a> (every run)</li>\n<li><a href="sweep.json">sweep.json</a> (all of it, as JSON)</li>\n</ul>',
    '<h2>Runs</h2>',
    `<ul>\n${doc.points.flatMap((p) => p.runs.map((r) => `<li><a href="${e(r.dir)}/index.html">${e(p.id)} seed ${r.seed}</a></li>`)).join('\n')}\n</ul>`,
    `<details><summary>Scenario and sweep</summary>\n<pre>${e(JSON.stringify({ ...doc.base, sweep: doc.sweep }, null, 2))}</pre>\n</details>`,
    '</body>', '</html>',
  ];
  return parts.filter((p) => p !== '').join('\n') + '\n';
}

function pointsTable(doc: SweepDoc): string {
  const e = escapeHtml;
  const paths = Object.keys(doc.points[0]?.params ?? {});
  const metrics = variedMetrics(doc);
  const same = sweepMetrics(doc).filter((m) => !metrics.includes(m));
  const head = ['point', ...paths, 'runs', ...metrics].map((h) => `<th scope="col">${e(h)}</th>`).join('');
  const rows = doc.points.map((p) => {
    const params = paths.map((k) => `<td>${e(typeof p.params[k] === 'string' ? String(p.params[k]) : JSON.stringify(p.params[k]))}</td>`);
    const stats = metrics.map((m) => {
      const s = p.stats[m];
      if (!s) return '<td></td>';
      const range = s.ciLow === undefined ? '' : ` title="95 % interval [${s.ciLow}, ${s.ciHigh}], sd ${s.sd}"`;
      return `<td class="num"${range}>${e(meanCiText(s))}</td>`;
    });
    return `<tr><th scope="row">${e(p.id)}</th>${params.join('')}<td class="num">${p.runs.length}</td>${stats.join('')}</tr>`;
  });
  const note = same.length ? `\n<p class="meta">The same in every run (in the CSVs): ${same.map((m) => e(`${m} = ${doc.points.find((p) => p.stats[m])!.stats[m].mean}`)).join('; ')}.</p>` : '';
  return `<div class="wide"><table class="points">\n<thead><tr>${head}</tr></thead>\n<tbody>\n${rows.join('\n')}\n</tbody>\n</table></div>${note}`;
}
