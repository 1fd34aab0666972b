// The random corpus of the differential test: batches of generated cases, each batch with
// its own data image, grown until enough instructions were really executed on the host.

import { Rng } from '../../src/util/rng.js';
import { CODE_BASE } from './layout.js';
import { buildCase, dataImage, type GenCase } from './gen/sequence.js';
import type { Features } from './gen/gen.js';
import type { NativeHelper, NativeResult } from './native/runner.js';

export interface CorpusBatch { image: Uint8Array; cases: GenCase[]; native: NativeResult[] }

export interface Corpus {
  batches: CorpusBatch[];
  /** Generated (non-setup) instructions at or before each case's stopping point, by class. */
  executed: Map<string, number>;
  total: number;
  setup: number;
}

const CASES_PER_BATCH = 250;
/** Generated instructions per case (CPU_DIFF_CASE_LEN explores longer sequences). */
const INSNS_PER_CASE = Number(process.env.CPU_DIFF_CASE_LEN ?? 30);

/** Instructions a case ran before it stopped, in layout order (skipped blocks included). */
export function reached(c: GenCase, r: { status: string; rip: bigint }): GenCase['meta'] {
  if (r.status === 'end') return c.meta;
  const stop = Number(r.rip - BigInt(CODE_BASE));
  const inside = stop >= 0 && stop <= c.code.length;
  // The instruction at a fault RIP counts: it ran and faulted. Outside the snippet: a fetch fault after a jump.
  return inside ? c.meta.filter((m) => m.off <= stop) : c.meta;
}

export function buildCorpus(helper: NativeHelper, seed: number, features: Features, minInsns: number): Corpus {
  const rng = new Rng(seed);
  const corpus: Corpus = { batches: [], executed: new Map(), total: 0, setup: 0 };
  while (corpus.total < minInsns) {
    const fresh: CorpusBatch[] = [];
    for (let b = 0; b < 8; b++) {
      const image = dataImage(rng);
      fresh.push({ image, cases: Array.from({ length: CASES_PER_BATCH }, () => buildCase(rng, features, INSNS_PER_CASE)), native: [] });
    }
    const results = helper.run(fresh.map((b) => ({ image: b.image, cases: b.cases })));
    fresh.forEach((b, i) => {
      b.native = results[i];
      b.cases.forEach((c, k) => {
        for (const m of reached(c, b.native[k])) {
          if (m.cls === 'setup') { corpus.setup++; continue; }
          corpus.executed.set(m.cls, (corpus.executed.get(m.cls) ?? 0) + 1);
          corpus.total++;
        }
      });
    });
    corpus.batches.push(...fresh);
  }
  return corpus;
}

/** Class "add E,Gr/64" → family "add"; sizes and forms are kept in the full class. */
export const family = (cls: string) => cls.split(/[ /]/)[0];
