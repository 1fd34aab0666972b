// The os-guests report: headline figures per guest and for the host, and vega-lite plots
// over virtual time of what the memory manager did to each memvisor-os guest (host frames
// held against its target, balloon size against the balloon target, swapped and shared
// pages) and what the guests got done (instructions retired, verified work units).

import type { OsGuestsParams, OsGuestsRun } from './os-guests.js';
import type { ExperimentOutput, Plot, Row } from './result.js';
import { SHARED_OWNER } from '../hypervisor/monitor/frames.js';

const round = (x: number, d = 2): number => Math.round(x * 10 ** d) / 10 ** d;
const X = { field: 't', type: 'quantitative', title: 'virtual seconds' } as const;
const COLOR = { field: 'guest', type: 'nominal', title: 'guest' } as const;

/** A line per guest of `field`, with an optional dashed line per guest of `dashed`. */
function lines(id: string, title: string, field: string, yTitle: string, caption: string, dashed?: string): Plot {
  const solid = { mark: { type: 'line', interpolate: 'step-after' }, encoding: { x: X, y: { field, type: 'quantitative', title: yTitle }, color: COLOR } };
  const layer = dashed
    ? [solid, { mark: { type: 'line', interpolate: 'step-after', strokeDash: [4, 3] }, encoding: { x: X, y: { field: dashed, type: 'quantitative' }, color: COLOR } }]
    : [solid];
  return { id, title, caption, vegaLite: { $schema: 'https://vega.github.io/schema/vega-lite/v6.json', data: { name: 'guests' }, width: 520, height: 220, layer } };
}

function guestSummary(r: OsGuestsRun): Record<string, number | string> {
  const out: Record<string, number | string> = {};
  for (const g of r.guests) {
    const c = r.checks.get(g.spec.name)!, rows = r.series.filter((x) => x.guest === g.spec.name);
    const last = rows[rows.length - 1];
    const n = g.spec.name;
    out[`${n}: command line`] = g.spec.cmdline;
    out[`${n}: instructions (M)`] = round(g.m.cpu.instructions() / 1e6, 1);
    out[`${n}: work units (verified checksum lines)`] = c.verified;
    out[`${n}: checksum problems`] = c.problems.length;
    out[`${n}: host MiB / target MiB at end`] = `${last.MiB} / ${last.targetMiB}`;
    out[`${n}: balloon MiB at end (largest)`] = `${last.balloonMiB} (${Math.max(...rows.map((x) => x.balloonMiB as number))})`;
    out[`${n}: stop`] = g.m.stopped ? g.m.stopped.stop : 'running';
  }
  return out;
}

