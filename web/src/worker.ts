// Runs a scenario in a Web Worker: the same registry, zod schemas and runner as the CLI.
// Messages in: { scenario }; out: { progress, label } …, then { result } or { error }.
import '../../src/experiment/catalogue.js';
import { runScenario } from '../../src/experiment/runner.js';

self.onmessage = async (e: MessageEvent<{ scenario: unknown }>) => {
  try {
    let last = 0;
    const result = await runScenario(e.data.scenario, {
      source: 'the edited scenario',
      progress: (f, label) => {
        const now = performance.now();
        if (now - last > 50 || f >= 1) { last = now; postMessage({ progress: f, label }); }
      },
    });
    postMessage({ result });
  } catch (err) {
    postMessage({ error: (err as Error).message });
  }
};
