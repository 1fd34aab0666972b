import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { renderReport, writeReport } from '../../src/report/write.js';
import type { ExperimentResult } from '../../src/report/result.js';
import { DEMO_PAPER, DEMO_SCENARIO, demoOutput, demoParams } from './demo.js';

const result: ExperimentResult = {
  scenario: 'demo-run', title: 'Demo <experiment>', seed: 7,
  ...demoOutput(demoParams.parse({ vms: DEMO_SCENARIO.vms, steps: 4 }), 7),
};

let root: string;
beforeEach(() => { root = mkdtempSync(join(tmpdir(), 'memvisor-report-')); });
afterEach(() => { rmSync(root, { recursive: true, force: true }); });

const failing: ExperimentResult = {
  ...result,
  plots: [...result.plots, { id: 'broken', title: 'Broken', vegaLite: { data: { name: 'limits' }, mark: 'nonsense' } }],
};

describe('writeReport', () => {
  it('writes result.json, one CSV per series, one SVG per plot and index.html', async () => {
    const w = await writeReport(join(root, 'r'), result);
    expect(readdirSync(w.dir).sort()).toEqual(['index.html', 'limits.csv', 'limits.svg', 'memory.csv', 'memory.svg', 'result.json']);
    expect(JSON.parse(readFileSync(join(w.dir, 'result.json'), 'utf8'))).toEqual(result);
    expect(readFileSync(join(w.dir, 'limits.csv'), 'utf8')).toBe('vm,min,max,note\na,10,50,"demo, ""quoted"""\nb,0,30,"demo, ""quoted"""\n');
    expect(readFileSync(join(w.dir, 'memory.svg'), 'utf8')).toMatch(/^<svg[\s\S]*aria-roledescription="line mark"[\s\S]*<\/svg>\n$/);
    expect(w.index).toBe(join(w.dir, 'index.html'));
    expect(readdirSync(root)).toEqual(['r']); // no temp dirs left beside it
  });

  it('index.html inlines every plot beside the paper text, with the summary, notes and escaping', async () => {
    const files = await renderReport(result);
    const html = files.get('index.html')!;
    for (const p of result.plots) {
      const svg = files.get(`${p.id}.svg`)!.trim();
      expect(html).toContain(svg);
      expect(html).toContain(`<section class="plot" id="plot-${p.id}">`);
    }
    expect(html).toContain(`<p>${DEMO_PAPER}</p>`);
    expect(html.match(/What the paper reports/g)).toHaveLength(1); // only the plot that has paper text
    expect(html).toContain('<h2>Configured maximum &lt;per VM&gt;</h2>');
    expect(html).toContain('<title>Demo &lt;experiment&gt; — demo-run</title>');
    expect(html).toContain('<tr><th scope="row">steps</th><td class="num">4</td></tr>');
    expect(html).toContain('<li>Demo only &amp; not a real experiment.</li>');
    expect(html).not.toMatch(/<script/);
  });

  it('is deterministic: the same result gives byte-identical files; a timestamp only when passed', async () => {
    const a = await renderReport(result);
    const b = await renderReport(structuredClone(result));
    expect([...b]).toEqual([...a]);
    const c = await renderReport(result, { generatedAt: '2024-01-02' });
    expect(c.get('index.html')).toContain('generated 2024-01-02');
    expect(a.get('index.html')).not.toContain('generated');
  });

  it('a failing render writes nothing: no target, no temp dir', async () => {
    await expect(writeReport(join(root, 'new', 'r'), failing)).rejects.toThrow(/plot "broken"/);
    expect(readdirSync(root)).toEqual([]);
  });

  it('a failing render keeps an existing report untouched; a successful one replaces it', async () => {
    const dir = join(root, 'r');
    await writeReport(dir, { ...result, seed: 1 });
    const before = readFileSync(join(dir, 'result.json'), 'utf8');
    await expect(writeReport(dir, failing)).rejects.toThrow();
    expect(readFileSync(join(dir, 'result.json'), 'utf8')).toBe(before);
    expect(readdirSync(root)).toEqual(['r']);
    writeFileSync(join(dir, 'stale.csv'), 'old');
    await writeReport(dir, result);
    expect(JSON.parse(readFileSync(join(dir, 'result.json'), 'utf8')).seed).toBe(7);
    expect(existsSync(join(dir, 'stale.csv'))).toBe(false);
    expect(readdirSync(root)).toEqual(['r']);
  });

  it('refuses to replace a directory that is not a report, or a file', async () => {
    const dir = join(root, 'home');
    mkdirSync(dir);
    writeFileSync(join(dir, 'precious.txt'), 'keep me');
    await expect(writeReport(dir, result)).rejects.toThrow(/refusing to replace .*home.*no result\.json/);
    expect(readdirSync(dir)).toEqual(['precious.txt']);
    writeFileSync(join(root, 'file'), 'x');
    await expect(writeReport(join(root, 'file'), result)).rejects.toThrow(/not a directory/);
    expect(readFileSync(join(root, 'file'), 'utf8')).toBe('x');
    expect(readdirSync(root).sort()).toEqual(['file', 'home']);
  });

  it('rejects an invalid result before touching the disk', async () => {
    const bad = { ...result, summary: { x: Infinity } };
    await expect(writeReport(join(root, 'r'), bad)).rejects.toThrow(/summary\.x: Infinity is not allowed/);
    expect(readdirSync(root)).toEqual([]);
  });
});
