// Runs a scenario in a Web Worker: the same registry, zod schemas and runner as the CLI.
// Messages in: { scenario }; out: { progress, label } …, then { result } or { error }.
import '../../src/experiment/catalogue.js';
import { runScenario } from '../../src/experiment/runner.js';
import { provideShippedOs } from '../../src/board/shipped-os.js';

// The shipped C kernel, bundled when it is in the checkout: the kinds that boot it
// (os-guests, sharing-os) read it through provideShippedOs, as the CLI reads it from disk.
const shippedOs = Object.values(import.meta.glob('../../guests/os/bin/*.elf', { query: '?url', import: 'default', eager: true }) as Record<string, string>)[0];

async function loadShippedOs(): Promise<void> {
  if (!shippedOs) return; // a kind that needs it then says so
  const r = await fetch(shippedOs);
  if (r.ok) provideShippedOs(new Uint8Array(await r.arrayBuffer()));
}

self.onmessage = async (e: MessageEvent<{ scenario: unknown }>) => {
  try {
    await loadShippedOs();
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
