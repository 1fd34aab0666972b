// The host frame allocator: who owns each 4 KiB frame of host physical memory.
//
// Host memory is split into two pools (the hypervisor region at the top, so a native VM
// can own frames [0, n) and keep gpa = hpa):
//
//   hfn 0 ─────────────────────── vmEnd ───────────────────── total
//   │ VM pool: guest-frame backing  │ hypervisor pool: EPT and  │
//   │ (and a native VM's [0, n))    │ shadow tables             │
//
// NUMA: the VM pool may be split into `nodes` equal contiguous ranges, each with its own
// free stack (NodePools). An owner with a home node gets frames from it first, then from
// the next nodes in order; with one node (the default) nothing differs.
//
// Each pool keeps its free frames in a stack (a LIFO free list: a freed frame is the next
// one handed out, as a per-CPU page list does) with a position index, so alloc, free and
// claiming one particular frame are all O(1) and the order is deterministic. The stack
// starts in descending order, so a fresh pool hands out its lowest frame first.

import { type Hfn, hpaOf, hex } from '../../core/addr.js';
import type { PhysicalMemory } from '../../core/memory.js';

/**
 * Owner ids: 0 = free, HV_OWNER = the hypervisor's own structures, SHARED_OWNER = content-
 * shared frames (page sharing holds their reference counts; VM pool), IO_RESERVE_OWNER =
 * low frames kept for hot I/O pages (pagers/io-remap.ts; VM pool), 1..0xfffc = a VM id.
 */
export const FREE = 0;
export const HV_OWNER = 0xffff;
export const SHARED_OWNER = 0xfffe;
export const IO_RESERVE_OWNER = 0xfffd;
export type Owner = number;
export type PoolName = 'vm' | 'hypervisor';

/** Thrown by alloc() when a pool is empty; tryAlloc() returns null instead (for swapping). */
export class OutOfFramesError extends Error {
  constructor(readonly pool: PoolName, readonly owner: Owner) {
    super(`out of host frames in the ${pool} pool (allocating for ${ownerName(owner)})`);
    this.name = 'OutOfFramesError';
  }
}

export const ownerName = (o: Owner): string =>
  (o === HV_OWNER ? 'the hypervisor' : o === SHARED_OWNER ? 'page sharing' : o === IO_RESERVE_OWNER ? 'the I/O low-memory reserve' : `VM ${o}`);

class Pool {
  private readonly stack: Int32Array; // free hfns; top = stack[top-1]
  private readonly pos: Int32Array;   // hfn-start → index in stack, or -1 when not free
  private top: number;

  constructor(readonly start: number, readonly end: number) {
    const n = end - start;
    this.stack = new Int32Array(n);
    this.pos = new Int32Array(n);
    for (let i = 0; i < n; i++) { this.stack[i] = end - 1 - i; this.pos[n - 1 - i] = i; }
    this.top = n;
  }

  get free(): number { return this.top; }
  get size(): number { return this.end - this.start; }
  contains(hfn: number): boolean { return hfn >= this.start && hfn < this.end; }
  isFree(hfn: number): boolean { return this.pos[hfn - this.start] >= 0; }

  pop(): number | null {
    if (this.top === 0) return null;
    const hfn = this.stack[--this.top];
    this.pos[hfn - this.start] = -1;
    return hfn;
  }

  push(hfn: number): void {
    this.stack[this.top] = hfn;
    this.pos[hfn - this.start] = this.top++;
  }

  /** Takes a particular free frame out of the stack (swap with the top, then pop). */
  take(hfn: number): void {
    const i = this.pos[hfn - this.start];
    const last = this.stack[--this.top];
    this.stack[i] = last;
    this.pos[last - this.start] = i;
    this.pos[hfn - this.start] = -1;
  }
}

