// The experiment registry: each experiment kind registers its parameter schema and its run
// function once, and scenario files of that kind are then validated, run and reported by
// the generic machinery (runner.ts, write.ts, the CLI) with no per-kind code there.
//
// A scenario file is { kind, name, seed?, description?, ...params }. Parsing splits it:
// the header fields are checked by scenarioHeader, the rest (laid over the experiment's
// defaults) by the experiment's own schema, which may be any zod type, including one with
// superRefine cross-field checks. Unknown top-level fields are reported by name even if the
// experiment's object schema would silently strip them, so typos never pass unnoticed.
// Every problem comes back at once, as "path: message" lines (`vms[1].min: must be <= max`).

import { z } from 'zod';
import {
  HEADER_KEYS, ScenarioError, formatIssues, formatPath, scenarioHeader, type ScenarioHeader,
} from '../scenario/schema.js';
import { withScenarioDir } from '../scenario/trace-field.js';
import type { ExperimentOutput, ExperimentResult } from '../report/result.js';

export interface RunContext {
  /** The scenario seed (after any --seed override); seed an Rng with it. */
  seed: number;
  /** The scenario name and description. */
  name: string;
  description?: string;
  /**
   * Reports progress in [0, 1] with an optional label (shown on the progress bar).
   * Throws an AbortError once `signal` is aborted, so a long run that reports progress stops.
   */
  progress(fraction: number, label?: string): void;
  /** Aborted when the user interrupts (Ctrl-C); check it in long loops that do not call progress. */
  signal?: AbortSignal;
}

export interface ExperimentDefinition<S extends z.ZodTypeAny = z.ZodTypeAny> {
  /** The scenario `kind` this experiment handles: letters, digits and "-". */
  kind: string;
  title: string;
  description?: string;
  /** Schema of the parameters: the scenario's fields other than kind, name, description and seed. */
  schema: S;
  /** Parameter values used where the scenario file leaves a field out (shallow merge, then validated). */
  defaults?: Partial<z.input<S>>;
  run(params: z.output<S>, ctx: RunContext): Promise<ExperimentOutput> | ExperimentOutput;
  /** Optional console text printed after a run (default: the summary as a table). */
  formatSummary?(result: ExperimentResult): string;
}

/** A scenario that passed validation, with the experiment that runs it. */
export interface ParsedScenario<S extends z.ZodTypeAny = z.ZodTypeAny> {
  experiment: ExperimentDefinition<S>;
  header: ScenarioHeader;
  params: z.output<S>;
  source: string;
}

const experiments = new Map<string, ExperimentDefinition>();
let defaultScenario: unknown;

/** Registers an experiment kind; throws if the kind is taken or the definition is malformed. */
export function registerExperiment<S extends z.ZodTypeAny>(def: ExperimentDefinition<S>): ExperimentDefinition<S> {
  if (!/^[a-z0-9][a-z0-9-]*$/i.test(def.kind)) {
    throw new Error(`experiment kind ${JSON.stringify(def.kind)} must be letters, digits and "-"`);
  }
  if (experiments.has(def.kind)) throw new Error(`experiment kind "${def.kind}" is already registered`);
  if (!(def.schema instanceof z.ZodType)) throw new Error(`experiment "${def.kind}": schema must be a zod schema`);
  if (typeof def.run !== 'function') throw new Error(`experiment "${def.kind}": run must be a function`);
  const keys = paramKeys(def.schema);
  for (const k of Object.keys(def.defaults ?? {})) {
    if ((HEADER_KEYS as readonly string[]).includes(k)) throw new Error(`experiment "${def.kind}": defaults may not set the header field "${k}"`);
    if (keys && !keys.has(k)) throw new Error(`experiment "${def.kind}": defaults has "${k}", which the schema does not define`);
  }
  for (const k of keys ?? []) {
    if ((HEADER_KEYS as readonly string[]).includes(k)) throw new Error(`experiment "${def.kind}": the schema may not define the header field "${k}"`);
  }
  experiments.set(def.kind, def as unknown as ExperimentDefinition);
  return def;
}

/**
 * Types an experiment definition without registering it: experiment modules export their
 * definitions, and the catalogue (catalogue.ts) is the one place that registers them.
 */
export function defineExperiment<S extends z.ZodTypeAny>(def: ExperimentDefinition<S>): ExperimentDefinition<S> {
  return def;
}

/** Removes a kind (for tests and reloads); returns whether it was registered. */
export function unregisterExperiment(kind: string): boolean {
  return experiments.delete(kind);
}

