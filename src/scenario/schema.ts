// Scenario files: JSON validated with zod, so a bad file gets an error naming the field.

import { z } from 'zod';
import { PATTERNS } from '../workload/patterns.js';

const SIZE_UNITS: Record<string, number> = { B: 1, KiB: 2 ** 10, MiB: 2 ** 20, GiB: 2 ** 30, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30 };

/** "64KiB", "2 MiB", "1G" or a plain byte count. */
export const bytesField = z.union([
  z.number().int().positive(),
  z.string().regex(/^\s*\d+(\.\d+)?\s*(B|KiB|MiB|GiB|K|M|G)\s*$/, 'a size such as "64KiB", "2MiB" or "1GiB"'),
]).transform((v) => {
  if (typeof v === 'number') return v;
  const m = /^\s*(\d+(?:\.\d+)?)\s*(\w+)\s*$/.exec(v)!;
  return Math.round(Number(m[1]) * SIZE_UNITS[m[2]]);
});

const pageSize = z.enum(['4K', '2M', '1G']);

export const translationRun = z.object({
  label: z.string().optional(),
  pattern: z.enum(PATTERNS),
  workingSet: bytesField,
  pageSize: pageSize.default('4K'),
  levels: z.union([z.literal(4), z.literal(5)]).default(4),
  psc: z.boolean().default(true),
  tlb: z.boolean().default(true),
  writeRatio: z.number().min(0).max(1).default(0),
  stride: bytesField.optional(),
}).strict();

export const translationScenario = z.object({
  kind: z.literal('translation'),
  name: z.string().min(1),
  description: z.string().optional(),
  seed: z.number().int().nonnegative().default(1),
  memory: bytesField.default(512 * 2 ** 20),
  accesses: z.number().int().positive().max(1e9).default(1_000_000),
  runs: z.array(translationRun).min(1),
}).strict();

export const scenarioSchema = z.discriminatedUnion('kind', [translationScenario]);

export type TranslationRun = z.infer<typeof translationRun>;
export type TranslationScenario = z.infer<typeof translationScenario>;
export type Scenario = z.infer<typeof scenarioSchema>;

/** Parses and validates; throws an Error listing every problem by field path. */
export function parseScenario(json: unknown, source = 'scenario'): Scenario {
  const r = scenarioSchema.safeParse(json);
  if (r.success) return r.data;
  const lines = r.error.issues.map((i) => `  ${i.path.length ? i.path.join('.') : '(top level)'}: ${i.message}`);
  throw new Error(`${source} is not a valid scenario:\n${lines.join('\n')}`);
}