/** The VM pool as `n` node pools over equal contiguous ranges of [start, end). */
class NodePools {
  readonly pools: Pool[];
  constructor(readonly start: number, readonly end: number, n: number) {
    const size = end - start;
    this.pools = Array.from({ length: n }, (_, i) => new Pool(start + Math.floor((i * size) / n), start + Math.floor(((i + 1) * size) / n)));
  }

  get free(): number { return this.pools.reduce((s, p) => s + p.free, 0); }
  get size(): number { return this.end - this.start; }
  contains(hfn: number): boolean { return hfn >= this.start && hfn < this.end; }
  nodeOf(hfn: number): number {
    let i = this.pools.length - 1;
    while (i > 0 && hfn < this.pools[i].start) i--;
    return i;
  }
  isFree(hfn: number): boolean { return this.pools[this.nodeOf(hfn)].isFree(hfn); }
  /** A free frame from node `first`, else from the next nodes in order. */
  pop(first = 0): number | null {
    const n = this.pools.length;
    for (let k = 0; k < n; k++) {
      const h = this.pools[(first + k) % n].pop();
      if (h !== null) return h;
    }
    return null;
  }
  push(hfn: number): void { this.pools[this.nodeOf(hfn)].push(hfn); }
  take(hfn: number): void { this.pools[this.nodeOf(hfn)].take(hfn); }
}

export interface HostFramesOptions {
  /** Frames of host memory (host bytes / 4096). */
  totalFrames: number;
  /** Frames at the top reserved for the hypervisor's own structures. */
  hypervisorFrames: number;
  /**
   * The memory is all zeros and only frames handed out by this allocator get written
   * (true for a Hypervisor's own new Machine): a frame handed out for the first time needs
   * no zeroing, so a guest page never written costs the host (and its OS) nothing.
   */
  freshMemory?: boolean;
  /** NUMA nodes the VM pool is split into (default 1). The hypervisor pool counts as node 0. */
  nodes?: number;
}

export interface FrameCounts {
  total: number; free: number; vmFree: number; hypervisorFree: number;
  /** Frames in use by the hypervisor's own structures. */
  hypervisor: number;
  /** Frames in use, by VM id (shared frames are usedBy(SHARED_OWNER), not any VM's). */
  byVm: Record<number, number>;
}

export class HostFrames {
  readonly total: number;
  private readonly owner: Uint16Array;
  private readonly vmPool: NodePools;
  private readonly hvPool: Pool;
  /** NUMA nodes of the VM pool. */
  readonly nodes: number;
  private readonly home = new Map<Owner, number>();
  private readonly used = new Map<Owner, { n: number }>(); // a box per owner: one lookup per change
  /** 1 if the frame may hold bytes (it was handed out before, or the memory was not fresh). */
  private readonly dirty: Uint8Array;

  constructor(private readonly memory: PhysicalMemory, opts: HostFramesOptions) {
    const { totalFrames: total, hypervisorFrames: hv } = opts;
    if (!Number.isInteger(total) || total < 2 || total >= 2 ** 24) {
      throw new RangeError(`totalFrames must be an integer in 2..2^24 (p2m entries hold 24-bit hfns), got ${total}`);
    }
    if (!Number.isInteger(hv) || hv < 1 || hv >= total) {
      throw new RangeError(`hypervisorFrames must be in 1..${total - 1}, got ${hv}`);
    }
    this.total = total;
    this.owner = new Uint16Array(total);
    this.dirty = new Uint8Array(total).fill(opts.freshMemory ? 0 : 1);
    this.nodes = opts.nodes ?? 1;
    if (!Number.isInteger(this.nodes) || this.nodes < 1 || this.nodes > 64 || this.nodes > total - hv) {
      throw new RangeError(`nodes must be an integer in 1..64 (and at most one per VM-pool frame), got ${opts.nodes}`);
    }
    this.vmPool = new NodePools(0, total - hv, this.nodes);
    this.hvPool = new Pool(total - hv, total);
  }

  /** First hfn of the hypervisor region (= number of frames in the VM pool). */
  get hypervisorStart(): number { return this.vmPool.end; }

