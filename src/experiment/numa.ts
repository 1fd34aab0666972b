// NUMA placement and rebalancing (issue 17 item 2): a 2-node host where a VM's home node
// is full when it starts, so most of its memory lands on the other node; at `freeAtSecond`
// the VM hogging the home node powers off, and from then on the balancer moves the VM's
// remote pages home, `pagesPerSecond` at a time, the pages touched in the last second first.
//
// The VM runs random 8-byte loads over its working set through the vCPU (guest page
// tables, EPT, TLBs: the core's cycles), and each load also pays a DRAM access: local or
// remote latency by the node of the frame it reaches (NUMA_COSTS), counted in TypeScript
// from the p2m (the core's cost model has no NUMA term). Throughput = loads per simulated
// second of those cycles. Per simulated second: remote fraction of the loads and of the
// pages, throughput, pages migrated.

import { z } from 'zod';
import { Hypervisor } from '../hypervisor/monitor/hypervisor.js';
import { NumaBalancer, placement, NUMA_COSTS } from '../hypervisor/pagers/numa.js';
import { PageTableBuilder, FrameBump } from '../core/pagetable.js';
import { CR0, CR4, EFER, PAGE_2M } from '../core/bits.js';
import type { Gfn } from '../core/addr.js';
import { Rng } from '../util/rng.js';
import { defineExperiment } from './registry.js';
import type { ExperimentContext, ExperimentOutput, Row } from './result.js';
import { round } from './units.js';

const MiB = 2 ** 20;
const TABLES = 0x10_0000n, TABLES_END = 0x20_0000n;
const DATA = 0x20_0000n;
const VBASE = 0x7f00_0000_0000n;
const HV_MIB = 8;

export const numaParams = z.object({
  /** Memory per node (the VM pool is 2 × this). */
  nodeMiB: z.number().int().min(8).max(1024).default(32),
  vmMiB: z.number().int().min(4).max(1024).default(24),
  workingSetMiB: z.number().int().min(1).max(1020).default(20),
  /** MiB of the home node the other VM holds until freeAtSecond. */
  hogMiB: z.number().int().min(0).max(1024).default(28),
  freeAtSecond: z.number().int().min(0).max(600).default(2),
  seconds: z.number().int().min(1).max(600).default(12),
  /** Loads per simulated second of the timeline (a sample of the VM's accesses). */
  loadsPerSecond: z.number().int().min(1000).max(5_000_000).default(100_000),
  pagesPerSecond: z.number().int().min(0).max(1_000_000).default(1024),
  localCycles: z.number().positive().default(NUMA_COSTS.local),
  remoteCycles: z.number().positive().default(NUMA_COSTS.remote),
  hz: z.number().min(1e6).max(1e10).default(2.5e9),
}).strict().superRefine((p, ctx) => {
  if (p.workingSetMiB + 2 > p.vmMiB) ctx.addIssue({ code: 'custom', path: ['workingSetMiB'], message: `${p.workingSetMiB} MiB of data from gpa 2 MiB does not fit a ${p.vmMiB} MiB VM (at most ${p.vmMiB - 2} MiB)` });
  if (p.hogMiB > p.nodeMiB) ctx.addIssue({ code: 'custom', path: ['hogMiB'], message: `${p.hogMiB} MiB does not fit a ${p.nodeMiB} MiB node` });
  if (p.vmMiB + p.hogMiB > 2 * p.nodeMiB) ctx.addIssue({ code: 'custom', path: ['vmMiB'], message: `the VM (${p.vmMiB} MiB) and the hog (${p.hogMiB} MiB) do not fit the host's ${2 * p.nodeMiB} MiB` });
  if (p.freeAtSecond >= p.seconds) ctx.addIssue({ code: 'custom', path: ['freeAtSecond'], message: `must be before the end (${p.seconds} s)` });
});
export type NumaParams = z.infer<typeof numaParams>;

