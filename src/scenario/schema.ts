// Scenario files: JSON validated with zod, so a bad file gets an error naming the field.
// Every scenario has a common header { kind, name, description?, seed }; the rest of its
// fields are the parameters of its kind. 'translation' is defined here as a full schema
// (the discriminated union below); the other kinds are experiments registered at run time
// (src/experiment/registry.ts), which reuse the header fields and the issue formatting here.

import { z } from 'zod';
import { PATTERNS } from '../workload/patterns.js';
import { checkedTraceScan, traceFileField, withScenarioDir } from './trace-field.js';
import { translationIssues } from './translation-layout.js';

/**
 * The paging mode field of every scenario with VMs on a shared host: nested or shadow
 * (native needs the whole host; the compare and translation kinds choose modes themselves).
 */
export const vmModeField = z.enum(['nested', 'shadow']).default('nested');

const SIZE_UNITS: Record<string, number> = { B: 1, KiB: 2 ** 10, MiB: 2 ** 20, GiB: 2 ** 30, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30 };

/** What a size field accepts (fields.ts recognises sizes by this object). */
export const sizeInput = z.union([
  z.number().int().positive(),
  z.string().regex(/^\s*\d+(\.\d+)?\s*(B|KiB|MiB|GiB|K|M|G)\s*$/, 'a size such as "64KiB", "2MiB" or "1GiB"'),
]);

/** "64KiB", "2 MiB", "1G" or a plain byte count. */
export const bytesField = sizeInput.transform((v) => {
  if (typeof v === 'number') return v;
  const m = /^\s*(\d+(?:\.\d+)?)\s*(\w+)\s*$/.exec(v)!;
  return Math.round(Number(m[1]) * SIZE_UNITS[m[2]]);
}).refine((n) => n >= 1, 'a size of at least 1 B ("0.4B" rounds to 0)');

const pageSize = z.enum(['4K', '2M', '1G']);

export const translationRun = z.object({
  label: z.string().optional().describe('row label in the table and plots (default: pattern, working set, page size, levels)'),
  pattern: z.enum(PATTERNS).optional().describe('the access stream (src/workload/patterns.ts); required unless the run replays a trace'),
  trace: traceFileField.optional().describe('replay this lackey trace (plain or gzip, relative to the scenario file) instead of a pattern: ' +
    'every distinct page it touches is mapped, in order of first touch'),
  workingSet: bytesField.optional().describe('bytes the accesses range over, mapped from one 1 GiB-aligned virtual address (pattern runs)'),
  pageSize: pageSize.default('4K').describe('page size of the whole mapping'),
  levels: z.union([z.literal(4), z.literal(5)]).default(4).describe('paging levels (5: LA57)'),
  psc: z.boolean().default(true).describe('paging-structure caches on'),
  tlb: z.boolean().default(true).describe('TLBs on (off: every access walks)'),
  writeRatio: z.number().min(0).max(1).default(0).describe('fraction of accesses that are stores [fraction (0 … 1)]'),
  stride: bytesField.optional().describe('step of the "strided" pattern (default 4096: one access per page)'),
}).strict().superRefine((r, ctx) => {
  const issue = (field: string, message: string) => ctx.addIssue({ code: z.ZodIssueCode.custom, path: [field], message });
  if (r.trace === undefined) {
    if (r.pattern === undefined) issue('pattern', 'required (or "trace": a lackey trace file to replay)');
    if (r.workingSet === undefined) issue('workingSet', 'required for a pattern run');
    // Accesses are 8-byte loads and stores at stride multiples: another stride reaches past the mapped end.
    if (r.stride !== undefined && r.stride % 8 !== 0) issue('stride', `${r.stride} B is not a multiple of 8 B (each access is 8 bytes; the last would run past the working set)`);
    return;
  }
  for (const k of ['pattern', 'workingSet', 'stride'] as const) if (r[k] !== undefined) issue(k, 'not used with "trace" (the trace gives the addresses)');
  if (r.writeRatio !== 0) issue('writeRatio', 'not used with "trace" (the trace gives its own loads and stores)');
});

/** Scenario names become directory names (out/<name>), so they are one safe path segment. */
export const nameField = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/,
  'a name of letters, digits, ".", "_" and "-" (it names the output directory)');
/** Seeds feed Rng, which takes a u32. */
export const seedField = z.number().int().nonnegative().max(0xffff_ffff);

// The "sweep" field (expanded into runs by ./sweep.ts, which documents the syntax).
/** Runs one sweep may expand to: a guard against a typo that multiplies into days. */
export const MAX_SWEEP_RUNS = 10_000;

const pathPattern = /^[A-Za-z_$][\w$-]*(?:\.[A-Za-z_$][\w$-]*|\[\d+\])*$/;
/** Fields a sweep may not vary: they name the scenario or the sweep itself (seeds go in "seeds"). */
const FIXED_KEYS = ['$schema', 'kind', 'name', 'description', 'seed', 'sweep'];

