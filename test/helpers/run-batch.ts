// Runs an access batch as the fast-path property tests compare it: `repeat` times,
// stepping over each exit, collecting the exits and the ops' values seen.
import fc from 'fast-check';
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

/**
 * A batch op as the fast-path property tests draw it: a kind from `kinds` (repeat a kind
 * to weight it), a page 0..maxPage (the test says which are mapped), an aligned or any
 * offset, mostly 8-byte sizes, rarely user-forced or implicit, and a store value.
 */
export function batchOpArb<K extends string>(kinds: readonly K[], maxPage: number) {
  return fc.record({
    kind: fc.constantFrom(...kinds),
    page: fc.integer({ min: 0, max: maxPage }),
    offset: fc.oneof(fc.integer({ min: 0, max: 511 }).map((x) => x * 8), fc.integer({ min: 0, max: 4095 })),
    size: fc.oneof(fc.constant(8), fc.constant(8), fc.integer({ min: 1, max: 8 })),
    user: fc.integer({ min: 0, max: 15 }).map((x) => x === 0),
    implicit: fc.integer({ min: 0, max: 31 }).map((x) => x === 0),
    value: fc.bigInt(0n, (1n << 64n) - 1n),
  });
}
