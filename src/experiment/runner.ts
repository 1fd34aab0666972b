// Runs a validated scenario through its registered experiment and returns a checked
// ExperimentResult: scenario name and seed stamped from the scenario (never trusted from the
// experiment), title defaulted from the registration, the scenario as run recorded in
// `config`, and the whole thing validated so the writer never sees a malformed result.

import { ScenarioError, seedField } from '../scenario/schema.js';
import { parseExperimentScenario, scenarioConfig, type ParsedScenario } from './registry.js';
import { validateResult, type ExperimentOutput, type ExperimentResult, type Provenance } from '../report/result.js';
import { gitState, packageInfo } from '../util/package-info.js';

/** Version, commit, Node and the normalized scenario: what result.json records about its making. */
export function provenanceOf(p: ParsedScenario): Provenance {
  const git = gitState();
  return {
    memvisor: packageInfo().version,
    ...(git ? { gitCommit: git.commit, gitDirty: git.dirty } : {}),
    node: typeof process !== 'undefined' ? process.version : 'none (browser)',
    seed: p.header.seed,
    scenario: scenarioConfig(p),
  };
}

export interface RunOptions {
  /** Overrides the scenario's seed (validated like it). */
  seed?: number;
  /** Receives progress in [0, 1] (clamped) with an optional label. */
  progress?: (fraction: number, label?: string) => void;
  signal?: AbortSignal;
}

/** Thrown when a run is interrupted through its AbortSignal. */
export class RunAborted extends Error {
  constructor(what: string) { super(`${what} was interrupted`); this.name = 'AbortError'; }
}

/** Parses (throwing a ScenarioError on bad input) and runs a scenario of any registered kind. */
export async function runScenario(json: unknown, opts: RunOptions & { source?: string } = {}): Promise<ExperimentResult> {
  return runExperiment(withSeed(parseExperimentScenario(json, opts.source), opts.seed), opts);
}

/** Applies a --seed override to a parsed scenario; throws a ScenarioError if it is not a valid seed. */
export function withSeed(p: ParsedScenario, seed: number | undefined): ParsedScenario {
  if (seed === undefined) return p;
  const r = seedField.safeParse(seed);
  if (!r.success) throw new ScenarioError('--seed', [`seed: ${r.error.issues[0].message}`]);
  return { ...p, header: { ...p.header, seed: r.data } };
}

export async function runExperiment(p: ParsedScenario, opts: RunOptions = {}): Promise<ExperimentResult> {
  const { header, experiment } = p;
  if (header.sweep !== undefined) {
    // One run here; the CLI spells a sweep out into runs (src/cli/sweep.ts) before they reach this.
    throw new ScenarioError(p.source, ['sweep: this runs one scenario; run a sweep with `memvisor run <file>` (or drop "sweep")']);
  }
  const what = `scenario "${header.name}"`;
  const signal = opts.signal;
  if (signal?.aborted) throw new RunAborted(what);
  const progress = (fraction: number, label?: string) => {
    if (signal?.aborted) throw new RunAborted(what);
    const f = Number.isFinite(fraction) ? Math.min(1, Math.max(0, fraction)) : 0;
    opts.progress?.(f, label);
  };
  const out = await experiment.run(p.params, {
    seed: header.seed, name: header.name, description: header.description, progress, signal,
  });
  if (signal?.aborted) throw new RunAborted(what);
  if (!out || typeof out !== 'object') throw new Error(`experiment "${experiment.kind}" returned no result`);
  opts.progress?.(1);
  // Fixed key order keeps result.json readable; unexpected keys are kept so validation names them.
  const { scenario: _s, seed: _seed, title, description, summary, series, plots, notes, config, provenance: _p, ...rest } =
    out as ExperimentOutput & { provenance?: unknown };
  const desc = description ?? header.description;
  const result: ExperimentResult = {
    scenario: header.name,
    title: title ?? experiment.title,
    seed: header.seed,
    ...(desc !== undefined ? { description: desc } : {}),
    summary, series, plots,
    ...(notes !== undefined ? { notes } : {}),
    config: config ?? scenarioConfig(p),
    ...rest,
    provenance: provenanceOf(p),
  };
  try {
    return validateResult(result);
  } catch (e) {
    throw new Error(`experiment "${experiment.kind}" produced an ${(e as Error).message}`);
  }
}
