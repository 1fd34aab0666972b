// Statistics of a whole run, as gem5's stats.txt: every counter of every VM and vCPU (and of
// every bare Cpu of machines with no hypervisor), one line each with a description and unit.
// collectStats() watches Machine and Hypervisor creation while a run goes on; lines() then
// reads what was made. Names: hv0.vm1.vcpu0.walks, hv0.frames.free, machine0.cpu0.walks.
// A hypervisor's Cpus appear under its vCPUs (walker Cpus of shadow MMUs are not listed).

import { observeMachines, type Machine } from '../../core/machine.js';
import { CORE_COUNTER_DOCS, type CounterDoc } from '../../core/counter-docs.js';
import { observeHypervisors, type Hypervisor } from './hypervisor.js';

export interface StatLine { name: string; value: number; unit: string; description: string }

export const VCPU_STAT_DOCS: Readonly<Record<string, CounterDoc>> = {
  vmExits: { unit: 'exits', description: 'exits to the hypervisor (a guest #PF under native or nested paging is not one)' },
  handled: { unit: 'exits', description: 'exits the hypervisor handled without returning to the caller' },
  pagesBacked: { unit: 'pages', description: "guest frames this vCPU's exits backed" },
  hvCycles: { unit: 'modeled cycles', description: 'exits and hypervisor work' },
  resolved: { unit: 'exits', description: 'exits a pager resolved (swap-in, copy-on-write break, sampling trap)' },
  stallCycles: { unit: 'modeled cycles', description: 'time stalled (e.g. waiting on swap I/O)' },
  coreCycles: { unit: 'modeled cycles', description: "the core's cost model alone (cycles less hvCycles and stallCycles)" },
  cycles: { unit: 'modeled cycles', description: 'core cost model + hvCycles + stallCycles' },
};

export const VM_STAT_DOCS: Readonly<Record<string, CounterDoc>> = {
  pagesBacked: { unit: 'pages', description: 'guest frames backed (first touch, prefault, host-side writes)' },
  tableFrames: { unit: 'frames', description: 'hypervisor-region frames in use for this VM (EPT and shadow tables)' },
  overheadFrames: { unit: 'frames', description: 'hypervisor-region frames of this VM\'s fixed and per-MiB overhead memory' },
  invepts: { unit: 'instructions', description: 'INVEPTs issued after EPT entries changed' },
  shadowZaps: { unit: 'events', description: 'shadow-table zaps caused by p2m changes or host writes to guest page tables' },
  resolves: { unit: 'events', description: 'pager resolutions (swap-ins, copy-on-write breaks, ended traps)' },
  pagerCycles: { unit: 'modeled cycles', description: 'cycles of those pager resolutions' },
  memoryBytes: { unit: 'bytes', description: 'configured guest-physical memory' },
};

export const FRAME_DOCS: Readonly<Record<string, CounterDoc>> = {
  total: { unit: 'frames', description: 'host frames (4 KiB) in all' },
  free: { unit: 'frames', description: 'free host frames' },
  vmFree: { unit: 'frames', description: 'free frames of the VM pool' },
  hypervisorFree: { unit: 'frames', description: "free frames of the hypervisor's own region" },
  hypervisor: { unit: 'frames', description: "frames in use by the hypervisor's structures" },
};

const EXIT_DOC = (reason: string): CounterDoc => ({ unit: 'exits', description: `VM exits with reason ${reason} (handled or returned)` });
const UNKNOWN: CounterDoc = { unit: '', description: '(undocumented counter)' };

export interface StatsCollector {
  /** Stops watching and returns the lines for everything created while it watched. */
  finish(): StatLine[];
}

export function collectStats(): StatsCollector {
  const machines: Machine[] = [], hvs: Hypervisor[] = [];
  const stopM = observeMachines((m) => machines.push(m));
  const stopH = observeHypervisors((h) => hvs.push(h));
  return {
    finish() {
      stopM(); stopH();
      const owned = new Set(hvs.map((h) => h.machine));
      const out: StatLine[] = [];
      hvs.forEach((h, i) => hypervisorLines(h, `hv${i}`, out));
      machines.filter((m) => !owned.has(m)).forEach((m, i) => {
        m.cpus().forEach((c, k) => counterLines(c.counters(), `machine${i}.cpu${k}`, CORE_COUNTER_DOCS, out));
      });
      return out;
    },
  };
}

function hypervisorLines(h: Hypervisor, at: string, out: StatLine[]): void {
  const { byVm: _b, ...frames } = h.counts();
  counterLines(frames, `${at}.frames`, FRAME_DOCS, out);
  for (const vm of h.list()) {
    const vmAt = `${at}.vm${vm.id}`;
    counterLines({ memoryBytes: Number(vm.memoryBytes), ...vm.stats }, vmAt, VM_STAT_DOCS, out);
    vm.vcpus.forEach((v, k) => {
      counterLines(v.counters(), `${vmAt}.vcpu${k}`, { ...CORE_COUNTER_DOCS, ...VCPU_STAT_DOCS }, out);
    });
  }
}

function counterLines(values: Record<string, number>, at: string, docs: Readonly<Record<string, CounterDoc>>, out: StatLine[]): void {
  for (const [k, v] of Object.entries(values)) out.push({ name: `${at}.${k}`, value: v, ...docFor(k, docs) });
}

/** A counter's doc; exit_<reason> counters (Vcpu.counters) are documented by their reason. */
export function docFor(key: string, docs: Readonly<Record<string, CounterDoc>>): CounterDoc {
  const exit = /^exit_(.+)$/.exec(key);
  return docs[key] ?? (exit ? EXIT_DOC(exit[1]) : UNKNOWN);
}

/** The stats.txt text: one `name  value  # description (unit)` line per statistic. */
export function formatStats(lines: readonly StatLine[]): string {
  const w = Math.max(10, ...lines.map((l) => l.name.length));
  const vw = Math.max(5, ...lines.map((l) => fmt(l.value).length));
  const body = lines.map((l) => `${l.name.padEnd(w)}  ${fmt(l.value).padStart(vw)}  # ${l.description}${l.unit ? ` (${l.unit})` : ''}`);
  return ['---------- Begin Simulation Statistics ----------', ...body, '---------- End Simulation Statistics   ----------', ''].join('\n');
}

const fmt = (v: number) => (Number.isInteger(v) ? String(v) : v.toFixed(6));
