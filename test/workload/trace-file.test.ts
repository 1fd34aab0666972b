// Lackey traces read as streams: line errors name the file, line and field; a gzip file read
// a chunk at a time gives exactly the records of its plain text; the shipped traces give the
// counts an independent count of their text gives (kinds by line prefix, pages by BigInt).
import { describe, it, expect, afterAll } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { parseLackey, parseLackeyLine, TraceLineError } from '../../src/workload/lackey.js';
import { TRACE_CHUNK, TraceReader, scanTrace } from '../../src/workload/trace-file.js';
import { independentCounts } from '../helpers/trace-counts.js';

const MALLOC = new URL('../data/malloc-sum.lackey', import.meta.url);
const MAWK = new URL('../../scenarios/traces/mawk-count.lackey.gz', import.meta.url);
const dir = mkdtempSync(join(tmpdir(), 'memvisor-trace-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function readAll(path: string, chunkBytes?: number) {
  const r = new TraceReader(path, { chunkBytes });
  const out = [];
  for (let rec = r.next(); rec; rec = r.next()) out.push(rec);
  r.close();
  return out;
}

function thrown(f: () => unknown): Error {
  try { f(); } catch (e) { return e as Error; }
  throw new Error('expected an error');
}

describe('lackey lines', () => {
  it('parses the four kinds and skips valgrind lines, comments and blanks', () => {
    expect(parseLackeyLine('I  0401ab70,3')).toEqual({ kind: 'I', addr: 0x401ab70, size: 3 });
    expect(parseLackeyLine(' L 1fff000778,8')).toEqual({ kind: 'L', addr: 0x1fff000778, size: 8 });
    expect(parseLackeyLine(' S 04a5e040,16')).toEqual({ kind: 'S', addr: 0x4a5e040, size: 16 });
    expect(parseLackeyLine(' M 1ffefffe90,4')).toEqual({ kind: 'M', addr: 0x1ffefffe90, size: 4 });
    for (const skip of ['==123== Lackey', '--123-- warning', '# comment', '', '   ']) expect(parseLackeyLine(skip)).toBeNull();
  });

  it('names the field of a bad line', () => {
    expect(parseLackeyLine('X 0401ab70,3')).toMatchObject({ field: 'kind' });
    expect(parseLackeyLine(' Q 0401ab70,3')).toMatchObject({ field: 'kind' });
    expect(parseLackeyLine('I  04z1ab70,3')).toEqual({ field: 'address', message: '"04z1ab70" is not a hexadecimal address' });
    expect(parseLackeyLine('I  0401ab70,x')).toEqual({ field: 'size', message: '"x" is not a decimal byte count' });
    expect(parseLackeyLine('I  0401ab70')).toEqual({ field: 'size', message: 'missing (expected "addr,size")' });
    expect(parseLackeyLine(' L 0401ab70,0')).toEqual({ field: 'size', message: '0 bytes is outside 1 … 4096' });
    expect(parseLackeyLine(' L 0400,8')).toMatchObject({ field: 'address', message: expect.stringContaining('outside user space') });
    expect(parseLackeyLine(' L 7ffffffff000,8')).toMatchObject({ field: 'address' });
    expect(thrown(() => parseLackey('I  0401ab70,3\n# x\n S 12,8\n', 'mem.lackey')).message)
      .toBe('mem.lackey:3: address: 0x12 + 8 bytes is outside user space (0x1000 … 0x7ffffffff000)');
  });
});

describe('streamed trace files', () => {
  const text = readFileSync(MALLOC, 'utf8');

  it('a gzip trace read in chunks gives exactly the records of its plain text', () => {
    // Repeat the trace so the compressed and inflated files both span many chunks.
    const big = Array.from({ length: 12 }, () => text).join('');
    const plain = join(dir, 'big.lackey'), gz = join(dir, 'big.lackey.gz'), oddName = join(dir, 'named-plain.gz');
    writeFileSync(plain, big);
    writeFileSync(gz, gzipSync(big));
    writeFileSync(oddName, big); // gzip is recognised by its bytes, not its name
    expect(big.length).toBeGreaterThan(10 * TRACE_CHUNK);
    expect(gzipSync(big).length).toBeGreaterThan(4096);
    const want = parseLackey(big);
    expect(readAll(gz)).toEqual(want);
    expect(readAll(gz, 4096)).toEqual(want); // inflated hand-offs of one page each
    expect(readAll(plain, 4096)).toEqual(want);
    expect(readAll(oddName)).toEqual(want);
    const exp = independentCounts(big);
    const { lines, pages1G: _g, ...counts } = scanTrace(gz, { chunkBytes: 4096 });
    expect(counts).toEqual(exp);
    expect(lines).toBe(big.split('\n').length - 1);
  });

  it('a bad line deep in a gzip trace is reported with file, line number and field', () => {
    const lines = Array.from({ length: 20 }, () => text).join('').split('\n');
    lines[150_000] = ' S 1fff00g778,8';
    const gz = join(dir, 'bad.lackey.gz');
    writeFileSync(gz, gzipSync(lines.join('\n')));
    const e = thrown(() => scanTrace(gz, { name: 'bad.lackey.gz', chunkBytes: 8192 }));
    expect(e).toBeInstanceOf(TraceLineError);
    expect(e.message).toBe('bad.lackey.gz:150001: address: "1fff00g778" is not a hexadecimal address');
  });

  it('a damaged gzip file is refused with its name; a reader closed early stops', () => {
    const gz = gzipSync(text);
    const cut = join(dir, 'cut.lackey.gz');
    writeFileSync(cut, gz.subarray(0, gz.length >> 1));
    expect(thrown(() => scanTrace(cut)).message).toMatch(/cut\.lackey\.gz: not a readable gzip file: unexpected end of file/);
    const r = new TraceReader(join(dir, 'big.lackey.gz'), { chunkBytes: 4096 });
    expect(r.next()).toEqual(parseLackey(text)[0]);
    r.close();
    expect(r.next()).toBeNull();
  });

  it('the shipped mawk trace: counts match an independent count of the inflated text', () => {
    const inflated = gunzipSync(readFileSync(MAWK)).toString('latin1');
    expect(inflated.length).toBeGreaterThan(50 * TRACE_CHUNK);
    const exp = independentCounts(inflated);
    // The counts traces/README.md states (taken with zcat | cut | sort | uniq -c).
    expect(exp).toMatchObject({ I: 426_324, L: 106_565, S: 63_908, M: 3_203, accesses: 600_000, pages: 568 });
    const { lines, pages1G, ...counts } = scanTrace(MAWK.pathname);
    expect(counts).toEqual(exp);
    expect(lines).toBe(600_002);
    expect(pages1G).toBe(2); // the heap and code in the first GiB, the stack near 128 GiB
  });
});
