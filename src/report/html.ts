// index.html: one self-contained page (inline CSS, inline SVGs, no scripts) with the
// summary table, then each plot beside the paragraph saying what the paper reports for it,
// then notes, links to the CSVs and result.json, and the scenario as run.
// The page holds no timestamp unless the caller passes one, so it is reproducible.

import type { ExperimentResult } from './result.js';

export interface HtmlOptions {
  /** Shown in the footer when given (e.g. an ISO date); omitted otherwise for determinism. */
  generatedAt?: string;
}

const CSS = `
body { font: 15px/1.45 system-ui, sans-serif; color: #222; max-width: 1200px; margin: 2em auto; padding: 0 1em; }
h1 { margin-bottom: 0.2em; } .meta { color: #666; margin-top: 0; }
table.summary { border-collapse: collapse; margin: 1em 0; }
table.summary th, table.summary td { border-bottom: 1px solid #ddd; padding: 0.25em 0.8em; text-align: left; }
table.summary td.num { text-align: right; font-variant-numeric: tabular-nums; }
section.plot { margin: 2.5em 0; }
.figure { display: flex; flex-wrap: wrap; gap: 1.5em; align-items: flex-start; }
.figure .svg { flex: 0 1 auto; max-width: 100%; overflow-x: auto; }
.figure .svg svg { max-width: 100%; height: auto; }
.figure .paper { flex: 1 1 280px; background: #f6f6f2; border-left: 3px solid #b9b38a; padding: 0.6em 1em; }
.figure .paper h3 { margin: 0 0 0.4em; font-size: 0.95em; color: #665; }
p.caption { color: #444; font-style: italic; }
pre { background: #f4f4f4; padding: 0.8em; overflow-x: auto; }
`.trim();

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** svgs: plot id → SVG text, csvs: series key → file name (relative to index.html). */
export function renderHtml(r: ExperimentResult, svgs: Map<string, string>, csvs: Map<string, string>, opts: HtmlOptions = {}): string {
  const e = escapeHtml;
  const parts = [
    '<!DOCTYPE html>',
    '<html lang="en">',
    '<head>',
    '<meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>${e(r.title)} — ${e(r.scenario)}</title>`,
    `<style>\n${CSS}\n</style>`,
    '</head>',
    '<body>',
    `<h1>${e(r.title)}</h1>`,
    `<p class="meta">scenario <code>${e(r.scenario)}</code>, seed ${r.seed}</p>`,
    r.description ? `<p>${e(r.description)}</p>` : '',
    summaryTable(r.summary),
    ...(r.plots.length > 1 ? [plotIndex(r)] : []),
    ...r.plots.map((p) => plotSection(p, svgs.get(p.id) ?? '')),
    r.notes?.length ? `<h2>Notes</h2>\n<ul>\n${r.notes.map((n) => `<li>${e(n)}</li>`).join('\n')}\n</ul>` : '',
    dataLinks(csvs),
    r.config ? `<details><summary>Scenario as run</summary>\n<pre>${e(JSON.stringify(r.config, null, 2))}</pre>\n</details>` : '',
    opts.generatedAt ? `<footer><p class="meta">generated ${e(opts.generatedAt)}</p></footer>` : '',
    '</body>',
    '</html>',
  ];
  return parts.filter((p) => p !== '').join('\n') + '\n';
}

function summaryTable(summary: ExperimentResult['summary']): string {
  const rows = Object.entries(summary);
  if (rows.length === 0) return '';
  const cell = (v: number | string) => (typeof v === 'number' ? `<td class="num">${v}</td>` : `<td>${escapeHtml(v)}</td>`);
  return ['<table class="summary">', '<tbody>',
    ...rows.map(([k, v]) => `<tr><th scope="row">${escapeHtml(k)}</th>${cell(v)}</tr>`),
    '</tbody>', '</table>'].join('\n');
}

function plotIndex(r: ExperimentResult): string {
  return `<nav><ul>\n${r.plots.map((p) => `<li><a href="#plot-${escapeHtml(p.id)}">${escapeHtml(p.title)}</a></li>`).join('\n')}\n</ul></nav>`;
}

function plotSection(p: ExperimentResult['plots'][number], svg: string): string {
  const e = escapeHtml;
  return [
    `<section class="plot" id="plot-${e(p.id)}">`,
    `<h2>${e(p.title)}</h2>`,
    '<div class="figure">',
    `<div class="svg">${svg.trim()}</div>`,
    p.paper ? `<div class="paper"><h3>What the paper reports</h3><p>${e(p.paper)}</p></div>` : '',
    '</div>',
    p.caption ? `<p class="caption">${e(p.caption)}</p>` : '',
    `<p><a href="${e(p.id)}.svg">${e(p.id)}.svg</a></p>`,
    '</section>',
  ].filter((s) => s !== '').join('\n');
}

function dataLinks(csvs: Map<string, string>): string {
  const links = [...csvs].map(([key, file]) => `<li><a href="${escapeHtml(file)}">${escapeHtml(key)}</a> (CSV)</li>`);
  return `<h2>Data</h2>\n<ul>\n${links.join('\n')}\n<li><a href="result.json">result.json</a> (everything above, as JSON)</li>\n</ul>`;
}
