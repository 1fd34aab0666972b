// The page: four panels over the same library the CLI uses (src/), loaded in the browser.
import { setupTabs } from './tabs.js';
import { setupWalk } from './walk.js';
import { setupTlb } from './tlb.js';
import { setupExperiments } from './experiments.js';
import { setupOs } from './os.js';

setupTabs();
const lab = setupWalk();
setupTlb(lab);
setupExperiments();
setupOs();
