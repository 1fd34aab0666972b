// The on-disk swap store: slots round-trip through a real file, the free list is LIFO and
// deterministic, a damaged slot is detected, a full file says so, close cleans up.
import { describe, it, expect, afterEach } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { SwapFile, SwapFullError, SwapChecksumError, SLOT_BYTES, slotChecksum } from '../../../../src/hypervisor/index.js';

const page = (seed: number): Uint8Array => {
  const p = new Uint8Array(SLOT_BYTES);
  for (let i = 0; i < p.length; i++) p[i] = (seed * 31 + i * 7) & 0xff;
  return p;
};

const open: SwapFile[] = [];
const make = (capacity: number, p?: string): SwapFile => { const f = new SwapFile({ capacity, path: p }); open.push(f); return f; };
afterEach(() => { while (open.length) open.pop()!.close(); });

describe('SwapFile', () => {
  it('stores pages in a real file at slot × 4 KiB and reads them back verified', () => {
    const f = make(8);
    const slots = [f.alloc(), f.alloc(), f.alloc()];
    expect(slots).toEqual([0, 1, 2]); // a fresh file hands out its lowest slot first
    slots.forEach((s) => f.write(s, page(s + 10)));
    expect(fs.statSync(f.path).size).toBe(8 * SLOT_BYTES);
    const raw = fs.readFileSync(f.path);
    expect(new Uint8Array(raw.subarray(SLOT_BYTES, 2 * SLOT_BYTES))).toEqual(page(11));
    for (const s of slots) expect(f.read(s)).toEqual(page(s + 10));
    expect(f.stats).toEqual({ reads: 3, writes: 3, writeOps: 3, bytesRead: 3 * SLOT_BYTES, bytesWritten: 3 * SLOT_BYTES });
    expect([f.inUse, f.freeSlots]).toEqual([3, 5]);
  });

  it('free list is LIFO: a freed slot is the next one allocated', () => {
    const f = make(4);
    const [a, b] = [f.alloc(), f.alloc()];
    f.free(a);
    expect(f.alloc()).toBe(a);
    f.free(b);
    expect(f.isAllocated(b)).toBe(false);
    expect(f.alloc()).toBe(b);
  });

  it('a corrupted slot throws a checksum error naming the slot; repairing the bytes makes it readable', () => {
    const f = make(4);
    const s = [f.alloc(), f.alloc()][1];
    f.write(s, page(3));
    const fd = fs.openSync(f.path, 'r+');
    fs.writeSync(fd, Uint8Array.of(0xde, 0xad), 0, 2, s * SLOT_BYTES + 100);
    expect(() => f.read(s)).toThrow(SwapChecksumError);
    expect(() => f.read(s)).toThrow(new RegExp(`swap slot ${s} in .* is corrupt`));
    expect(f.isAllocated(s)).toBe(true);
    fs.writeSync(fd, page(3), 100, 2, s * SLOT_BYTES + 100);
    fs.closeSync(fd);
    expect(f.read(s)).toEqual(page(3));
  });

  it('checksum is the first 8 bytes of SHA-256 and differs for one flipped bit', () => {
    const p = page(1), q = page(1);
    q[4095] ^= 1;
    expect(slotChecksum(p)).toBe(slotChecksum(page(1)));
    expect(slotChecksum(p)).not.toBe(slotChecksum(q));
  });

  it('a full file throws SwapFullError and stays usable', () => {
    const f = make(2);
    f.alloc(); f.alloc();
    expect(() => f.alloc()).toThrow(SwapFullError);
    expect(() => f.alloc()).toThrow(/is full \(2 slots/);
    f.free(1);
    expect(f.alloc()).toBe(1);
  });

  it('rejects bad capacities, unallocated or never-written slots and wrong page sizes', () => {
    expect(() => new SwapFile({ capacity: 0 })).toThrow(/capacity/);
    expect(() => new SwapFile({ capacity: 2 ** 24 + 1 })).toThrow(/24-bit/);
    const f = make(2);
    expect(() => f.read(0)).toThrow(/not allocated/);
    expect(() => f.write(5, page(0))).toThrow(/outside/);
    const s = f.alloc();
    expect(() => f.read(s)).toThrow(/never written/);
    expect(() => f.write(s, new Uint8Array(10))).toThrow(/4096 bytes/);
    expect(() => f.free(1)).toThrow(/not allocated/);
  });

  it('close removes the temporary directory it created; a given path is left in place', () => {
    const f = new SwapFile({ capacity: 2 });
    const dir = f.directory!;
    expect(path.basename(dir)).toMatch(/^memvisor-swap-/);
    expect(fs.existsSync(f.path)).toBe(true);
    f.close();
    expect(fs.existsSync(dir)).toBe(false);
    expect(() => f.alloc()).toThrow(/closed/);
    f.close(); // idempotent

    const dir2 = fs.mkdtempSync(path.join(os.tmpdir(), 'memvisor-test-'));
    try {
      const g = new SwapFile({ capacity: 2, path: path.join(dir2, 'my.swap') });
      expect(g.directory).toBeNull();
      g.write(g.alloc(), page(9));
      g.close();
      expect(fs.readFileSync(path.join(dir2, 'my.swap')).subarray(0, SLOT_BYTES)).toEqual(Buffer.from(page(9)));
    } finally { fs.rmSync(dir2, { recursive: true, force: true }); }
  });
});

describe('SwapFile I/O faults (injected through SwapIo)', () => {
  it('a failed or short transfer throws SwapIoError naming file, slot and cause; a failed write leaves the slot unreadable', async () => {
    const { nodeSwapIo, SwapIoError } = await import('../../../../src/hypervisor/index.js');
    let failWrite: 'enospc' | 'short' | null = null, shortRead = false;
    const io = {
      ...nodeSwapIo,
      write: (fd: number, d: Uint8Array, pos: number) => {
        if (failWrite === 'enospc') throw Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
        return failWrite === 'short' ? nodeSwapIo.write(fd, d.subarray(0, 100), pos) : nodeSwapIo.write(fd, d, pos);
      },
      read: (fd: number, into: Uint8Array, pos: number) => (shortRead ? 0 : nodeSwapIo.read(fd, into, pos)),
    };
    const f = new SwapFile({ capacity: 4, io });
    open.push(f);
    const s = f.alloc();
    f.write(s, page(1));
    failWrite = 'enospc';
    expect(() => f.write(s, page(2))).toThrow(new RegExp(`swap slot ${s} in .*: write failed: ENOSPC`));
    expect(() => f.read(s)).toThrow(/never written/); // the old checksum cannot vouch for a half-written slot
    failWrite = 'short';
    expect(() => f.write(s, page(2))).toThrow(SwapIoError);
    failWrite = null;
    f.write(s, page(3));
    shortRead = true;
    expect(() => f.read(s)).toThrow(/read failed: short read \(0 of 4096 bytes\)/);
    shortRead = false;
    expect(f.read(s)).toEqual(page(3));
    expect(f.stats).toMatchObject({ writes: 2, reads: 1 });
  });
});
