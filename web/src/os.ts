// The toy OS panel. The C guest OS and its board (src/board/os-machine.ts, guests/os/bin/*.elf)
// land on other branches; this is the extension point they plug into. A board implementing
// OsConsoleBoard is registered with registerOsBoard (in os-boards.ts, one import line once
// the board is on main); the panel then shows the guest console, a command line that types
// into it, live counters and a balloon-target slider. Without one the panel says so.
import { h, $ } from './dom.js';
import { OS_BOARDS } from './os-boards.js';

/** What the panel needs from a booted guest OS (the board adapts its VM, UART and balloon). */
export interface OsConsoleBoard {
  readonly name: string;
  /** Guest memory in 4 KiB pages (the slider's range). */
  readonly pages: number;
  /** Runs the guest for a slice of simulated time; returns console bytes written meanwhile. */
  step(seconds: number): string;
  /** Types a line into the guest console (UART input). */
  type(line: string): void;
  /** Sets the balloon target the host asks the guest driver for, in pages. */
  setBalloonTarget(pages: number): void;
  /** Counters to show (balloon size, exits, TLB misses …). */
  counters(): Record<string, number>;
}

export type OsBoardFactory = () => Promise<OsConsoleBoard>;

export function setupOs(): void {
  const out = $('os-out');
  if (OS_BOARDS.length === 0) {
    out.replaceChildren(h('p', { role: 'status', id: 'os-status' },
      'The toy OS is not in this build yet: its C guest and boot board are landing on another branch. ' +
      'When src/board/os-machine.ts is on main, one line in web/src/os-boards.ts registers it and this panel ' +
      'shows its console, a command line and a balloon-target slider.'));
    return;
  }
  const term = h('pre', { id: 'os-term', 'aria-live': 'polite', tabindex: '0' });
  const line = h('input', { id: 'os-line', 'aria-label': 'Type into the guest console' });
  const slider = h('input', { id: 'os-balloon', type: 'range', min: '0', value: '0', 'aria-label': 'Balloon target (pages)' });
  const counters = h('div', { id: 'os-counters' });
  out.replaceChildren(term, h('form', { id: 'os-form' }, line, h('button', { type: 'submit' }, 'Send')),
    h('label', {}, 'Balloon target ', slider), counters);
  void OS_BOARDS[0]().then((b) => {
    slider.max = String(b.pages);
    slider.addEventListener('change', () => b.setBalloonTarget(Number(slider.value)));
    $('os-form').addEventListener('submit', (e) => { e.preventDefault(); b.type(line.value + '\n'); line.value = ''; });
    const tick = () => {
      term.textContent += b.step(0.05);
      counters.replaceChildren(...Object.entries(b.counters()).map(([k, v]) => h('span', {}, `${k}: ${v}  `)));
      requestAnimationFrame(tick);
    };
    tick();
  });
}
