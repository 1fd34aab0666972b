// The fields of a scenario kind, read off its zod schema, for `memvisor experiments <kind>`:
// path, type, unit, range, default and description. Units come from zod descriptions when a
// schema gives one, else from the field's name (…MiB, …Seconds, hz, …Fraction) — the naming
// rule every experiment follows. Sizes (bytesField) take bytes or strings such as "64KiB".

import { z } from 'zod';
import { sizeInput } from './schema.js';
import { fmtSize } from '../util/bytes.js';

export interface FieldDoc {
  /** `runs[].pageSize`, `vms[].workload{type=toucher}.regionFraction` */
  path: string;
  type: string;
  unit: string;
  range: string;
  /** JSON of the default, '' when the field is required, 'optional' when it may be left out. */
  default: string;
  description: string;
}

/** One FieldDoc per leaf field of the schema (objects and arrays of objects are opened up). */
export function describeFields(schema: z.ZodTypeAny, defaults: Record<string, unknown> = {}): FieldDoc[] {
  const out: FieldDoc[] = [];
  walk(schema, '', out, defaults);
  return out;
}

interface Unwrapped { s: z.ZodTypeAny; def?: unknown; optional: boolean; description?: string; size: boolean }

/** Strips optional/default/effects wrappers, keeping the default, optionality and description. */
function unwrap(schema: z.ZodTypeAny): Unwrapped {
  let s = schema, def: unknown, optional = false, description = schema.description, size = false;
  for (let depth = 0; depth < 16; depth++) {
    description ??= s.description;
    if (s instanceof z.ZodDefault) { def = s._def.defaultValue(); s = s._def.innerType; }
    else if (s instanceof z.ZodOptional || s instanceof z.ZodNullable) { optional = true; s = s._def.innerType; }
    else if (s instanceof z.ZodEffects) { s = s.innerType(); if (s === (sizeInput as z.ZodTypeAny)) size = true; }
    else if (s instanceof z.ZodBranded) s = s._def.type;
    else if (s instanceof z.ZodReadonly) s = s._def.innerType;
    else if (s instanceof z.ZodPipeline) s = s._def.in;
    else break;
  }
  return { s, def, optional, description, size };
}

function walk(schema: z.ZodTypeAny, path: string, out: FieldDoc[], defaults: Record<string, unknown>): void {
  const u = unwrap(schema);
  const s = u.s;
  if (s instanceof z.ZodObject && !u.size) {
    for (const [k, v] of Object.entries(s.shape as Record<string, z.ZodTypeAny>)) {
      const child = path ? `${path}.${k}` : k;
      if (!path && k in defaults) walk((v as z.ZodTypeAny).default(defaults[k]), child, out, {});
      else walk(v as z.ZodTypeAny, child, out, {});
    }
    return;
  }
  if (s instanceof z.ZodArray && isObjectLike(s.element)) {
    out.push(leaf(path, u, `array of objects${lengthRange(s)}`, ''));
    walk(s.element, `${path}[]`, out, {});
    return;
  }
  if ((s instanceof z.ZodDiscriminatedUnion || s instanceof z.ZodUnion) && unionOfTypedObjects(s)) {
    const options = (s._def.options as z.ZodTypeAny[]).map((o) => unwrap(o).s as z.AnyZodObject);
    const tags = options.map((o) => (o.shape.type as z.ZodLiteral<string>).value);
    out.push(leaf(path, u, `object, by "type": ${tags.join(' | ')}`, ''));
    options.forEach((o, i) => {
      const { type: _t, ...rest } = o.shape;
      walk(z.object(rest), `${path}{type=${tags[i]}}`, out, {});
    });
    return;
  }
  out.push(leaf(path, u, typeName(s, u.size), range(s)));
}

function leaf(path: string, u: Unwrapped, type: string, range: string): FieldDoc {
  return {
    path, type, unit: u.size ? 'bytes, or "64KiB" / "2MiB" / "1GiB"' : unitOf(path, u.description), range,
    default: u.def !== undefined ? (u.size && typeof u.def === 'number' ? JSON.stringify(fmtSize(u.def).replace(' ', '')) : JSON.stringify(u.def))
      : u.optional ? 'optional' : '',
    description: (u.description ?? '').replace(/\s*\[[^\]]+\]$/, ''),
  };
}