export function getExperiment(kind: string): ExperimentDefinition | undefined {
  return experiments.get(kind);
}

/** Registered experiments, sorted by kind. */
export function listExperiments(): ExperimentDefinition[] {
  return [...experiments.values()].sort((a, b) => a.kind.localeCompare(b.kind));
}

/** The scenario `memvisor run` uses without a file argument (a scenario object, validated at run time). */
export function setDefaultScenario(json: unknown): void {
  defaultScenario = structuredClone(json);
}

export function getDefaultScenario(): unknown {
  return defaultScenario === undefined ? undefined : structuredClone(defaultScenario);
}

/**
 * Validates a scenario of any registered kind; throws a ScenarioError naming every bad field.
 * Files a scenario names (trace files) are found relative to opts.dir, the scenario file's
 * folder (default: the working directory).
 */
export function parseExperimentScenario(json: unknown, source = 'scenario', opts: { dir?: string } = {}): ParsedScenario {
  return withScenarioDir(opts.dir, () => parseInDir(json, source));
}

function parseInDir(json: unknown, source: string): ParsedScenario {
  if (!json || typeof json !== 'object' || Array.isArray(json)) {
    throw new ScenarioError(source, ['(top level): expected a JSON object { "kind": ..., "name": ..., ... }']);
  }
  const obj = json as Record<string, unknown>;
  const experiment = typeof obj.kind === 'string' ? experiments.get(obj.kind) : undefined;
  if (!experiment) throw new ScenarioError(source, [kindProblem(obj.kind)]);

  const headerIn: Record<string, unknown> = {};
  const paramsIn: Record<string, unknown> = { ...experiment.defaults };
  for (const [k, v] of Object.entries(obj)) {
    if ((HEADER_KEYS as readonly string[]).includes(k)) headerIn[k] = v;
    else paramsIn[k] = v;
  }
  const problems: string[] = [];
  const header = scenarioHeader.safeParse(headerIn);
  if (!header.success) problems.push(...formatIssues(header.error.issues));
  const known = paramKeys(experiment.schema);
  if (known) {
    for (const k of Object.keys(paramsIn)) if (!known.has(k)) problems.push(`${formatPath([k])}: unknown field for kind "${experiment.kind}"`);
  }
  const params = experiment.schema.safeParse(paramsIn);
  if (!params.success) {
    // Unknown keys were reported above with the kind named; skip zod's duplicate at the top level.
    const issues = params.error.issues.filter((i) => !(known && i.code === 'unrecognized_keys' && i.path.length === 0));
    problems.push(...formatIssues(issues));
  }
  if (problems.length || !header.success || !params.success) throw new ScenarioError(source, problems);
  return { experiment, header: header.data, params: params.data, source };
}

/** The scenario as it will run: header then parameters, defaults filled in (what `validate` prints). */
export function scenarioConfig(p: ParsedScenario): Record<string, unknown> {
  const { kind, name, description, seed } = p.header;
  const params = p.params && typeof p.params === 'object' ? p.params : { params: p.params };
  return { kind, name, ...(description !== undefined ? { description } : {}), seed, ...params };
}

function kindProblem(kind: unknown): string {
  const known = listExperiments().map((e) => e.kind).join(', ') || 'none registered';
  if (kind === undefined) return `kind: required (one of: ${known})`;
  if (typeof kind !== 'string') return `kind: expected a string (one of: ${known})`;
  return `kind: unknown experiment kind "${kind}" (known kinds: ${known})`;
}

/** Keys of the object at the heart of a schema (through effects, defaults, optional...), if it has one and is not passthrough. */
function paramKeys(schema: z.ZodTypeAny): Set<string> | undefined {
  let s: z.ZodTypeAny = schema;
  for (let depth = 0; depth < 16; depth++) {
    if (s instanceof z.ZodObject) return s._def.unknownKeys === 'passthrough' ? undefined : new Set(Object.keys(s.shape));
    if (s instanceof z.ZodEffects) s = s.innerType();
    else if (s instanceof z.ZodDefault || s instanceof z.ZodOptional || s instanceof z.ZodNullable) s = s._def.innerType;
    else if (s instanceof z.ZodReadonly) s = s._def.innerType;
    else if (s instanceof z.ZodBranded) s = s._def.type;
    else if (s instanceof z.ZodPipeline) s = s._def.in;
    else return undefined;
  }
  return undefined;
}
