// The core's batched page hashing against libxxhash's XXH64 (values computed with the
// system libxxhash 0.8.1), and the batched compare and zero tests.
import { describe, it, expect, beforeAll } from 'vitest';
import { Machine } from '../../src/core/machine.js';
import { FrameOps, ZERO_FRAME_XXH64, hashKey } from '../../src/core/hash.js';

let m: Machine;
const FRAMES = 64;
beforeAll(async () => { m = await Machine.create({ memoryBytes: FRAMES * 4096 }); });

const bytes = (n: number, f: (i: number) => number) => Uint8Array.from({ length: n }, (_, i) => f(i) & 0xff);

describe('xxHash64 in the core', () => {
  it('matches libxxhash XXH64 on short, odd-length and page-sized inputs', () => {
    const ops = new FrameOps(m.core, FRAMES, 4);
    expect(ops.xxh64(0n, 0)).toBe(0xef46db3751d8e999n);
    m.memory.write(0x1000n, new TextEncoder().encode('abc'));
    expect(ops.xxh64(0x1000n, 3)).toBe(0x44bc2cf5ad770999n);
    m.memory.write(0x2000n, bytes(103, (i) => i * 13 + 5)); // stripes + 8-, 4- and 1-byte tails
    expect(ops.xxh64(0x2000n, 103)).toBe(0xf39dfacbf9cdefc5n);
    expect(ops.xxh64(0x2000n, 103, 0x1234567890abcdefn)).toBe(0xe760e0f3f0f1bd52n);
    m.memory.write(0x3000n, bytes(4096, (i) => i * 31 + 7));
    expect(ops.hash([3])[0]).toBe(0xe21174be82dc78d9n);
    m.memory.fill(0x4000n, 0, 4096);
    expect(ops.hash([4])[0]).toBe(ZERO_FRAME_XXH64);
  });

  it('hashes batches larger than its buffer, each frame as on its own', () => {
    const ops = new FrameOps(m.core, FRAMES, 3);
    for (let f = 8; f < 18; f++) m.memory.write(BigInt(f) << 12n, bytes(4096, (i) => i ^ f));
    const hfns = [8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 8];
    const all = ops.hash(hfns);
    hfns.forEach((h, i) => expect(all[i]).toBe(ops.xxh64(BigInt(h) << 12n, 4096)));
    expect(all[10]).toBe(all[0]);
    expect(new Set(all).size).toBe(10);
    const keys = ops.hashKeys(hfns, 20);
    hfns.forEach((_, i) => expect(keys[i]).toBe(hashKey(all[i], 20)));
    expect(ops.hashKeys([8])[0]).toBe(Number(all[0] & (2n ** 53n - 1n)));
    expect(ops.hashKeys([8], 40)[0]).toBe(Number(all[0] & (2n ** 40n - 1n)));
  });

  it('compares frames and finds zero frames, one difference anywhere being enough', () => {
    const ops = new FrameOps(m.core, FRAMES, 2);
    const base = bytes(4096, (i) => i * 7);
    for (const f of [20, 21, 22, 23]) m.memory.write(BigInt(f) << 12n, base);
    m.memory.write8((22n << 12n) + 4095n, base[4095] ^ 1); // last byte differs
    m.memory.write8((23n << 12n) + 0n, base[0] ^ 0x80);     // first byte differs
    expect([...ops.equal([20, 20, 20, 21, 22], [21, 22, 23, 20, 22])]).toEqual([1, 0, 0, 1, 1]);
    m.memory.fill(24n << 12n, 0, 4096);
    m.memory.fill(25n << 12n, 0, 4096);
    m.memory.write8((25n << 12n) + 2048n, 1);
    expect([...ops.isZero([24, 25, 20, 24])]).toEqual([1, 0, 0, 1]);
  });

  it('rejects frames outside host memory before calling the core', () => {
    const ops = new FrameOps(m.core, FRAMES, 4);
    expect(() => ops.hash([1, FRAMES])).toThrow(/hfns\[1\] = 0x40 is not a host frame/);
    expect(() => ops.equal([1], [2, 3])).toThrow(/1 frames against 2/);
    expect(() => ops.isZero([-1])).toThrow(RangeError);
    expect(() => ops.hashKeys([1], 54)).toThrow(/1\.\.53/);
    expect(() => ops.xxh64(BigInt(FRAMES * 4096 - 2), 4)).toThrow(/outside host memory/);
  });
});