export function osGuestsReport(p: OsGuestsParams, r: OsGuestsRun): ExperimentOutput {
  const { host } = r;
  const guestMiB = p.guests.reduce((a, g) => a + g.memMiB, 0);
  const problems = [...r.checks.entries()].flatMap(([n, c]) => c.problems.map((l) => `${n}: ${l}`));
  const verified = [...r.checks.values()].reduce((a, c) => a + c.verified, 0);
  const sw = host.swap?.stats();
  const counters = r.guests.map((g) => g.m.counters());
  const sum = (k: string) => counters.reduce((a, c) => a + (c[k] ?? 0), 0);
  const fc = host.hv.frames.counts(), shared = host.hv.frames.usedBy(SHARED_OWNER);
  const byVms = Object.values(fc.byVm).reduce((a, n) => a + n, 0);
  const summary: Record<string, number | string> = {
    guests: r.guests.length, 'guest memory (MiB)': guestMiB, 'host memory for VMs (MiB)': p.hostMiB,
    overcommit: round(guestMiB / p.hostMiB, 2), 'virtual seconds': round(r.seconds, 3), ended: r.ended,
    'instructions, all guests (M)': round(r.guests.reduce((a, g) => a + g.m.cpu.instructions(), 0) / 1e6, 1),
    'checksum lines verified': verified, 'checksum problems': problems.length,
    ...guestSummary(r),
    'host frames at end: guests + shared + free (VM pool)': `${byVms} + ${shared} + ${fc.vmFree} = ${byVms + shared + fc.vmFree} (${host.hv.frames.hypervisorStart})`,
    'host swap-outs': sw?.swapOuts ?? 0, 'host swap-ins': sw?.swapIns ?? 0,
    'frames saved by sharing': host.sharing?.stats.saved ?? 0, 'copy-on-write breaks': host.sharing?.stats.cowBreaks ?? 0,
    'reallocations (on free-memory events)': `${host.mgr.stats.rebalances} (${host.mgr.stats.eventRebalances})`,
    'out-of-frames exits resolved': sum('outOfFrames'), 'balloon protocol violations': sum('balloonViolations'),
    'doorbell rings': sum('doorbellRings'),
    ...(p.coherenceChecker ? { 'stale translation uses': sum('staleUses') } : {}),
  };
  const scaled = `${r.guests.length} guests of ${p.guests.map((g) => g.memMiB).join(' / ')} MiB on ${p.hostMiB} MiB for VMs ` +
    `(${round(guestMiB / p.hostMiB, 2)}× overcommitted), ${p.mode} paging, τ = ${p.policy.tau}, reallocation every ${p.policy.balancePeriod} s.`;
  const plots: Plot[] = [
    lines('os-allocation', 'Host memory held by each guest (MiB) and its target', 'MiB', 'host frames held (MiB)',
      `Solid: private host frames each guest holds (shared frames belong to page sharing); dashed: the manager's target ` +
      `(min-funding revocation with the idle tax). ${scaled}`, 'targetMiB'),
    lines('os-balloon', 'Balloon size (MiB) and the target the host set', 'balloonMiB', 'balloon (MiB)',
      'Solid: frames the guest\'s C driver holds locked (vmw_balloon-style, 2 MiB pages first); dashed: the target the manager ' +
      'set on the backdoor device, which rings the doorbell (an interrupt) so the driver runs at once. The driver rounds to ' +
      'whole 2 MiB pages and leaves a 512-frame slack, and never takes memory promised to processes.', 'balloonTargetMiB'),
    lines('os-swap', 'Pages swapped out by the host (MiB)', 'swappedMiB', 'host-swapped (MiB)',
      'Guest frames the hypervisor wrote to its swap file (random victims; what the balloon could not take); a touch faults one back.'),
    lines('os-sharing', 'Guest pages backed by shared frames (MiB)', 'sharedMiB', 'shared pages (MiB)',
      'Guest pages mapped to a content-shared frame (the identical kernel images, the touchers\' identical patterns, zero pages); a write breaks the sharing.'),
    lines('os-instructions', 'Progress: guest instructions retired (millions)', 'instructionsM', 'instructions (M)',
      'Cumulative instructions each guest retired (programs, kernel and balloon driver alike: the driver\'s time is guest time).'),
    lines('os-units', 'Progress: work units (verified checksum lines)', 'units', 'work units',
      'One unit per line a program prints after verifying its data: a toucher pass, a page-cache round, a random run, a fork tree. ' +
      'Every line is checked again on the host against a model of the program.'),
  ];
  return {
    title: 'memvisor-os guests under the memory manager',
    summary, plots,
    series: { guests: r.series, host: r.hostSeries, problems: problems.map((line): Row => ({ line })) },
    notes: [
      problems.length ? `Checksum problems: ${problems.slice(0, 5).join(' | ')}${problems.length > 5 ? ' …' : ''}` :
        `All ${verified} checksum lines the guests printed match the model of their programs.`,
      'Time: the kernel clocks its timer at an assumed 2 GHz (no CPUID 0x15 on this board), so the host runs at 2e9 cycles per ' +
        'virtual second and the programs sleep between bursts of work.',
    ],
  };
}
