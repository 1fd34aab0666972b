// The walk explorer: a WalkLab (src/board/walk-lab.ts) built from the chosen mode, levels and
// page sizes; each walk is the core's, explained by explainWalk and decoded by src/core/decode.ts.
// Only the modules the page needs (src/index.ts also exports the Node-only report writer).
import { WalkLab, LAB_ADDRESSES, type WalkLabOptions, type LabWalk, type ShadowSteps } from '../../src/board/walk-lab.js';
import { decodePte, decodeEptEntry, decodePfec, decodeEptQualification, type BitField } from '../../src/core/decode.js';
import type { WalkExplanation, WalkRef, NestedRow } from '../../src/core/walk-explain.js';
import { h, $, hex } from './dom.js';

const LEVEL_NAME: Record<number, string> = { 1: 'PTE', 2: 'PDE', 3: 'PDPTE', 4: 'PML4E', 5: 'PML5E' };
const EPT_NAME: Record<number, string> = { 1: 'EPT PTE', 2: 'EPT PDE', 3: 'EPT PDPTE', 4: 'EPT PML4E', 5: 'EPT PML5E' };

export interface LabHandle { get(): Promise<WalkLab>; onChange(f: () => void): void }

function options(): WalkLabOptions {
  const mode = $<HTMLSelectElement>('w-mode').value;
  return {
    mode: mode as 'native' | 'nested' | 'shadow',
    guestLevels: Number($<HTMLSelectElement>('w-glevels').value) as 4 | 5,
    guestPage: $<HTMLSelectElement>('w-gpage').value as '4K',
    eptLevels: Number($<HTMLSelectElement>('w-elevels').value) as 4 | 5,
    eptPage: $<HTMLSelectElement>('w-epage').value as '4K',
    caches: $<HTMLInputElement>('w-caches').checked,
  };
}

function bitsTable(fields: BitField[], caption: string): HTMLElement {
  return h('table', { class: 'bits' }, h('caption', {}, caption),
    h('tr', {}, h('th', {}, 'bits'), h('th', {}, 'field'), h('th', {}, 'value'), h('th', {}, 'meaning')),
    ...fields.map((f) => h('tr', { class: f.value === 1 ? 'bit1' : undefined },
      h('td', {}, f.bits), h('td', {}, f.name), h('td', { class: 'mono' }, String(f.value)), h('td', {}, f.meaning))));
}

function entryCell(r: WalkRef, name: string, decode: (v: bigint, l: number) => BitField[]): HTMLElement {
  if (r.status === 'cached') {
    return h('td', { class: 'skip' }, h('div', {}, `○ ${name}: skipped`), h('div', { class: 'help' }, 'a paging-structure cache held it'));
  }
  return h('td', { class: 'miss' }, h('div', {}, `● ${name} read`),
    h('div', { class: 'mono' }, `@${hex(r.entryHpa)}`), h('div', { class: 'mono' }, `= ${hex(r.value)}`),
    h('details', {}, h('summary', {}, 'bits'), bitsTable(decode(r.value, r.level), `${name} ${hex(r.value)}`)));
}

function verdict(x: WalkExplanation): HTMLElement {
  const r = x.result;
  const d = h('div', { id: 'w-result', 'data-ok': String(r.ok) });
  if (r.ok) {
    d.dataset.pa = hex(r.pa);
    d.append(h('p', { class: 'verdict' }, `✓ Translated ${hex(x.va)} → host-physical ${hex(r.pa)} (${r.pageSize / 1024} KiB page${x.mode === 'nested' ? ' in the guest' : ''})`));
  } else if (r.fault === 'PF') {
    d.dataset.fault = 'PF'; d.dataset.errorCode = String(r.errorCode);
    d.append(h('p', { class: 'verdict fault' }, `✗ Page fault (#PF), CR2 = ${hex(r.cr2)}, error code ${hex(r.errorCode)}`),
      bitsTable(decodePfec(r.errorCode), `#PF error code ${hex(r.errorCode)}`));
  } else if (r.fault === 'EPT_VIOLATION') {
    d.dataset.fault = 'EPT_VIOLATION'; d.dataset.qualification = String(r.qualification); d.dataset.gpa = hex(r.gpa);
    d.append(h('p', { class: 'verdict fault' }, `✗ EPT violation (VM exit) at gpa ${hex(r.gpa)}, exit qualification ${hex(r.qualification)}`),
      bitsTable(decodeEptQualification(r.qualification), `exit qualification ${hex(r.qualification)}`));
  } else {
    d.dataset.fault = r.fault;
    d.append(h('p', { class: 'verdict fault' }, `✗ ${r.fault}${'gpa' in r ? ` at gpa ${hex(r.gpa)}` : ''}`));
  }
  return d;
}

