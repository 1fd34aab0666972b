// The published JSON Schema (schema/scenario.schema.json) is what the zod schemas generate,
// the shipped scenarios point at it, and `memvisor experiments <kind>` documents every field.
import { describe, expect, it, vi } from 'vitest';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SCHEMA_PATH, scenarioJsonSchema, schemaText } from '../../scripts/scenario-schema.js';
import { kindReference } from '../../src/cli/run.js';
import { listExperiments } from '../../src/experiment/registry.js';
import { describeFields } from '../../src/scenario/fields.js';
import { translationScenario } from '../../src/scenario/schema.js';

const SCENARIOS = fileURLToPath(new URL('../../scenarios/', import.meta.url));

describe('schema/scenario.schema.json', () => {
  it('is the file `npm run schema` generates now (regenerate it after changing a scenario schema)', () => {
    expect(readFileSync(SCHEMA_PATH, 'utf8')).toBe(schemaText());
  });

  it('has one branch per registered kind, closed to unknown fields', () => {
    const s = scenarioJsonSchema();
    expect(s.properties.kind.enum).toEqual(listExperiments().map((e) => e.kind));
    for (const b of s.allOf) expect(b.then.additionalProperties).toBe(false);
  });

  it.each(readdirSync(SCENARIOS).filter((f) => f.endsWith('.json')))('scenarios/%s points at it and fits its kind\'s branch', (f) => {
    const sc = JSON.parse(readFileSync(join(SCENARIOS, f), 'utf8'));
    expect(resolve(SCENARIOS, sc.$schema)).toBe(SCHEMA_PATH);
    expect(existsSync(resolve(dirname(join(SCENARIOS, f)), sc.$schema))).toBe(true);
    const branch = scenarioJsonSchema().allOf.find((b: any) => b.if.properties.kind.const === sc.kind).then;
    expect(Object.keys(sc).filter((k) => !(k in branch.properties))).toEqual([]);
    expect(branch.required.filter((k: string) => !(k in sc))).toEqual([]);
  });

  it('a size field accepts bytes or a "64KiB" string; ranges and defaults come through', () => {
    const t = scenarioJsonSchema().allOf.find((b: any) => b.if.properties.kind.const === 'translation').then;
    expect(t.properties.memory.anyOf.map((x: any) => x.type)).toEqual(['integer', 'string']);
    expect(t.properties.memory.default).toBe(512 * 2 ** 20);
    expect(t.properties.runs.items.properties.levels).toMatchObject({ default: 4 });
    expect(t.properties.runs.items.properties.writeRatio).toMatchObject({ minimum: 0, maximum: 1 });
  });
});

describe('memvisor experiments <kind>', () => {
  it('lists every field of the kind with type, unit, range and default', () => {
    const text = kindReference('translation');
    const paths = describeFields(translationScenario).map((f) => f.path);
    for (const p of paths) expect(text).toMatch(new RegExp(`^${p.replace(/[[\]$.]/g, '\\$&')} `, 'm'));
    expect(text).toMatch(/^memory +size +bytes, or "64KiB" \/ "2MiB" \/ "1GiB" +"512MiB" +host physical memory/m);
    expect(text).toMatch(/^runs\[\]\.writeRatio +number +fraction \(0 … 1\) +0 … 1 +0 +fraction of accesses that are stores$/m);
    expect(text).toMatch(/^runs\[\]\.workingSet +size .* optional +bytes the accesses range over.*\(pattern runs\)$/m);
    expect(text).toMatch(/^runs\[\]\.trace +string +optional +replay this lackey trace \(plain or gzip, relative to the scenario file\)/m);
    expect(kindReference('host')).toMatch(/^vms\[\]\.workload\{type=trace\}\.file +string +required +a valgrind lackey trace/m);
    expect(kindReference('host')).toMatch(/^vms\[\]\.workload\{type=trace\}\.loop +boolean +true +start the trace again when it ends/m);
    expect(kindReference('host')).toMatch(/^vms\[\]\.memMiB +integer +MiB +4 … 256 +required/m);
    expect(kindReference('idle-tax')).toMatch(/^phaseSeconds +number +simulated seconds +> 0 +240/m);
  });

  it('refuses an unknown kind naming the known ones', () => {
    expect(() => kindReference('nope')).toThrow(/unknown experiment kind "nope" \(known kinds: balloon-perf, compare, /);
  });
});
