// The toy-OS panel: boots a machine-code kernel on the library's OsMachine board (os-board.ts)
// — the shipped OS when guests/os/bin/*.elf is in the checkout, or an ELF the reader opens —
// and shows its serial console, a command line that types into it, live counters and a
// balloon-target slider (the host's target; the guest's driver inflates toward it).
import { h, $ } from './dom.js';
import { OS_BOARDS, boardFromFile } from './os-boards.js';

/** What the panel needs from a booted guest OS (os-board.ts adapts OsMachine). */
export interface OsConsoleBoard {
  readonly name: string;
  /** Guest memory in 4 KiB pages (the slider's range). */
  readonly pages: number;
  /** Runs the guest for a slice of virtual time; returns console text written meanwhile. */
  step(seconds: number): string;
  /** Types into the guest console (UART input). */
  type(line: string): void;
  /** Sets the balloon target the host asks the guest driver for, in pages. */
  setBalloonTarget(pages: number): void;
  counters(): Record<string, number>;
}

export type OsBoardFactory = () => Promise<OsConsoleBoard>;

let running: { stop(): void } | undefined;

function boot(factory: OsBoardFactory): void {
  running?.stop();
  const term = h('pre', { id: 'os-term', 'aria-live': 'polite', tabindex: '0', 'aria-label': 'Guest console' });
  const line = h('input', { id: 'os-line', 'aria-label': 'Type a line into the guest console', size: '60' });
  const slider = h('input', { id: 'os-balloon', type: 'range', min: '0', value: '0', step: '256' });
  const sliderText = h('output', { id: 'os-balloon-value', for: 'os-balloon' }, '0 pages');
  const counters = h('table', { id: 'os-counters' });
  $('os-run').replaceChildren(term, h('form', { id: 'os-form', class: 'controls' }, line, h('button', { type: 'submit' }, 'Send')),
    h('div', { class: 'controls' }, h('label', {}, 'Balloon target ', slider), sliderText), counters);
  let live = true;
  running = { stop: () => { live = false; } };
  void factory().then((b) => {
    slider.max = String(b.pages);
    slider.setAttribute('aria-label', `Balloon target in pages (0 to ${b.pages})`);
    slider.addEventListener('input', () => { sliderText.textContent = `${slider.value} pages`; });
    slider.addEventListener('change', () => b.setBalloonTarget(Number(slider.value)));
    $('os-form').addEventListener('submit', (e) => { e.preventDefault(); b.type(line.value + '\n'); line.value = ''; });
    const tick = () => {
      if (!live) return;
      const s = b.step(0.02);
      if (s) term.textContent += s;
      const c = b.counters();
      counters.replaceChildren(h('tr', {}, ...Object.keys(c).map((k) => h('th', {}, k))),
        h('tr', {}, ...Object.entries(c).map(([k, v]) => h('td', { class: 'mono', 'data-counter': k }, String(v)))));
      setTimeout(tick, 16);
    };
    tick();
  }).catch((e: Error) => { term.textContent = `cannot boot: ${e.message}`; term.dataset.error = 'true'; });
}

export function setupOs(): void {
  const file = h('input', { type: 'file', id: 'os-file', accept: '.elf,application/x-elf' });
  const pick = h('div', { class: 'controls' },
    ...OS_BOARDS.map((b) => { const btn = h('button', { type: 'button' }, `Boot ${b.name}`); btn.addEventListener('click', () => boot(b.create)); return btn; }),
    h('label', {}, 'Boot a kernel ELF (Limine protocol) ', file));
  file.addEventListener('change', () => { const f = file.files?.[0]; if (f) boot(boardFromFile(f)); });
  $('os-out').replaceChildren(
    h('p', { id: 'os-status' }, OS_BOARDS.length ? 'Boot the shipped OS, or open a kernel of your own.'
      : 'The shipped OS (guests/os/bin/*.elf) is not in this build; open a Limine-protocol kernel ELF to boot it here.'),
    pick, h('div', { id: 'os-run' }));
}
