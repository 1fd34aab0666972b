// Runs an access batch as the fast-path property tests compare it: `repeat` times,
// stepping over each exit, collecting the exits and the ops' values seen.
import type { AccessBatch, Cpu } from '../../src/index.js';

/** Runs the batch `repeat` times, stepping over each exit; the exits and op values seen. */
export function runStepping(cpu: Cpu, b: AccessBatch, repeat: number): unknown[] {
  const seen: unknown[] = [];
  for (let r = 0; r < repeat; r++) {
    for (let at = 0; at < b.length;) {
      const x = cpu.execute(b, at);
      seen.push(x.exit);
      if (x.exit.reason === 'end') break;
      at = (x.exit as { index: number }).index + 1;
    }
    seen.push(Array.from({ length: b.length }, (_, i) => b.value(i)));
  }
  return seen;
}
