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

/** The control-register and privilege fields of a case (spread into its fc.record). */
export const controlArbs = {
  cpl: fc.constantFrom(0, 0, 3), wp: fc.boolean(), smap: fc.boolean(), smep: fc.boolean(), ac: fc.boolean(),
  pke: fc.boolean(), pcide: fc.boolean(), pge: fc.boolean(), pkru: fc.integer({ min: 0, max: 0xff }),
};

type BatchOp = ReturnType<ReturnType<typeof batchOpArb>['generate']>['value'];

/** Appends the drawn ops to b: each at vaOfPage(page) + offset; MOV CR3 reloads `root`. */
export function pushOps(b: AccessBatch, ops: readonly BatchOp[], vaOfPage: (k: number) => bigint, root: bigint): void {
  for (const o of ops) {
    const va = vaOfPage(o.page) + BigInt(o.offset);
    const opt = { user: o.user, implicit: o.implicit };
    if (o.kind === 'load') b.load(va, o.size, opt);
    else if (o.kind === 'store') b.store(va, o.value, o.size, opt);
    else if (o.kind === 'translate') b.translate(va, opt);
    else if (o.kind === 'fetch') b.fetch(va, o.size, opt);
    else if (o.kind === 'invlpg') b.invlpg(va);
    // the same root: with PCIDE, PCID 0/8/16/24, and bit 63 (keep that PCID's entries) at times
    else if (o.kind === 'movCr3') b.movCr3(root | (o.value & 0x18n) | ((o.value & 0x20n) !== 0n ? 1n << 63n : 0n));
    else throw new Error(`pushOps: no op kind ${o.kind}`);
  }
}
