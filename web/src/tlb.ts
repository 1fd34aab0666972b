// The TLB view: every set and way of each TLB and paging-structure cache of the walk
// explorer's vCPU (read by src/core/tlb-view.ts), refreshed while a workload runs in slices.
import { readCaches, type CacheView, type CacheEntry } from '../../src/core/tlb-view.js';
import { PATTERNS, type Pattern } from '../../src/workload/patterns.js';
import type { WalkLab } from '../../src/board/walk-lab.js';
import { h, $, hex } from './dom.js';
import type { LabHandle } from './walk.js';

const TITLES: Record<string, string> = {
  l1i4k: 'L1 ITLB 4K', l1i2m: 'L1 ITLB 2M', l1d4k: 'L1 DTLB 4K', l1d2m: 'L1 DTLB 2M', l1d1g: 'L1 DTLB 1G', l2: 'L2 TLB (STLB)',
  pde: 'PSC: PDE', pdpte: 'PSC: PDPTE', pml4e: 'PSC: PML4E', pml5e: 'PSC: PML5E',
  ntlb: 'nested TLB', epde: 'EPT PSC: PDE', epdpte: 'EPT PSC: PDPTE', epml4e: 'EPT PSC: PML4E', epml5e: 'EPT PSC: PML5E',
};
const MAX_SETS_SHOWN = 16;

const TLBS = new Set(['l1i4k', 'l1i2m', 'l1d4k', 'l1d2m', 'l1d1g', 'l2', 'ntlb']);

/** One way: the tag, then page size (TLBs), PCID (P<n>) and G for global entries. */
function cell(e: CacheEntry, tlb: boolean): HTMLElement {
  if (!e.valid) return h('td', { class: 'empty' }, '·');
  const tags = [tlb ? e.pageSize : '', `P${e.pcid}`, e.global ? 'G' : ''].filter(Boolean).join(' ');
  return h('td', { title: `tag ${hex(e.tag)} → ${hex(e.frame)}; ${tags}` }, hex(e.tag), h('br'), tags);
}

function grid(v: CacheView): HTMLElement {
  const sets = Math.min(v.sets, MAX_SETS_SHOWN);
  const valid = v.entries.filter((e) => e.valid).length;
  const rows: HTMLElement[] = [h('tr', {}, h('th', {}, 'set'), ...Array.from({ length: v.ways }, (_, w) => h('th', {}, `way ${w}`)))];
  for (let s = 0; s < sets; s++) {
    rows.push(h('tr', {}, h('th', {}, String(s)), ...v.entries.slice(s * v.ways, (s + 1) * v.ways).map((e) => cell(e, TLBS.has(v.name)))));
  }
  return h('div', { class: 'cache', 'data-cache': v.name, 'data-valid': String(valid) },
    h('table', {}, h('caption', {}, `${TITLES[v.name] ?? v.name}: ${v.sets} × ${v.ways}, ${valid} valid` +
      (v.sets > sets ? ` (first ${sets} sets shown)` : '')), ...rows));
}

function countersView(c: Record<string, number>): HTMLElement {
  const pick = (ks: string[]) => ks.reduce((s, k) => s + (c[k] ?? 0), 0);
  const items: [string, number][] = [
    ['accesses', c.accesses], ['L1 hits', pick(['l1Hit4k', 'l1Hit2m', 'l1Hit1g'])], ['L1 misses', c.l1Miss],
    ['L2 hits', pick(['l2Hit4k', 'l2Hit2m', 'l2Hit1g'])], ['L2 misses', c.l2Miss], ['walks', c.walks], ['walk references', c.walkRefs],
    ['PSC hits', pick(['pscHitPde', 'pscHitPdpte', 'pscHitPml4e', 'pscHitPml5e'])], ['nested TLB hits', c.ntlbHits], ['nested TLB misses', c.ntlbMisses],
    ['EPT references', c.eptRefs], ['modeled cycles', c.cycles],
  ];
  return h('table', { id: 't-counter-table' }, h('caption', {}, 'Counters (since the machine was built)'),
    h('tr', {}, ...items.map(([k]) => h('th', {}, k))), h('tr', {}, ...items.map(([k, v]) => h('td', { class: 'mono', 'data-counter': k }, String(v ?? 0)))));
}

export function setupTlb(handle: LabHandle): void {
  const sel = $<HTMLSelectElement>('t-pattern');
  for (const p of PATTERNS) sel.append(h('option', { value: p }, p));
  sel.value = 'random';
  let running = false;
  const draw = (lab: WalkLab) => {
    const views = readCaches(lab.machine.core, lab.cpu.ptr).filter((v) => v.sets > 0);
    $('t-counters').replaceChildren(countersView(lab.cpu.counters()));
    $('t-grids').replaceChildren(...views.map(grid));
  };
  const refresh = async () => draw(await handle.get());
  handle.onChange(() => { void refresh(); });
  $('t-run').addEventListener('click', async () => {
    const lab = await handle.get();
    running = true;
    $<HTMLButtonElement>('t-run').disabled = true; $<HTMLButtonElement>('t-stop').disabled = false;
    let seed = 1;
    const slice = () => {
      if (!running) return;
      lab.runWorkload(sel.value as Pattern, 2048, seed++);
      draw(lab);
      if (seed > 200) stop(); else requestAnimationFrame(slice);
    };
    requestAnimationFrame(slice);
  });
  const stop = () => { running = false; $<HTMLButtonElement>('t-run').disabled = false; $<HTMLButtonElement>('t-stop').disabled = true; };
  $('t-stop').addEventListener('click', stop);
  void refresh();
}