function served(x: WalkExplanation): HTMLElement {
  if (x.tlbHit) return h('p', { id: 'w-served' }, `✓ ${x.tlbHit} TLB hit: no walk, no memory reference.`);
  const refs = x.counters.walkRefs ?? 0;
  return h('p', { id: 'w-served', 'data-refs': String(refs) },
    `✗ TLB miss: the walk made ${refs} memory reference${refs === 1 ? '' : 's'}` +
    (x.pscHit ? `; the ${x.pscHit.toUpperCase()} paging-structure cache let it start lower.` : '.'));
}

function nativeTable(x: WalkExplanation, id = 'w-grid'): HTMLElement {
  return h('table', { class: 'grid', id },
    h('caption', {}, x.mode === 'native' ? 'The walk (host-physical page tables)' : 'The hardware walk of the shadow table (gva → hpa, x86-64 format)'),
    h('tr', {}, ...x.refs.map((r) => h('th', {}, `L${r.level} ${LEVEL_NAME[r.level]}`))),
    h('tr', {}, ...x.refs.map((r) => entryCell(r, LEVEL_NAME[r.level], decodePte))));
}

function nestedGrid(x: WalkExplanation, id = 'w-grid'): HTMLElement {
  const cols = Array.from({ length: x.eptLevels }, (_, i) => x.eptLevels - i);
  const head = h('tr', {}, h('th', {}, 'guest-physical reference'), ...cols.map((l) => h('th', {}, `EPT L${l}`)), h('th', {}, 'nested TLB'), h('th', {}, 'guest entry'));
  const row = (r: NestedRow) => {
    const what = r.guestLevel === 0 ? 'final gpa' : `guest ${LEVEL_NAME[r.guestLevel]} (L${r.guestLevel})`;
    const cells: HTMLElement[] = [];
    if (r.ntlb !== 'miss') {
      const txt = r.ntlb === 'hit' ? '✓ nested TLB hit: no EPT walk' : '✓ combined PSC gave the host address: no EPT walk';
      cells.push(h('td', { class: 'hit', colspan: String(cols.length) }, txt));
    } else {
      for (const l of cols) {
        const e = r.ept.find((q) => q.level === l);
        cells.push(e ? entryCell(e, EPT_NAME[l], decodeEptEntry) : h('td', { class: 'skip' }, '—'));
      }
    }
    cells.push(h('td', { class: r.ntlb === 'miss' ? 'miss' : 'hit' }, r.ntlb === 'hit' ? '✓ HIT' : r.ntlb === 'psc' ? '– (PSC)' : '✗ MISS'));
    cells.push(r.guest ? entryCell(r.guest, LEVEL_NAME[r.guest.level], decodePte) : h('td', {}, r.guestLevel === 0 ? 'the data' : ''));
    return h('tr', { 'data-ntlb': r.ntlb }, h('th', {}, what, h('div', { class: 'mono' }, r.gpa === null ? '' : hex(r.gpa))), ...cells);
  };
  const n = x.guestLevels, m = x.eptLevels;
  return h('table', { class: 'grid', id },
    h('caption', {}, `Two-dimensional walk: ${n} guest levels × ${m} EPT levels, at most (n+1)(m+1)−1 = ${(n + 1) * (m + 1) - 1} references uncached`),
    head, ...x.rows.map(row));
}

