// The catalogue: every product experiment, registered in this one place. Experiment modules
// export a definition (defineExperiment); only the CLI (and library users who want the
// built-in kinds) import this file. The default scenario of `memvisor run` is the file
// scenarios/fig7-idle-tax.json (DEFAULT_SCENARIO in src/cli/run.ts), not an entry here.

import { defineExperiment, registerExperiment, type ExperimentDefinition } from './registry.js';
import { balloonPerfParams, runBalloonPerf } from './balloon-perf.js';
import { idleTaxParams, runIdleTax } from './idle-tax.js';
import { reclaimCompareParams, runReclaimCompare } from './reclaim-compare.js';
import { customHostParams, runCustomHost } from './custom-host.js';
import { translationExperiment } from './translation-experiment.js';
import { compareExperiment } from './compare-experiment.js';
import { sharingVmsExperiment } from './sharing-vms.js';
import { samplingToucherExperiment } from './sampling-toucher.js';
import { largePagesExperiment } from './large-pages.js';
import { ioRemapExperiment } from './io-remap.js';
import { numaExperiment } from './numa.js';
import { osGuestsExperiment } from './os-guests.js';
import { sharingOsExperiment } from './sharing-os.js';
import { migrationExperiment } from './migration.js';

export const CATALOGUE: readonly ExperimentDefinition[] = [
  translationExperiment,
  compareExperiment,
  defineExperiment({
    kind: 'balloon-perf', title: 'Figure 2: balloon performance',
    description: 'Throughput of a VM configured with a size vs a larger VM ballooned down to it.',
    schema: balloonPerfParams, run: runBalloonPerf,
  }),
  defineExperiment({
    kind: 'idle-tax', title: 'Figure 7: idle memory tax',
    description: 'An idle and an active VM with equal shares on an overcommitted host, at tax rates 0 and 0.75.',
    schema: idleTaxParams, run: runIdleTax,
  }),
  defineExperiment({
    kind: 'reclaim-compare', title: 'Reclamation techniques compared',
    description: 'Ballooning vs hypervisor swapping vs page sharing on the same overcommitted host.',
    schema: reclaimCompareParams, run: runReclaimCompare,
  }),
  defineExperiment({
    kind: 'host', title: 'A host of your own',
    description: 'VMs with workloads and min/max/shares, resource pools, and the memory manager\'s policies.',
    schema: customHostParams, run: runCustomHost,
  }),
  sharingVmsExperiment as ExperimentDefinition,
  samplingToucherExperiment as ExperimentDefinition,
  largePagesExperiment as ExperimentDefinition,
  ioRemapExperiment as ExperimentDefinition,
  numaExperiment as ExperimentDefinition,
  osGuestsExperiment as ExperimentDefinition,
  sharingOsExperiment as ExperimentDefinition,
  migrationExperiment as ExperimentDefinition,
] as ExperimentDefinition[];

for (const def of CATALOGUE) registerExperiment(def);