  private poolFor(owner: Owner): Pool | NodePools { return owner === HV_OWNER ? this.hvPool : this.vmPool; }

  /** The NUMA node of a host frame (the hypervisor pool is node 0). */
  nodeOf(hfn: number): number { return this.vmPool.contains(hfn) ? this.vmPool.nodeOf(hfn) : 0; }
  /** [start, end) of a node's part of the VM pool. */
  nodeRange(node: number): { start: number; end: number } {
    const p = this.vmPool.pools[node];
    if (!p) throw new RangeError(`node ${node} outside 0..${this.nodes - 1}`);
    return { start: p.start, end: p.end };
  }
  /** Free VM-pool frames on a node. */
  nodeFree(node: number): number { return this.vmPool.pools[node]?.free ?? 0; }
  /** Makes `node` the first place the owner's frames come from (NUMA home node). */
  setHome(owner: Owner, node: number): void {
    this.checkOwner(owner);
    if (!Number.isInteger(node) || node < 0 || node >= this.nodes) throw new RangeError(`home node ${node} outside 0..${this.nodes - 1}`);
    this.home.set(owner, node);
  }
  homeOf(owner: Owner): number { return this.home.size === 0 ? 0 : this.home.get(owner) ?? 0; } // no lookup without NUMA homes

  /** A zeroed VM-pool frame from exactly `node`, or null if that node has none free. */
  tryAllocOn(owner: Owner, node: number): Hfn | null {
    this.checkOwner(owner);
    if (owner === HV_OWNER) throw new RangeError('tryAllocOn is for the VM pool');
    const hfn = this.vmPool.pools[node]?.pop() ?? null;
    return hfn === null ? null : this.assign(hfn, owner);
  }

  private checkOwner(owner: Owner): void {
    if (!Number.isInteger(owner) || owner <= FREE || owner > HV_OWNER) throw new RangeError(`bad frame owner ${owner}`);
  }

  /**
   * Every frame handed out is zeroed: it may hold a previous owner's bytes (isolation).
   * A frame of fresh memory handed out for the first time is zero already and is left
   * untouched; zeroing writes only where some byte is not zero.
   */
  private assign(hfn: number, owner: Owner): Hfn {
    this.owner[hfn] = owner;
    const u = this.used.get(owner);
    if (u) u.n++; else this.used.set(owner, { n: 1 });
    if (this.dirty[hfn]) this.memory.zero(hpaOf(hfn as Hfn), 4096);
    this.dirty[hfn] = 1;
    return hfn as Hfn;
  }

  /** A zeroed frame from the owner's pool, or null if that pool is empty. */
  tryAlloc(owner: Owner): Hfn | null {
    this.checkOwner(owner);
    const hfn = owner === HV_OWNER ? this.hvPool.pop() : this.vmPool.pop(this.homeOf(owner));
    return hfn === null ? null : this.assign(hfn, owner);
  }

  /** A zeroed frame from the owner's pool; throws OutOfFramesError if it is empty. */
  alloc(owner: Owner): Hfn {
    const f = this.tryAlloc(owner);
    if (f === null) throw new OutOfFramesError(owner === HV_OWNER ? 'hypervisor' : 'vm', owner);
    return f;
  }

  /**
   * `count` free, physically contiguous VM-pool frames starting at a multiple of `align`
   * frames (for 2 MiB / 1 GiB EPT pages), lowest first; null if no such run is free.
   * A linear scan: large backings are rare and requested up front.
   */
  tryAllocContiguous(owner: Owner, count: number, align: number): Hfn | null {
    this.checkOwner(owner);
    const pool = this.poolFor(owner);
    const first = Math.ceil(pool.start / align) * align;
    for (let base = first; base + count <= pool.end; base += align) {
      let ok = true;
      for (let i = count - 1; i >= 0 && ok; i--) ok = pool.isFree(base + i);
      if (!ok) continue;
      for (let i = 0; i < count; i++) { pool.take(base + i); this.assign(base + i, owner); }
      return base as Hfn;
    }
    return null;
  }