export const sweepField = z.object({
  vary: z.record(z.array(z.unknown()).min(1, 'give at least one value'))
    .default({})
    .describe('field path → the values it takes; every combination is one sweep point, e.g. { "vms[0].shares": [1000, 2000] } [path → list of values]')
    .superRefine((vary, ctx) => {
      for (const path of Object.keys(vary)) {
        if (!pathPattern.test(path)) {
          ctx.addIssue({ code: 'custom', message: `"${path}" is not a field path (keys joined by ".", array items as [0], e.g. "vms[0].shares")` });
        } else if (FIXED_KEYS.includes(sweepTopKey(path))) {
          ctx.addIssue({ code: 'custom', message: `"${path}": "${sweepTopKey(path)}" cannot be varied${sweepTopKey(path) === 'seed' ? ' (list seeds in sweep.seeds)' : ''}` });
        }
      }
    }),
  seeds: z.union([
    z.array(seedField).min(1).refine((s) => new Set(s).size === s.length, 'seeds must be distinct'),
    z.object({
      from: seedField.describe('first seed'),
      count: z.number().int().min(1).max(MAX_SWEEP_RUNS).describe('number of consecutive seeds'),
    }).strict().refine((s) => s.from + s.count - 1 <= 0xffff_ffff, 'the last seed (from + count − 1) must fit in a u32'),
  ]).optional().describe('the seeds each point runs with: a list, or { "from", "count" } (default: the file\'s seed)'),
}).strict().describe('run the scenario over parameter values and seeds (see the README, "Sweeps")');

export type SweepSpec = z.infer<typeof sweepField>;

function sweepTopKey(path: string): string {
  return /^[^.[]+/.exec(path)![0];
}

/** The fields every scenario has, whatever its kind. */
export const scenarioHeader = z.object({
  /** The JSON Schema an editor checks the file against (schema/scenario.schema.json); ignored here. */
  $schema: z.string().optional(),
  kind: z.string().min(1),
  name: nameField,
  description: z.string().optional(),
  seed: seedField.default(1),
  sweep: sweepField.optional(),
});
export const HEADER_KEYS = ['$schema', 'kind', 'name', 'description', 'seed', 'sweep'] as const;
export type ScenarioHeader = z.infer<typeof scenarioHeader>;

/** The translation kind's fields, before the checks across them (translationScenario adds those). */
export const translationFields = z.object({
  $schema: z.string().optional(),
  kind: z.literal('translation'),
  name: nameField,
  description: z.string().optional(),
  seed: seedField.default(1),
  memory: bytesField.default(512 * 2 ** 20).describe('host physical memory: page tables from 1 MiB, data from 32 MiB (1 GiB pages: pattern runs from 0, trace runs from 1 GiB)'),
  accesses: z.number().int().positive().max(1e9).default(1_000_000).describe('accesses per pattern run (a trace run replays its whole trace)'),
  runs: z.array(translationRun).min(1).describe('one address space and access stream each, run one after another on a fresh vCPU'),
}).strict();

/** The checks `run` makes across fields (memory size, pages and working sets that must fit it). */
export function translationChecks(p: { memory: number; runs: z.infer<typeof translationRun>[] }, ctx: z.RefinementCtx): void {
  translationIssues(p, ctx, checkedTraceScan);
}

export const translationScenario = translationFields.superRefine(translationChecks);

/** Every kind defined here (only translation; the others register with the experiment registry). */
export const scenarioSchema = translationScenario;

export type TranslationRun = z.infer<typeof translationRun>;
export type TranslationScenario = z.infer<typeof translationScenario>;
export type Scenario = z.infer<typeof scenarioSchema>;

/** A rejected scenario: `problems` are "path: message" lines, one per issue. */
export class ScenarioError extends Error {
  constructor(readonly source: string, readonly problems: string[]) {
    super(`${source} is not a valid scenario:\n${problems.map((p) => '  ' + p).join('\n')}`);
    this.name = 'ScenarioError';
  }
}

/** `vms[1].min` style: indices in brackets, keys joined by dots. */
export function formatPath(path: readonly (string | number)[]): string {
  let out = '';
  for (const k of path) out += typeof k === 'number' ? `[${k}]` : out ? `.${k}` : k;
  return out || '(top level)';
}

/** One "path: message" line per zod issue; unknown keys get one line each, naming the key. */
export function formatIssues(issues: readonly z.ZodIssue[], prefix: (string | number)[] = []): string[] {
  const lines: string[] = [];
  for (const i of issues) {
    if (i.code === 'unrecognized_keys') {
      for (const k of i.keys) lines.push(`${formatPath([...prefix, ...i.path, k])}: unknown field`);
    } else {
      lines.push(`${formatPath([...prefix, ...i.path])}: ${i.message}`);
    }
  }
  return lines;
}

/**
 * Parses and validates a translation scenario with every check `run` makes; trace paths are
 * resolved against opts.dir (the scenario file's folder; default the working directory). Throws a ScenarioError listing every problem by field path. */
export function parseScenario(json: unknown, source = 'scenario', opts: { dir?: string } = {}): Scenario {
  const r = withScenarioDir(opts.dir, () => scenarioSchema.safeParse(json));
  if (r.success) return r.data;
  throw new ScenarioError(source, formatIssues(r.error.issues));
}
