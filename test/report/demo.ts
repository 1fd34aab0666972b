// A tiny demonstration experiment for the report tests (test-only: product code registers
// real experiments). Its schema has an array of VMs with a cross-field check, so validation
// messages with nested paths can be tested; its result has two series and two plots.

import { z } from 'zod';
import { Rng } from '../../src/util/rng.js';
import { registerExperiment, setDefaultScenario } from '../../src/experiment/registry.js';
import type { ExperimentOutput } from '../../src/report/result.js';

export const demoParams = z.object({
  vms: z.array(z.object({
    name: z.string().min(1),
    min: z.number().int().nonnegative(),
    max: z.number().int().positive(),
  }).strict()).min(1),
  steps: z.number().int().positive().max(1000),
  label: z.string().default('demo, "quoted"'),
}).strict().superRefine((p, ctx) => {
  p.vms.forEach((vm, i) => {
    if (vm.min > vm.max) ctx.addIssue({ code: 'custom', path: ['vms', i, 'min'], message: 'must be <= max' });
  });
});

export const DEMO_PAPER = 'The paper reports that each VM converges to its share within a few sampling periods.';

export function demoOutput(p: z.output<typeof demoParams>, seed: number, progress = (_f: number) => {}): ExperimentOutput {
  const rng = new Rng(seed);
  const memory = [];
  for (let t = 0; t < p.steps; t++) {
    progress(t / p.steps);
    for (const vm of p.vms) memory.push({ t, vm: vm.name, mb: vm.min + rng.below(vm.max - vm.min + 1) });
  }
  return {
    summary: { vms: p.vms.length, steps: p.steps, label: p.label },
    series: {
      memory,
      limits: p.vms.map((vm) => ({ vm: vm.name, min: vm.min, max: vm.max, note: p.label })),
    },
    plots: [
      {
        id: 'memory', title: 'Memory per VM over time', paper: DEMO_PAPER, caption: 'Random walk within [min, max].',
        vegaLite: {
          data: { name: 'memory' }, mark: { type: 'line', clip: true }, width: 300, height: 150,
          encoding: { x: { field: 't', type: 'quantitative' }, y: { field: 'mb', type: 'quantitative' }, color: { field: 'vm', type: 'nominal' } },
        },
      },
      {
        id: 'limits', title: 'Configured maximum <per VM>',
        vegaLite: {
          data: { name: 'limits' }, mark: 'bar', width: 200,
          encoding: { x: { field: 'vm', type: 'nominal' }, y: { field: 'max', type: 'quantitative' } },
        },
      },
    ],
    notes: ['Demo only & not a real experiment.'],
  };
}

export const DEMO_SCENARIO = {
  kind: 'demo', name: 'demo-run', seed: 7,
  vms: [{ name: 'a', min: 10, max: 50 }, { name: 'b', min: 0, max: 30 }],
};

export const demo = registerExperiment({
  kind: 'demo',
  title: 'Demo experiment',
  schema: demoParams,
  defaults: { steps: 5 },
  run: (p, ctx) => demoOutput(p, ctx.seed, (f) => ctx.progress(f)),
});
setDefaultScenario(DEMO_SCENARIO);