export async function runNuma(p: NumaParams, ctx: ExperimentContext): Promise<ExperimentOutput> {
  const hv = await Hypervisor.create({ hostMemoryBytes: (2 * p.nodeMiB + HV_MIB) * MiB, hypervisorBytes: HV_MIB * MiB, numaNodes: 2 });
  let hog = p.hogMiB > 0 ? hv.createVm({ memoryBytes: p.hogMiB * MiB, mode: 'nested' }) : null;
  hog?.prefault(0n, BigInt(p.hogMiB * MiB));
  const vm = hv.createVm({ memoryBytes: p.vmMiB * MiB, mode: 'nested' });
  hv.frames.setHome(vm.id, 0);
  const gmem = vm.memory.asPhysicalMemory();
  const pt = new PageTableBuilder(gmem, new FrameBump(gmem, TABLES, TABLES_END), 4);
  const ws = p.workingSetMiB * MiB;
  pt.mapRange(VBASE, DATA, ws, 4096, { accessed: true, dirty: true });
  vm.prefault(0n, BigInt(p.vmMiB * MiB)); // the VM's memory as its OS left it at boot
  const vcpu = vm.vcpus[0];
  vcpu.setRegisters({ cr0: CR0.PG | CR0.WP, cr3: pt.root, cr4: CR4.PAE, efer: EFER.LME | EFER.NXE, cpl: 3 });
  const bal = new NumaBalancer(hv.frames, hv.machine.memory, { pagesPerPass: p.pagesPerSecond, costs: { local: p.localCycles, remote: p.remoteCycles, migrate: NUMA_COSTS.migrate } });
  const rng = new Rng(ctx.seed);
  const batch = hv.machine.createBatch(1 << 14);
  const dataGfn = Number(DATA >> 12n), wsPages = ws / 4096;
  const rows: Row[] = [];
  let hot: number[] = [];

  for (let t = 0; t < p.seconds; t++) {
    ctx.progress(t / p.seconds, `second ${t}`);
    let migrated = 0, migrateCycles = 0;
    if (t === p.freeAtSecond && hog) { hv.destroyVm(hog); hog = null; }
    if (t >= p.freeAtSecond) { const r = bal.pass(vm, hot); migrated = r.migrated; migrateCycles = r.cycles; }
    // One simulated second's sample of loads: translation cycles from the core, DRAM from the node.
    const touched = new Set<number>();
    let remote = 0, dram = 0, core = 0;
    for (let done = 0; done < p.loadsPerSecond;) {
      const n = Math.min(batch.capacity, p.loadsPerSecond - done);
      batch.clear();
      for (let i = 0; i < n; i++) {
        const page = rng.below(wsPages);
        touched.add(dataGfn + page);
        batch.load(VBASE + BigInt(page * 4096 + rng.below(512) * 8));
        const node = hv.frames.nodeOf(vm.p2m.lookup((dataGfn + page) as Gfn)!);
        if (node !== 0) { remote++; dram += p.remoteCycles; } else dram += p.localCycles;
      }
      const c0 = vcpu.cycles();
      const x = vcpu.run(batch);
      if (x.reason !== 'end') throw new Error(`numa: unexpected exit ${x.reason}`);
      core += vcpu.cycles() - c0;
      done += n;
    }
    hot = [...touched];
    const pl = placement(vm, hv.frames);
    rows.push({
      t, remoteLoadPct: round((100 * remote) / p.loadsPerSecond, 2), remotePagePct: round(100 * pl.remote, 2),
      pagesHome: pl.perNode[0], pagesRemote: pl.pages - pl.perNode[0], migrated,
      cyclesPerLoad: round((core + dram + migrateCycles) / p.loadsPerSecond, 2),
      loadsPerSecond: round((p.loadsPerSecond * p.hz) / (core + dram + migrateCycles) / 1e6, 3),
    });
  }
  ctx.progress(1);
  const first = rows[0], last = rows[rows.length - 1];
  return {
    title: 'NUMA: a VM spilled to the remote node is migrated home; remote accesses fall and throughput recovers',
    summary: {
      host: `2 nodes × ${p.nodeMiB} MiB; DRAM ${p.localCycles} cycles local, ${p.remoteCycles} remote`,
      VM: `${p.vmMiB} MiB nested, home node 0; random loads over ${p.workingSetMiB} MiB`,
      'remote loads: start → end': `${first.remoteLoadPct} % → ${last.remoteLoadPct} %`,
      'throughput (M loads/s): start → end': `${first.loadsPerSecond} → ${last.loadsPerSecond}`,
      'pages migrated': rows.reduce((s, r) => s + (r.migrated as number), 0),
    },
    series: { timeline: rows },
    plots: [
      line('numa-remote', 'Remote accesses and remote pages (%)', ['remoteLoadPct', 'remotePagePct'], '%',
        `The home node frees at ${p.freeAtSecond} s; the balancer then moves up to ${p.pagesPerSecond} pages/s home, last second's pages first.`, p),
      line('numa-throughput', 'Throughput (M loads per simulated second)', ['loadsPerSecond'], 'M loads/s',
        'Loads pay translation (core cycles) plus DRAM latency by node, plus the migrations\' copies in the seconds they happen.', p),
    ],
    notes: [
      `Latencies: ${p.localCycles} local vs ${p.remoteCycles} remote cycles (~90 vs ~140 ns at 2.5 GHz, a 2-socket server's ratio of ~1.5); a migration costs ${NUMA_COSTS.migrate} cycles (copy and remap).`,
      'Migration: allocate on the home node, copy, remap the p2m (the EPT follows, one INVEPT), free the old frame. Shared, swapped, ballooned or trapped pages stay.',
      'Read-only shared pages are replicated per node by the balancer when page sharing is on (not in this scenario: see test/hypervisor/pagers/numa.test.ts).',
    ],
  };
}

function line(id: string, title: string, fields: string[], yTitle: string, caption: string, p: NumaParams) {
  return {
    id, title, caption,
    vegaLite: {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json', data: { name: 'timeline' }, width: 420, height: 220,
      layer: [{
        transform: [{ fold: fields, as: ['metric', 'value'] }],
        mark: { type: 'line', point: true },
        encoding: {
          x: { field: 't', type: 'quantitative', title: 'simulated seconds' },
          y: { field: 'value', type: 'quantitative', title: yTitle },
          color: { field: 'metric', type: 'nominal', title: null },
        },
      }, {
        data: { values: [{ t: p.freeAtSecond }] },
        mark: { type: 'rule', strokeDash: [4, 4], color: 'gray' },
        encoding: { x: { field: 't', type: 'quantitative' } },
      }],
    },
  };
}

export const numaExperiment = defineExperiment({
  kind: 'numa',
  title: 'NUMA placement and rebalancing',
  description: 'A VM whose home node was full runs remote; once it frees, the balancer migrates pages home: remote fraction and throughput over time.',
  schema: numaParams,
  run: (params, ctx) => runNuma(params, ctx),
});