function isObjectLike(s: z.ZodTypeAny): boolean {
  const inner = unwrap(s).s;
  return inner instanceof z.ZodObject || ((inner instanceof z.ZodDiscriminatedUnion || inner instanceof z.ZodUnion) && unionOfTypedObjects(inner));
}

function unionOfTypedObjects(s: z.ZodTypeAny): boolean {
  const options = s._def.options as z.ZodTypeAny[];
  return options.every((o) => { const x = unwrap(o).s; return x instanceof z.ZodObject && x.shape.type instanceof z.ZodLiteral; });
}

function typeName(s: z.ZodTypeAny, size: boolean): string {
  if (size) return 'size';
  if (s instanceof z.ZodNumber) return s.isInt ? 'integer' : 'number';
  if (s instanceof z.ZodString) return 'string';
  if (s instanceof z.ZodBoolean) return 'boolean';
  if (s instanceof z.ZodEnum) return `one of ${(s.options as string[]).map((o) => JSON.stringify(o)).join(' | ')}`;
  if (s instanceof z.ZodLiteral) return JSON.stringify(s.value);
  if (s instanceof z.ZodUnion) return (s._def.options as z.ZodTypeAny[]).map((o) => typeName(unwrap(o).s, unwrap(o).size)).join(' | ');
  if (s instanceof z.ZodArray) return `array of ${typeName(unwrap(s.element).s, unwrap(s.element).size)}${lengthRange(s)}`;
  if (s instanceof z.ZodTuple) return `[${(s.items as z.ZodTypeAny[]).map((i) => typeName(unwrap(i).s, unwrap(i).size)).join(', ')}]`;
  if (s instanceof z.ZodRecord) return 'object';
  return s.constructor.name.replace(/^Zod/, '').toLowerCase();
}

function lengthRange(s: z.ZodArray<z.ZodTypeAny>): string {
  const min = s._def.minLength?.value, max = s._def.maxLength?.value;
  if (min === undefined && max === undefined) return '';
  return ` (${min ?? 0}${max !== undefined ? ` to ${max}` : ' or more'} items)`;
}

/** "4 … 256", "> 0", "0 … < 1" from a number's checks; tuple items and arrays of numbers too. */
function range(s: z.ZodTypeAny): string {
  if (s instanceof z.ZodTuple) return (s.items as z.ZodTypeAny[]).map((i) => range(unwrap(i).s)).join(', ');
  if (s instanceof z.ZodArray) return range(unwrap(s.element).s);
  if (!(s instanceof z.ZodNumber)) return '';
  let lo = '', hi = '';
  for (const c of s._def.checks) {
    if (c.kind === 'min') lo = c.inclusive ? `${c.value}` : `> ${c.value}`;
    if (c.kind === 'max') hi = c.inclusive ? `${c.value}` : `< ${c.value}`;
  }
  if (lo && hi) return `${lo} … ${hi}`;
  if (lo) return lo.startsWith('>') ? lo : `≥ ${lo}`;
  if (hi) return hi.startsWith('<') ? hi : `≤ ${hi}`;
  return '';
}

function unitOf(path: string, description?: string): string {
  const unit = description && /\[([^\]]+)\]\s*$/.exec(description); // "… [MiB]" ending a zod description
  if (unit) return unit[1];
  const name = path.replace(/.*[.\]}]/, '');
  if (/MiB$/.test(name)) return 'MiB';
  if (/[sS]econds$/.test(name)) return 'simulated seconds';
  if (/^(samplePeriod|balancePeriod)$/.test(name)) return 'simulated seconds';
  if (name === 'hz') return 'modeled cycles per simulated second';
  if (/(Fraction|Ratio)$|^fraction$|^tau$|^taus$/.test(name)) return 'fraction (0 … 1)';
  if (name === 'seed') return 'u32';
  return '';
}
