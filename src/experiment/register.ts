// Registers the paper's experiments that live in this folder with the report registry,
// and makes Figure 7 (the idle memory tax) what `memvisor run` runs without an argument.

import { registerExperiment, setDefaultScenario } from './registry.js';
import { balloonPerfParams, runBalloonPerf } from './balloon-perf.js';
import { idleTaxParams, runIdleTax } from './idle-tax.js';
import { reclaimCompareParams, runReclaimCompare } from './reclaim-compare.js';
import { customHostParams, runCustomHost } from './custom-host.js';

registerExperiment({
  kind: 'balloon-perf', title: 'Figure 2: balloon performance',
  description: 'Throughput of a VM configured with a size vs a larger VM ballooned down to it.',
  schema: balloonPerfParams, run: runBalloonPerf,
});

registerExperiment({
  kind: 'idle-tax', title: 'Figure 7: idle memory tax',
  description: 'An idle and an active VM with equal shares on an overcommitted host, at tax rates 0 and 0.75.',
  schema: idleTaxParams, run: runIdleTax,
});

registerExperiment({
  kind: 'reclaim-compare', title: 'Reclamation techniques compared',
  description: 'Ballooning vs hypervisor swapping vs page sharing on the same overcommitted host.',
  schema: reclaimCompareParams, run: runReclaimCompare,
});

registerExperiment({
  kind: 'host', title: 'A host of your own',
  description: 'VMs with workloads and min/max/shares, resource pools, and the memory manager\'s policies.',
  schema: customHostParams, run: runCustomHost,
});

setDefaultScenario({ kind: 'idle-tax', name: 'fig7-idle-tax', seed: 1,
  description: 'The default demonstration: Figure 7 of the paper, scaled down (16 MiB VMs).' });
