// The guest the migration experiment moves: a VM whose vCPU 0 runs in long mode on a
// direct map of all its memory (2 MiB guest pages, tables in gfns [0x100, 0x200)), with
// memory laid out as a migration study needs it, and a writer that stores at a fixed rate
// into a hot set while pre-copy runs (the dirty rate).
//
//   gfn 0x000 ─ 0x100   zero (never written)
//   gfn 0x100 ─ 0x200   the guest's page tables
//   gfn 0x200 ─ …       `dataPages` pages of distinct contents, then `dupPages` copies of one
//                       page (what page sharing merges), then zeros to the end
//   the hot set          the first `hotPages` data pages: the writer's 8-byte stores land there

import { PageTableBuilder, FrameBump, PAGE_2M } from '../core/pagetable.js';
import { CR0, CR4, EFER } from '../core/bits.js';
import type { AccessBatch } from '../core/batch.js';
import type { Hypervisor } from '../hypervisor/monitor/hypervisor.js';
import type { Vm } from '../hypervisor/monitor/vm.js';
import { Rng } from '../util/rng.js';

export const DIRECT = 0x4000_0000_00n;
export const PT_FIRST = 0x100, PT_END = 0x200, DATA_FIRST = 0x200;

export interface WriterLayout { dataPages: number; dupPages: number; hotPages: number }

/** Builds the direct map and boots vCPU 0 on it; returns the guest's tables (to map hot-added memory). */
export function bootWriterGuest(vm: Vm): PageTableBuilder {
  if (vm.frameCount < 2 * 512) throw new RangeError('the writer guest needs at least 4 MiB');
  const gmem = vm.memory.asPhysicalMemory();
  const pt = new PageTableBuilder(gmem, new FrameBump(gmem, BigInt(PT_FIRST) << 12n, BigInt(PT_END) << 12n), 4);
  pt.mapRange(DIRECT, 0n, Number(vm.memoryBytes), PAGE_2M);
  vm.vcpus[0].setRegisters({ cr0: CR0.PG | CR0.WP, cr3: pt.root, cr4: CR4.PAE, efer: EFER.LME | EFER.NXE, cpl: 0 });
  return pt;
}

/** 4 KiB of contents numbered n (never all zero). */
export function pagePattern(n: number): Uint8Array {
  const b = new Uint8Array(4096);
  const v = new DataView(b.buffer);
  for (let i = 0; i < 4096; i += 4) v.setUint32(i, (Math.imul(n + 1, 0x9e37_79b1) ^ Math.imul(i + 1, 0x85eb_ca6b)) >>> 0, true);
  return b;
}

/** Writes the data and duplicate pages (host-side, as a loader would). */
export function fillWriterGuest(vm: Vm, l: WriterLayout): void {
  if (DATA_FIRST + l.dataPages + l.dupPages > vm.frameCount) throw new RangeError(`${l.dataPages} + ${l.dupPages} pages do not fit the VM`);
  for (let i = 0; i < l.dataPages; i++) vm.memory.write(BigInt(DATA_FIRST + i) << 12n, pagePattern(i));
  const dup = pagePattern(0x7fff_0000);
  for (let i = 0; i < l.dupPages; i++) vm.memory.write(BigInt(DATA_FIRST + l.dataPages + i) << 12n, dup);
}

/** Stores at `writesPerSecond` into the hot set; each store is 8 bytes at a random page and offset. */
export class Writer {
  private readonly rng: Rng;
  /** A batch lives in one core's memory: one per host the guest has run on. */
  private readonly batches = new Map<Hypervisor, AccessBatch>();
  /** Stores issued so far. */
  writes = 0;
  private debt = 0;

  constructor(private readonly hv: Hypervisor, private readonly vm: Vm, private readonly hotPages: number, readonly writesPerSecond: number, seed: number) {
    if (!Number.isInteger(hotPages) || hotPages < 1) throw new RangeError(`hotPages must be a positive integer, got ${hotPages}`);
    if (!(writesPerSecond >= 0)) throw new RangeError(`writesPerSecond must be >= 0, got ${writesPerSecond}`);
    this.rng = new Rng(seed);
  }

  /** One load from every hot page (first touches and TLB / shadow fills out of the way); not counted as writes. */
  warm(): void {
    const b = this.batchOf();
    for (let p = 0; p < this.hotPages; p += b.capacity) {
      b.clear();
      for (let i = p; i < Math.min(this.hotPages, p + b.capacity); i++) b.load(Number(DIRECT) + (DATA_FIRST + i) * 4096);
      const x = this.vm.vcpus[0].run(b);
      if (x.reason !== 'end') throw new Error(`writer guest: unexpected ${x.reason} exit warming the hot set`);
    }
  }

  private batchOf(): AccessBatch {
    let b = this.batches.get(this.hv);
    if (!b) { b = this.hv.machine.createBatch(4096); this.batches.set(this.hv, b); }
    return b;
  }

  /** Runs the writer for `seconds` of simulated time. */
  run(seconds: number): void {
    this.debt += seconds * this.writesPerSecond;
    let n = Math.floor(this.debt);
    this.debt -= n;
    const b = this.batchOf();
    while (n > 0) {
      const k = Math.min(n, b.capacity);
      b.clear();
      for (let i = 0; i < k; i++) {
        const page = DATA_FIRST + this.rng.below(this.hotPages), off = this.rng.below(512) * 8;
        b.store(Number(DIRECT) + page * 4096 + off, (BigInt(this.rng.u32()) << 16n) | BigInt((this.writes + i) & 0xffff));
      }
      const x = this.vm.vcpus[0].run(b);
      if (x.reason !== 'end') throw new Error(`writer guest: unexpected ${x.reason} exit at op ${'index' in x ? x.index : '?'}`);
      this.writes += k;
      n -= k;
    }
  }
}
