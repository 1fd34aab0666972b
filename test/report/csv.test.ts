import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { assertProperty } from '../helpers/seeds.js';
import { csvField, toCsv } from '../../src/report/csv.js';

/** Reference RFC 4180 reader: a plain state machine over characters. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { field += '"'; i++; }
      else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') { row.push(field); field = ''; }
    else if (c === '\n') { row.push(field); rows.push(row); row = []; field = ''; }
    else field += c;
  }
  expect(field).toBe('');
  expect(row).toEqual([]);
  return rows;
}

describe('CSV', () => {
  it('quotes only fields with commas, quotes, line breaks or edge spaces', () => {
    expect(csvField('plain')).toBe('plain');
    expect(csvField(3.5)).toBe('3.5');
    expect(csvField('a,b')).toBe('"a,b"');
    expect(csvField('say "hi"')).toBe('"say ""hi"""');
    expect(csvField('two\nlines')).toBe('"two\nlines"');
    expect(csvField('cr\r')).toBe('"cr\r"');
    expect(csvField(' padded')).toBe('" padded"');
    expect(csvField(undefined)).toBe('');
  });

  it('takes the header from the keys in first-seen order and leaves missing cells empty', () => {
    const csv = toCsv([{ a: 1, b: 'x' }, { b: 'y', c: 2 }]);
    expect(csv).toBe('a,b,c\n1,x,\n,y,2\n');
  });

  it('round-trips any table through an RFC 4180 reader', () => {
    const key = fc.string({ minLength: 1, maxLength: 6 });
    const cell = fc.oneof(fc.string({ maxLength: 8 }), fc.double({ noNaN: true, noDefaultInfinity: true }), fc.constantFrom('a,b', '"', '\n', ' x'));
    assertProperty(fc.property(fc.array(fc.dictionary(key, cell, { minKeys: 1, maxKeys: 4 }), { minLength: 1, maxLength: 6 }), (rows) => {
      const parsed = parseCsv(toCsv(rows));
      const keys = [...new Set(rows.flatMap((r) => Object.keys(r)))];
      expect(parsed[0]).toEqual(keys);
      expect(parsed.slice(1)).toEqual(rows.map((r) => keys.map((k) => (k in r ? String(r[k]) : ''))));
    }), { numRuns: 300, seed: 0xc5f_4180 });
  });
});
