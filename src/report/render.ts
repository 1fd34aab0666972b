// Plots to SVG in Node, headless: vega-lite compiles the spec to vega, a vega View with
// renderer 'none' runs the dataflow, and View.toSVG() serialises the scenegraph. No canvas
// and no browser; text widths are vega's estimate, so output depends only on the input.
//
// The series reach the spec through vega-lite's top-level `datasets`, keyed by the same
// names the spec's `data: { name }` uses, so experiments never copy rows into their specs.
//
// vega numbers clip paths and gradients from a process-wide counter (clip1, clip2, ...),
// which would make the same plot render differently the second time and collide when
// several SVGs are inlined in one HTML page. scopeIds renames them per plot, in order of
// appearance, which fixes both.

import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import { dataNames, type Plot, type Row } from './result.js';

export interface RenderOptions {
  /** Called with each vega-lite / vega warning (e.g. a dropped encoding); errors always throw. */
  onWarning?: (message: string) => void;
}

/** Renders one plot to an SVG document string. */
export async function renderPlotSvg(plot: Plot, series: Record<string, Row[]>, opts: RenderOptions = {}): Promise<string> {
  const problems: string[] = [];
  const log = collectingLogger(plot.id, problems, opts.onWarning);
  const datasets: Record<string, Row[]> = {};
  // Copies: vega tags the row objects it ingests (Symbol(vega_id)), and the result is not ours.
  for (const name of dataNames(plot.vegaLite)) datasets[name] = (series[name] ?? []).map((r) => ({ ...r }));
  let view: vega.View | undefined;
  try {
    const spec = { ...plot.vegaLite, datasets: { ...(plot.vegaLite.datasets as object | undefined), ...datasets } };
    const vg = compile(spec as unknown as TopLevelSpec, { logger: log }).spec;
    view = new vega.View(vega.parse(vg), { renderer: 'none', logger: log, logLevel: vega.Warn });
    const svg = await view.toSVG();
    if (problems.length) throw new Error(problems.join('; '));
    return scopeIds(svg, plot.id);
  } catch (e) {
    throw new Error(`plot "${plot.id}": ${(e as Error).message}`);
  } finally {
    view?.finalize();
  }
}

/** Renames every id="..." (and its url(#...) / href="#..." uses) to <prefix>-<n>. */
export function scopeIds(svg: string, prefix: string): string {
  const ids = new Map<string, string>();
  for (const m of svg.matchAll(/\bid="([^"]+)"/g)) {
    if (!ids.has(m[1])) ids.set(m[1], `${prefix}-${ids.size + 1}`);
  }
  if (ids.size === 0) return svg;
  const rename = (id: string) => ids.get(id) ?? id;
  return svg
    .replace(/\bid="([^"]+)"/g, (_, id) => `id="${rename(id)}"`)
    .replace(/url\(#([^)]+)\)/g, (_, id) => `url(#${rename(id)})`)
    .replace(/href="#([^"]+)"/g, (_, id) => `href="#${rename(id)}"`);
}

/** A vega logger: errors are collected (and thrown after rendering), warnings passed on. */
function collectingLogger(id: string, errors: string[], onWarning?: (m: string) => void): vega.LoggerInterface {
  const text = (args: unknown[]) => args.map((a) => (a instanceof Error ? a.message : String(a))).join(' ');
  return vega.logger(vega.Warn, undefined, (method, _level, args) => {
    if (method === 'error') errors.push(text(args));
    else if (method === 'warn') onWarning?.(`plot "${id}": ${text(args)}`);
  });
}
