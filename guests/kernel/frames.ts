// The guest's physical frame allocator: Linux's struct-page array in miniature.
//
// The frames are guest-physical memory; the bookkeeping (state per frame, free stack,
// reverse map of user mappings) is kernel data kept in TypeScript, as a real kernel keeps
// mem_map in its own memory without re-reading it through the MMU for every decision.
// Free frames are handed out lowest gfn first so boot-time tables land inside the early
// 2 MiB direct map, and so runs are deterministic for a given workload.

import type { PinnedAllocator } from './balloon.js';

export const FRAME = { FREE: 0, RESERVED: 1, KERNEL: 2, TABLE: 3, USER: 4, PINNED: 5 } as const;
export type FrameKind = 'kernel' | 'table' | 'user' | 'pinned';
const KIND: Record<FrameKind, number> = { kernel: FRAME.KERNEL, table: FRAME.TABLE, user: FRAME.USER, pinned: FRAME.PINNED };
const RUN_2M = 512;

/** One user mapping of a frame: which address space, which va, where its PTE lives (gpa). */
export interface Mapping { asid: number; va: bigint; pte: bigint }

export class FrameAllocator implements PinnedAllocator {
  /** Per-frame state (FRAME.*); replaced by a longer array when memory is added. */
  state: Uint8Array;
  private stack: number[] = [];  // may hold stale entries; pop validates against state
  private nFree = 0;
  /** Reverse map of user frames (refcount = mappings.length), for COW and the clock. */
  private readonly rmap = new Map<number, Mapping[]>();

  /** Frames [0, reservedBelow) are firmware's and the boot image's; the rest start free. */
  constructor(public frameCount: number, reservedBelow: number) {
    this.state = new Uint8Array(frameCount).fill(FRAME.RESERVED, 0, reservedBelow);
    for (let g = frameCount - 1; g >= reservedBelow; g--) this.stack.push(g);
    this.nFree = frameCount - reservedBelow;
  }

  get freeCount(): number { return this.nFree; }

  /** Memory hot-add: frames [frameCount, frames) come online, free (lowest handed out first). */
  grow(frames: number): void {
    if (!Number.isInteger(frames) || frames <= this.frameCount) throw new RangeError(`the allocator has ${this.frameCount} frames and can only grow, got ${frames}`);
    const state = new Uint8Array(frames);
    state.set(this.state);
    const fresh = Array.from({ length: frames - this.frameCount }, (_, i) => frames - 1 - i); // under the old ones: lowest first
    this.stack = [...fresh, ...this.stack];
    this.nFree += frames - this.frameCount;
    this.state = state;
    this.frameCount = frames;
  }

  /** Marks an already-reserved frame (boot tables, image) as the kernel's. */
  claim(gfn: number, kind: FrameKind): void { this.state[gfn] = KIND[kind]; }

  /** A free frame, or null when fewer than `reserve` + 1 remain (the reserve is for page tables). */
  alloc(kind: FrameKind, reserve = 0): number | null {
    if (this.nFree <= reserve) return null;
    while (this.stack.length) {
      const g = this.stack.pop()!;
      if (this.state[g] !== FRAME.FREE) continue;
      this.state[g] = KIND[kind];
      this.nFree--;
      return g;
    }
    return null;
  }

  release(gfn: number): void {
    if (this.state[gfn] === FRAME.FREE || this.state[gfn] === FRAME.RESERVED) throw new Error(`double free of gfn ${gfn}`);
    this.rmap.delete(gfn);
    this.state[gfn] = FRAME.FREE;
    this.stack.push(gfn);
    this.nFree++;
  }

  // The balloon driver's interface: pinned frames are never swapped or remapped.
  allocPinned(): number | null { return this.alloc('pinned', 8); }
  free(gfn: number): void {
    if (this.state[gfn] !== FRAME.PINNED) throw new Error(`free(${gfn}): not a pinned frame`);
    this.release(gfn);
  }
  allocPinned2M(): number | null { return this.alloc2M('pinned'); }
  /** A free 512-frame, 2 MiB-aligned run (its first gfn), or null. */
  alloc2M(kind: FrameKind): number | null {
    for (let base = 0; base + RUN_2M <= this.frameCount; base += RUN_2M) {
      let ok = true;
      for (let g = base; g < base + RUN_2M && ok; g++) ok = this.state[g] === FRAME.FREE;
      if (!ok) continue;
      this.state.fill(KIND[kind], base, base + RUN_2M); // stale stack entries are skipped on pop
      this.nFree -= RUN_2M;
      return base;
    }
    return null;
  }
  free2M(gfn: number): void { for (let g = gfn; g < gfn + RUN_2M; g++) this.free(g); }

  mappings(gfn: number): Mapping[] { return this.rmap.get(gfn) ?? []; }
  addMapping(gfn: number, m: Mapping): void {
    const l = this.rmap.get(gfn);
    if (l) l.push(m); else this.rmap.set(gfn, [m]);
  }
  /** Drops one mapping; returns the remaining count. */
  removeMapping(gfn: number, asid: number, va: bigint): number {
    const l = this.rmap.get(gfn) ?? [];
    const i = l.findIndex((m) => m.asid === asid && m.va === va);
    if (i < 0) throw new Error(`rmap: gfn ${gfn} not mapped at ${va.toString(16)} in as ${asid}`);
    l.splice(i, 1);
    return l.length;
  }

  count(kind: FrameKind): number {
    let n = 0;
    for (const s of this.state) if (s === KIND[kind]) n++;
    return n;
  }
}
