// `npm run schema`: writes schema/scenario.schema.json, the JSON Schema of scenario files,
// generated from the zod schemas of every registered kind (zod-to-json-schema), so editors can
// complete and check them. The shipped scenarios point at it with "$schema".
// test/scenario/schema-file.test.ts fails if the committed file differs from a fresh one.
// One branch per kind (if kind = X then X's fields); sizes accept bytes or "64KiB"-style strings.
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { zodToJsonSchema } from 'zod-to-json-schema';
import '../src/experiment/catalogue.js';
import { listExperiments } from '../src/experiment/registry.js';
import { scenarioHeader } from '../src/scenario/schema.js';

export const SCHEMA_PATH = fileURLToPath(new URL('../schema/scenario.schema.json', import.meta.url));

type Json = Record<string, any>;

const toJson = (s: Parameters<typeof zodToJsonSchema>[0]): Json =>
  zodToJsonSchema(s, { target: 'jsonSchema7', $refStrategy: 'none', effectStrategy: 'input', removeAdditionalStrategy: 'strict' }) as Json;

export function scenarioJsonSchema(): Json {
  const header = toJson(scenarioHeader);
  delete header.$schema;
  const kinds = listExperiments();
  const branches = kinds.map((e) => {
    const params = toJson(e.schema);
    const properties: Json = { ...header.properties, kind: { const: e.kind }, ...params.properties };
    for (const [k, v] of Object.entries(e.defaults ?? {})) if (properties[k]) properties[k] = { ...properties[k], default: v };
    const required = [...new Set(['kind', 'name', ...(params.required ?? [])])].filter((k) => !(k in (e.defaults ?? {})));
    return {
      if: { properties: { kind: { const: e.kind } }, required: ['kind'] },
      then: {
        title: e.title,
        ...(e.description ? { description: e.description } : {}),
        type: 'object',
        properties: { $schema: { type: 'string' }, ...properties },
        required,
        additionalProperties: false,
      },
    };
  });
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    $id: 'https://github.com/memvisor/memvisor/schema/scenario.schema.json',
    title: 'memvisor scenario',
    description: 'A scenario file for `memvisor run`. `memvisor experiments <kind>` lists the fields of a kind with units.',
    type: 'object',
    properties: { kind: { enum: kinds.map((e) => e.kind) } },
    required: ['kind', 'name'],
    allOf: branches,
  };
}

export function schemaText(): string {
  return JSON.stringify(scenarioJsonSchema(), null, 2) + '\n';
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  writeFileSync(SCHEMA_PATH, schemaText());
  console.log(`wrote ${SCHEMA_PATH}`);
}
