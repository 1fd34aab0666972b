import { describe, expect, it } from 'vitest';
import { renderPlotSvg, scopeIds } from '../../src/report/render.js';
import { validateResult, type Plot } from '../../src/report/result.js';

const rows = [{ k: 'a', v: 3 }, { k: 'b', v: 7 }, { k: 'c', v: 1 }];
const bars: Plot = {
  id: 'bars', title: 'Bars',
  vegaLite: { data: { name: 'rows' }, mark: 'bar', encoding: { x: { field: 'k', type: 'nominal' }, y: { field: 'v', type: 'quantitative' } } },
};

describe('SVG rendering', () => {
  it('renders an <svg> with one bar mark per row, labelled with the row values', async () => {
    const svg = await renderPlotSvg(bars, { rows });
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg.trimEnd().endsWith('</svg>')).toBe(true);
    expect(svg).toContain('class="mark-rect role-mark marks"');
    expect(svg.match(/aria-roledescription="bar"/g)).toHaveLength(3);
    for (const r of rows) expect(svg).toContain(`k: ${r.k}; v: ${r.v}`);
  });

  it('gives byte-identical SVGs for the same plot, with clip ids scoped to the plot', async () => {
    const clipped: Plot = { ...bars, id: 'clipped', vegaLite: { ...bars.vegaLite, mark: { type: 'line', clip: true } } };
    const a = await renderPlotSvg(clipped, { rows });
    const b = await renderPlotSvg(clipped, { rows });
    expect(a).toBe(b);
    expect(a).toContain('id="clipped-1"');
    expect(a).toContain('url(#clipped-1)');
    expect(a).not.toMatch(/id="clip\d/);
  });

  it('throws naming the plot when the spec is not valid vega-lite', async () => {
    const bad: Plot = { ...bars, vegaLite: { ...bars.vegaLite, mark: 'nonsense' } };
    await expect(renderPlotSvg(bad, { rows })).rejects.toThrow(/plot "bars"/);
  });

  it('scopeIds renames ids and every reference to them consistently', () => {
    const svg = '<svg><clipPath id="clip9"/><g clip-path="url(#clip9)"/><use href="#clip9"/><path id="p"/></svg>';
    expect(scopeIds(svg, 'x')).toBe('<svg><clipPath id="x-1"/><g clip-path="url(#x-1)"/><use href="#x-1"/><path id="x-2"/></svg>');
  });
});

describe('result validation', () => {
  const ok = { scenario: 's', title: 't', seed: 1, summary: { n: 1 }, series: { rows }, plots: [bars] };
  it('accepts a well-formed result', () => {
    expect(validateResult(ok)).toBe(ok);
  });
  it('names the path of a non-finite number or a non-scalar cell', () => {
    expect(() => validateResult({ ...ok, series: { rows: [{ k: 'a', v: NaN }] } }))
      .toThrow(/series\.rows\[0\]\.v: NaN is not allowed: numbers must be finite/);
    expect(() => validateResult({ ...ok, series: { rows: [rows[0], { k: 'a', v: true }] } }))
      .toThrow(/series\.rows\[1\]\.v: expected a number or a string, got boolean/);
  });
  it('names a plot whose data is not a series, and a duplicate plot id', () => {
    const bad = { ...ok, plots: [bars, { ...bars, vegaLite: { ...bars.vegaLite, data: { name: 'missing' } } }] };
    let msg = '';
    try { validateResult(bad); } catch (e) { msg = (e as Error).message; }
    expect(msg).toMatch(/plots\[1\]\.vegaLite: data \{ name: "missing" \} is not a series/);
    expect(msg).toMatch(/plots\[1\]\.id: duplicate plot id "bars"/);
  });
  it('rejects series keys and plot ids that are not safe file names', () => {
    expect(() => validateResult({ ...ok, series: { '../x': rows }, plots: [] })).toThrow(/series\.\.\.\/x|series keys become CSV file names/);
    expect(() => validateResult({ ...ok, plots: [{ ...bars, id: 'a/b' }] })).toThrow(/plots\[0\]\.id/);
  });
});