function countersTable(x: WalkExplanation): HTMLElement {
  const rows = Object.entries(x.counters).filter(([k]) => k !== 'cycles');
  return h('details', {}, h('summary', {}, 'Counters of this access (the core\'s)'),
    h('table', { id: 'w-counters' }, ...rows.map(([k, v]) => h('tr', {}, h('td', {}, k), h('td', { class: 'mono' }, String(v))))));
}

const OUTCOME: Record<string, string> = {
  retry: 'the guest walk succeeded: the shadow MMU filled the shadow entry, and the access was retried (below).',
  step: 'the write goes to a page the shadow MMU watches (or sets the guest D bit): it single-steps the instruction.',
  guestFault: 'the guest\'s own tables refuse the access: the #PF is reflected to the guest kernel (below).',
  outside: 'the guest-physical address is outside what the VM may use: the VM exits to the hypervisor (below).',
  guestGP: 'a non-canonical address: #GP to the guest.',
};

function shadowSteps(s: ShadowSteps): HTMLElement {
  return h('section', { id: 'w-shadow', 'data-outcome': s.outcome.action }, h('h3', {}, 'Shadow paging: the hidden fault and the shadow MMU'),
    h('p', {}, '1. The hardware walked the shadow table and found no entry: a hidden #PF, a VM exit.'),
    nativeTable(s.hidden, 'w-shadow-hidden'),
    h('p', {}, '2. The shadow MMU walked the guest\'s own tables (its walker is a nested-mode vCPU without caches, over the p2m\'s EPT):'),
    nestedGrid(s.guest, 'w-shadow-guest'),
    h('p', {}, `3. Outcome: ${OUTCOME[s.outcome.action] ?? s.outcome.action}`));
}

export function renderWalk(x: LabWalk): HTMLElement {
  const out = h('div', {}, verdict(x));
  if (x.shadow) out.append(shadowSteps(x.shadow));
  out.append(served(x));
  if (!x.tlbHit) out.append(x.rows.length > 0 ? nestedGrid(x) : nativeTable(x));
  if (x.check.length) out.append(h('p', { class: 'fault', role: 'alert', id: 'w-check' }, '⚠ The explanation disagrees with the core: ' + x.check.join('; ')));
  out.append(countersTable(x));
  return out;
}

export function setupWalk(): LabHandle {
  let lab: Promise<WalkLab> | undefined;
  const listeners: (() => void)[] = [];
  const out = $('w-out');
  const rebuild = () => {
    lab = WalkLab.create(options());
    out.replaceChildren();
    for (const f of listeners) f();
  };
  for (const id of ['w-mode', 'w-glevels', 'w-gpage', 'w-elevels', 'w-epage', 'w-caches']) $(id).addEventListener('change', rebuild);
  const walk = async () => {
    if (!lab) return;
    let va: bigint;
    try { va = BigInt($<HTMLInputElement>('w-va').value.trim()); } catch {
      out.replaceChildren(h('p', { role: 'alert' }, 'The address must be a number (hex with 0x).'));
      return;
    }
    const l = await lab;
    const x = l.walk(BigInt.asUintN(64, va), {
      write: $<HTMLInputElement>('w-write').checked, fetch: $<HTMLInputElement>('w-fetch').checked, user: $<HTMLInputElement>('w-user').checked,
    });
    out.replaceChildren(renderWalk(x));
    for (const f of listeners) f();
  };
  $('walk-form').addEventListener('submit', (e) => { e.preventDefault(); void walk(); });
  $('w-flush').addEventListener('click', async () => { if (lab) { (await lab).flush(); for (const f of listeners) f(); } });
  const prog = $('w-program');
  for (const a of LAB_ADDRESSES) {
    const b = h('button', { type: 'button', title: a.label }, `${a.label}: ${hex(a.va)}`);
    b.addEventListener('click', () => {
      $<HTMLInputElement>('w-va').value = hex(a.va);
      $<HTMLInputElement>('w-write').checked = !!a.access.write;
      $<HTMLInputElement>('w-fetch').checked = !!a.access.fetch;
      $<HTMLInputElement>('w-user').checked = a.access.user ?? true;
      void walk();
    });
    prog.append(b);
  }
  rebuild();
  return { get: async () => lab!, onChange: (f) => listeners.push(f) };
}