  /**
   * Up to `count` free VM-pool frames below hfn `limit`, lowest first (a linear scan: the
   * I/O low-memory reserve is claimed once). Fewer if fewer are free.
   */
  claimBelow(owner: Owner, limit: number, count: number): Hfn[] {
    this.checkOwner(owner);
    const pool = this.poolFor(owner);
    const out: Hfn[] = [];
    for (let h = pool.start; h < Math.min(limit, pool.end) && out.length < count; h++) {
      if (pool.isFree(h)) { pool.take(h); out.push(this.assign(h, owner)); }
    }
    return out;
  }

  /** Claims the particular frames [start, start+count) (a native VM's gpa = hpa range). */
  claimRange(owner: Owner, start: number, count: number): void {
    this.checkOwner(owner);
    const pool = this.poolFor(owner);
    for (let h = start; h < start + count; h++) {
      if (!pool.contains(h) || !pool.isFree(h)) {
        throw new RangeError(`host frame ${hex(h)} is not free in the ${owner === HV_OWNER ? 'hypervisor' : 'vm'} pool ` +
          `(owned by ${this.owner[h] ? ownerName(this.owner[h]) : 'nobody, outside the pool'})`);
      }
    }
    for (let h = start; h < start + count; h++) { pool.take(h); this.assign(h, owner); }
  }

  /** Returns a frame to its pool. Its bytes stay until the next owner's zeroing. */
  free(hfn: Hfn, owner: Owner): void {
    if (!Number.isInteger(hfn) || hfn < 0 || hfn >= this.total) throw new RangeError(`hfn ${hfn} outside host memory`);
    if (this.owner[hfn] !== owner) {
      throw new Error(`${ownerName(owner)} frees host frame ${hex(hfn)} owned by ` +
        (this.owner[hfn] ? ownerName(this.owner[hfn]) : 'nobody (double free)'));
    }
    this.owner[hfn] = FREE;
    this.used.get(owner)!.n--;
    this.poolFor(owner).push(hfn);
  }

  /**
   * Hands an in-use frame from one owner to another in the same pool, bytes kept (page
   * sharing turns a VM's frame into a shared one and back without a copy).
   */
  transfer(hfn: Hfn, from: Owner, to: Owner): void {
    this.checkOwner(from);
    this.checkOwner(to);
    if (!Number.isInteger(hfn) || hfn < 0 || hfn >= this.total) throw new RangeError(`hfn ${hfn} outside host memory`);
    if (this.owner[hfn] !== from) {
      throw new Error(`cannot transfer host frame ${hex(hfn)} from ${ownerName(from)}: it is owned by ` +
        (this.owner[hfn] ? ownerName(this.owner[hfn]) : 'nobody'));
    }
    if (this.poolFor(from) !== this.poolFor(to)) throw new Error(`cannot transfer host frame ${hex(hfn)} across pools`);
    this.owner[hfn] = to;
    this.used.get(from)!.n--;
    const u = this.used.get(to);
    if (u) u.n++; else this.used.set(to, { n: 1 });
  }

  ownerOf(hfn: Hfn): Owner { return this.owner[hfn]; }
  usedBy(owner: Owner): number { return this.used.get(owner)?.n ?? 0; }

  counts(): FrameCounts {
    const byVm: Record<number, number> = {};
    for (const [o, { n }] of this.used) if (o !== HV_OWNER && o !== SHARED_OWNER && o !== IO_RESERVE_OWNER && n > 0) byVm[o] = n;
    return {
      total: this.total, free: this.vmPool.free + this.hvPool.free,
      vmFree: this.vmPool.free, hypervisorFree: this.hvPool.free,
      hypervisor: this.usedBy(HV_OWNER), byVm,
    };
  }
}
