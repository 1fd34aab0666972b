// Every product experiment, registered by importing its module. The CLI imports this file;
// add one line per experiment module (each calls registerExperiment at import time, and
// may call setDefaultScenario to become what `memvisor run` runs without an argument).

import './translation-experiment.js';
import './register.js';
import './sharing-vms.js';
import './sampling-toucher.js';
