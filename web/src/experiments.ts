// Experiments: a shipped scenario (Figure 7 by default) or an edited one, validated by the
// registry's zod schemas as it is typed, run in a worker, plotted with vega-embed (bundled).
import embed from 'vega-embed';
import '../../src/experiment/catalogue.js';
import { parseExperimentScenario } from '../../src/experiment/registry.js';
import type { ExperimentResult } from '../../src/report/result.js';
import { h, $ } from './dom.js';

const shipped = import.meta.glob('../../scenarios/*.json', { eager: true, import: 'default' }) as Record<string, unknown>;
// Scenarios that replay trace files are left out: a page has no files to read them from.
const needsFiles = (v: unknown) => /\.lackey(\.gz)?"/.test(JSON.stringify(v));
const byName = new Map(Object.entries(shipped).filter(([, v]) => !needsFiles(v))
  .map(([p, v]) => [p.split('/').pop()!.replace(/\.json$/, ''), v]));
const DEFAULT = 'fig7-idle-tax';

function validate(text: string): { ok: true; json: unknown } | { ok: false; message: string } {
  let json: unknown;
  try { json = JSON.parse(text); } catch (e) { return { ok: false, message: `not JSON: ${(e as Error).message}` }; }
  try { parseExperimentScenario(json, 'the scenario'); return { ok: true, json }; } catch (e) { return { ok: false, message: (e as Error).message }; }
}

function summary(r: ExperimentResult): HTMLElement {
  return h('table', { class: 'summary', id: 'e-summary' }, h('caption', {}, `${r.title} — scenario ${r.scenario}, seed ${r.seed}`),
    ...Object.entries(r.summary).map(([k, v]) => h('tr', {}, h('th', {}, k), h('td', { 'data-key': k }, String(v)))));
}

async function plots(r: ExperimentResult, into: HTMLElement): Promise<void> {
  for (const p of r.plots) {
    const box = h('div', { class: 'plot', 'data-plot': p.id });
    const target = h('div', { role: 'img', 'aria-label': p.title });
    box.append(h('h3', {}, p.title), target);
    if (p.caption) box.append(h('p', { class: 'help' }, p.caption));
    if (p.paper) box.append(h('p', { class: 'help' }, 'The paper: ' + p.paper));
    into.append(box);
    const spec = p.vegaLite as Record<string, unknown>;
    const datasets: Record<string, unknown> = { ...(spec.datasets as object | undefined) };
    for (const [name, rows] of Object.entries(r.series)) datasets[name] = rows;
    await embed(target, { ...spec, datasets, width: 640, height: 260 } as never, { actions: false, renderer: 'svg', tooltip: true });
    box.dataset.rendered = 'true';
  }
}

export function setupExperiments(): void {
  const pick = $<HTMLSelectElement>('e-pick');
  const text = $<HTMLTextAreaElement>('e-text');
  const errors = $('e-errors');
  for (const name of [...byName.keys()].sort()) pick.append(h('option', { value: name }, name));
  pick.value = byName.has(DEFAULT) ? DEFAULT : pick.options[0]?.value;
  const load = () => { text.value = JSON.stringify(byName.get(pick.value), null, 2); check(); };
  const check = () => {
    const v = validate(text.value);
    errors.textContent = v.ok ? '' : v.message;
    text.setAttribute('aria-invalid', String(!v.ok));
    $<HTMLButtonElement>('e-run').disabled = !v.ok;
    return v;
  };
  pick.addEventListener('change', load);
  text.addEventListener('input', check);
  let worker: Worker | undefined;
  const done = () => { worker?.terminate(); worker = undefined; $<HTMLButtonElement>('e-cancel').disabled = true; $<HTMLButtonElement>('e-run').disabled = false; };
  $('e-cancel').addEventListener('click', () => { done(); $('e-label').textContent = 'cancelled'; });
  $('e-run').addEventListener('click', () => {
    const v = check();
    if (!v.ok) return;
    done();
    const out = $('e-out');
    out.replaceChildren();
    out.dataset.state = 'running';
    const bar = $<HTMLProgressElement>('e-progress');
    bar.value = 0;
    $('e-label').textContent = 'starting…';
    $<HTMLButtonElement>('e-run').disabled = true; $<HTMLButtonElement>('e-cancel').disabled = false;
    const started = performance.now();
    worker = new Worker(new URL('./worker.ts', import.meta.url), { type: 'module' });
    worker.onmessage = async (e: MessageEvent<{ progress?: number; label?: string; result?: ExperimentResult; error?: string }>) => {
      const m = e.data;
      if (m.progress !== undefined) { bar.value = m.progress; $('e-label').textContent = `${Math.round(m.progress * 100)} % ${m.label ?? ''}`; return; }
      done();
      if (m.error) { errors.textContent = m.error; out.dataset.state = 'error'; return; }
      const r = m.result!;
      $('e-label').textContent = `done in ${((performance.now() - started) / 1000).toFixed(1)} s`;
      out.append(summary(r));
      await plots(r, out);
      out.dataset.state = 'done';
    };
    worker.onerror = (e) => { done(); errors.textContent = e.message; out.dataset.state = 'error'; };
    worker.postMessage({ scenario: v.json });
  });
  load();
}
