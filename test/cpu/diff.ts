// Runs a corpus (or the fixed vectors) through the interpreter, compares with the host,
// and pins every mismatch on one instruction: all prefixes of a mismatching snippet run on
// both sides, and the first prefix that differs names the culprit (its last instruction).

import { CODE_BASE } from './layout.js';
import { differences, fromNative, type Outcome } from './compare.js';
import { undefinedAt, type GenCase } from './gen/sequence.js';
import type { Interp } from './interp.js';
import type { NativeHelper } from './native/runner.js';
import type { Corpus } from './corpus.js';

export interface Mismatch {
  /** Class of the first instruction after which the two sides differ. */
  culprit: string;
  /** The minimal prefix that differs, as hex, with its inputs. */
  code: string;
  gpr: bigint[];
  rflags: bigint;
  diffs: string[];
}

export function compareCase(interp: Interp, c: GenCase, image: Uint8Array, hw: Outcome): string[] {
  const em = interp.run(c, image);
  return differences(hw, em, undefinedAt(c, hw.rip));
}

/** The snippet cut after instruction k (in layout order); flags as undefined as they may be there. */
function prefix(c: GenCase, k: number): GenCase {
  const m = c.meta[k];
  const next = c.meta[k + 1];
  return { ...c, code: c.code.slice(0, m.off + m.len), meta: c.meta.slice(0, k + 1), uEnd: next ? next.uBefore : c.uEnd };
}

/** Pins each mismatching case on its first differing instruction (at most `limit` cases). */
export function pinMismatches(helper: NativeHelper, interp: Interp, bad: { c: GenCase; image: Uint8Array; diffs: string[] }[], limit = 300): Mismatch[] {
  const todo = bad.slice(0, limit);
  const batches = todo.map(({ c, image }) => ({ image, cases: c.meta.map((_, k) => prefix(c, k)) }));
  const native = helper.run(batches);
  return todo.map(({ c, image }, i) => {
    const cases = batches[i].cases;
    for (let k = 0; k < cases.length; k++) {
      if (c.meta[k].noCut) continue;
      const hw = fromNative(native[i][k], image);
      const d = differences(hw, interp.run(cases[k], image), undefinedAt(cases[k], hw.rip));
      if (d.length) return { culprit: c.meta[k].cls, code: hexOf(cases[k].code), gpr: c.gpr, rflags: c.rflags, diffs: d };
    }
    // Only the whole snippet differs (e.g. a jump into a later instruction): blame the last one.
    return { culprit: `${c.meta[c.meta.length - 1]?.cls ?? '?'} (whole snippet only)`, code: hexOf(c.code), gpr: c.gpr, rflags: c.rflags, diffs: bad[i].diffs };
  });
}

const hexOf = (b: Uint8Array) => Buffer.from(b).toString('hex');

export interface DiffReport { cases: number; mismatching: { c: GenCase; image: Uint8Array; diffs: string[] }[] }

export function diffCorpus(interp: Interp, corpus: Corpus): DiffReport {
  const mismatching: DiffReport['mismatching'] = [];
  let cases = 0;
  for (const b of corpus.batches) {
    b.cases.forEach((c, i) => {
      cases++;
      const d = compareCase(interp, c, b.image, fromNative(b.native[i], b.image));
      if (d.length) mismatching.push({ c, image: b.image, diffs: d });
    });
  }
  return { cases, mismatching };
}

export function describeMismatch(m: Mismatch): string {
  return `${m.culprit}\n  code ${m.code} at ${CODE_BASE.toString(16)}\n  rflags 0x${m.rflags.toString(16)} gpr ${m.gpr.map((g) => g.toString(16)).join(' ')}\n  ${m.diffs.join('\n  ')}`;
}
