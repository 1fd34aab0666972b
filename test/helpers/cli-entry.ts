// What bin/memvisor.mjs does, on the sources.
import { main } from '../../src/cli/main.js';

await main();
