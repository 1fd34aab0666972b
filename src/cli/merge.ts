// `memvisor merge DIR...`: joins the folders of a sharded sweep (`memvisor run --shard K/N`,
// one per shard, e.g. one per Slurm array task or Kubernetes Job index) into the folder an
// unsharded run writes: the runs' reports copied under runs/, and sweep.json, the CSVs and
// index.html made again from all of them (test/cli/sweep.test.ts: shards 1/2 + 2/2 merged
// equal the whole run, file for file).
// The shards must be of one sweep (same scenario, sweep and seeds) and hold every run
// between them; a run in two shards must have the same figures in both.

import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { checkOutputDir, stageDirectory } from '../report/write.js';
import { renderSweepFiles } from '../report/sweep-html.js';
import { SWEEP_FORMAT, runKey, sweepDoc, type SweepDoc, type SweepRunRecord } from '../report/sweep.js';
import { sweepSummaryText } from './sweep.js';

export interface MergeOptions { out?: string; quiet?: boolean; json?: boolean }

/** Reads DIR/sweep.json, with errors naming the folder. */
export function readSweepDoc(dir: string): SweepDoc {
  const path = join(dir, 'sweep.json');
  if (!existsSync(path)) throw new Error(`${dir} holds no sweep.json (not the output folder of a sweep or of memvisor run --shard)`);
  let doc: SweepDoc;
  try { doc = JSON.parse(readFileSync(path, 'utf8')); } catch (e) {
    throw new Error(`${path} is not valid JSON: ${(e as Error).message}`);
  }
  if (doc?.format !== SWEEP_FORMAT) throw new Error(`${path} is not a sweep of this memvisor (format ${JSON.stringify(doc?.format)}, expected "${SWEEP_FORMAT}")`);
  return doc;
}

/** The fields that make two folders slices of the same sweep. */
function identity(d: SweepDoc): unknown {
  return { scenario: d.scenario, kind: d.kind, base: d.base, sweep: d.sweep, seeds: d.seeds, points: d.points.map((p) => [p.id, p.params]) };
}

export async function mergeCommand(dirs: readonly string[], opts: MergeOptions = {}): Promise<SweepDoc> {
  if (dirs.length === 0) throw new Error('merge: name the shards\' folders');
  const docs = dirs.map((d) => readSweepDoc(d));
  const ref = docs[0];
  docs.forEach((d, i) => {
    if (!isDeepStrictEqual(identity(d), identity(ref))) {
      throw new Error(`${dirs[i]} is not a slice of the same sweep as ${dirs[0]} (its scenario, sweep or seeds differ)`);
    }
  });
  const out = resolve(opts.out ?? join('out', ref.scenario));
  if (dirs.some((d) => resolve(d) === out)) throw new Error(`merge: --out ${out} is one of the shards; write the merged sweep elsewhere`);
  checkOutputDir(out, opts.out ?? out);

  const runs = new Map<string, { record: SweepRunRecord; from: string }>();
  docs.forEach((d, i) => {
    for (const p of d.points) {
      for (const r of p.runs) {
        const key = runKey(p.id, r.seed), had = runs.get(key);
        if (had && !isDeepStrictEqual(had.record.summary, r.summary)) {
          throw new Error(`${p.id} seed ${r.seed} is in ${had.from} and ${dirs[i]} with different figures`);
        }
        if (!had) runs.set(key, { record: r, from: dirs[i] });
      }
    }
  });
  const missing = ref.points.flatMap((p) => ref.seeds.filter((s) => !runs.has(runKey(p.id, s))).map((s) => `${p.id} seed ${s}`));
  if (missing.length) {
    const shards = ref.shard ? ` (the sweep was cut into ${ref.shard.count} shards; merged: ${docs.map((d) => d.shard ? `${d.shard.index}/${d.shard.count}` : 'whole').join(', ')})` : '';
    throw new Error(`merge: ${missing.length} run${missing.length === 1 ? ' is' : 's are'} in none of the folders${shards}: ${missing.slice(0, 6).join(', ')}${missing.length > 6 ? ', …' : ''}`);
  }

  const stage = stageDirectory(out);
  try {
    for (const { record, from } of runs.values()) copyTree(join(from, record.dir), record.dir, stage.write);
    const doc = sweepDoc({
      scenario: ref.scenario, kind: ref.kind, title: ref.title, ...(ref.description !== undefined ? { description: ref.description } : {}),
      base: ref.base, sweep: ref.sweep, seeds: ref.seeds, points: ref.points,
      runs: new Map([...runs].map(([k, v]) => [k, v.record])),
    });
    const warn = (m: string) => { if (!opts.quiet) process.stderr.write(`warning: ${m}\n`); };
    for (const [name, text] of await renderSweepFiles(doc, { onWarning: warn })) stage.write(name, text);
    stage.commit();
    if (opts.json) console.log(JSON.stringify(doc, null, 2));
    else if (!opts.quiet) console.log(`${sweepSummaryText(doc)}\n\nmerged ${dirs.length} folder${dirs.length === 1 ? '' : 's'}, ${runs.size} runs\nreport: ${join(out, 'index.html')}`);
    return doc;
  } catch (e) {
    stage.abort();
    throw e;
  }
}

/** Copies every file under src to name prefix/<relative path> through write. */
function copyTree(src: string, prefix: string, write: (name: string, text: string) => void): void {
  if (!existsSync(src) || !statSync(src).isDirectory()) throw new Error(`merge: ${src} is listed in sweep.json but missing`);
  for (const name of readdirSync(src).sort()) {
    const path = join(src, name);
    if (statSync(path).isDirectory()) copyTree(path, `${prefix}/${name}`, write);
    else write(`${prefix}/${name}`, readFileSync(path, 'utf8'));
  }
}
