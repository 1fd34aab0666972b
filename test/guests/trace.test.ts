// Trace replay of a real program's lackey trace (test/data/malloc-sum.lackey, recorded with
// `valgrind --tool=lackey --trace-mem=yes` from test/data/malloc-sum.c): the counts replayed
// match counts taken independently from the file, and every distinct page faults in once.
import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import { parseLackey, traceStats, TraceReplay } from '../../guests/trace.js';
import { bootKernel, dataHash, MODES } from './setup.js';
import { independentCounts } from '../helpers/trace-counts.js';

const text = readFileSync(new URL('../data/malloc-sum.lackey', import.meta.url), 'utf8');

/** The file's counts from the independent counter (no memvisor parser involved). */
function independent(): { I: number; L: number; S: number; M: number; accesses: number; pages: number } {
  const { pages2M: _p2, ...c } = independentCounts(text);
  return c;
}

describe('lackey trace replay', () => {
  it('parses the shipped trace: counts match an independent count of the file', () => {
    const exp = independent();
    expect(exp.accesses).toBeGreaterThan(5000);
    expect(exp.I).toBeGreaterThan(0); expect(exp.L).toBeGreaterThan(0); expect(exp.S).toBeGreaterThan(0); expect(exp.M).toBeGreaterThan(0);
    expect(traceStats(parseLackey(text))).toEqual(exp);
    expect(parseLackey('==1== Lackey\nI  0401ab70,3\n S 1fff000778,8\n--1-- x\n')).toEqual([
      { kind: 'I', addr: 0x401ab70, size: 3 }, { kind: 'S', addr: 0x1fff000778, size: 8 }]);
  });

  it('replays in every mode: accesses and distinct pages match the trace, one demand-zero fault per page', async () => {
    const exp = independent();
    const snaps = [];
    for (const mode of MODES) {
      const { k } = await bootKernel(mode, 8);
      const w = new TraceReplay(parseLackey(text));
      k.start(w);
      k.runFor(Infinity);
      expect(w.replayed).toEqual(exp);
      expect(k.counters.faults.demandZero).toBe(exp.pages);
      expect(k.counters.faults.invalid).toBe(0);
      expect(k.frames.count('user')).toBe(exp.pages);
      snaps.push({ c: JSON.parse(JSON.stringify(k.counters)), h: dataHash(k) });
    }
    expect(snaps[1]).toEqual(snaps[0]); expect(snaps[2]).toEqual(snaps[0]);
  });

  it('replays with pages swapped when the trace does not fit, still touching the same pages', async () => {
    const recs = parseLackey(text);
    const { k } = await bootKernel('nested', 4, { reserve: 16 });
    // Spread the trace over many pages: each record gets its own page by offsetting addresses.
    const spread = recs.slice(0, 3000).map((r, i) => ({ ...r, addr: 0x1000_0000 + (i % 1500) * 4096 + (r.addr % 4096 & ~31) }));
    const w = new TraceReplay(spread);
    k.start(w);
    k.runFor(Infinity);
    expect(w.replayed.pages).toBe(traceStats(spread).pages);
    expect(k.counters.swapOuts).toBeGreaterThan(0);
    expect(k.counters.faults.demandZero).toBe(traceStats(spread).pages);
  });
});
