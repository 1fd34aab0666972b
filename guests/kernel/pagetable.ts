// Real x86-64 4-level page tables in guest-physical memory, read and written by the
// kernel with loads and stores through its direct map (so every PTE write is a guest
// store the MMU sees). INVLPG after changing or removing a present mapping of the
// current address space; other address spaces are flushed by the MOV CR3 that switches
// to them (no PCIDs).

import { PTE } from '../../src/core/bits.js';
import type { FrameAllocator } from './frames.js';
import type { KernelCpu } from './kcpu.js';

export const ADDR = 0x000f_ffff_ffff_f000n;
/** A non-present PTE holding a swap slot: bit 9 marks it, the slot is in bits 12..51. */
export const SWAP = 1n << 9n;
export const swapEntry = (slot: number): bigint => (BigInt(slot) << 12n) | SWAP;
export const isSwapEntry = (v: bigint): boolean => (v & PTE.P) === 0n && (v & SWAP) !== 0n;
export const slotOf = (v: bigint): number => Number((v & ADDR) >> 12n);

const idx = (va: bigint, level: number): bigint => (va >> BigInt(12 + 9 * (level - 1))) & 511n;
/** Upper-level entries of user space carry U; the kernel half's do not. */
const tableLink = (gfn: number, user: boolean): bigint => (BigInt(gfn) << 12n) | PTE.P | PTE.W | (user ? PTE.U : 0n);
export const isKernelVa = (va: bigint): boolean => va >= 0xffff_8000_0000_0000n;

export class PageTables {
  /** Page-table frames allocated (all levels). */
  tables = 0;

  constructor(private readonly kc: KernelCpu, private readonly frames: FrameAllocator) {}

  /** A zeroed page-table frame, from the allocator's full pool (user pages leave it a reserve). */
  allocTable(): number {
    const g = this.frames.alloc('table');
    if (g === null) throw new Error('out of memory for page tables');
    this.kc.zeroFrame(g);
    this.tables++;
    return g;
  }

  /** A new PML4 sharing the kernel half (entries 256..511) of `kernelRoot`. */
  newRoot(kernelRoot: number): number {
    const root = this.allocTable();
    const src = BigInt(kernelRoot) << 12n, dst = BigInt(root) << 12n;
    const addrs = Array.from({ length: 256 }, (_, i) => src + BigInt((256 + i) * 8));
    const vals = this.kc.read64(addrs);
    this.kc.write64(vals.map((v, i) => [dst + BigInt((256 + i) * 8), v] as [bigint, bigint]).filter(([, v]) => v !== 0n));
    return root;
  }

  /**
   * The gpa of the entry for va at `level` (1 = PTE, 2 = PDE), creating missing tables
   * when `create`; null if a table is missing, or a large page sits above `level`.
   */
  entry(root: number, va: bigint, create: boolean, level = 1): bigint | null {
    let table = BigInt(root) << 12n;
    for (let l = 4; l > level; l--) {
      const e = table + idx(va, l) * 8n;
      let v = this.kc.load(e);
      if (!(v & PTE.P)) {
        if (!create) return null;
        v = tableLink(this.allocTable(), !isKernelVa(va));
        this.kc.store(e, v);
      } else if (l <= 3 && v & PTE.PS) return null;
      table = v & ADDR;
    }
    return table + idx(va, level) * 8n;
  }

  map4k(root: number, va: bigint, gfn: number, flags: bigint): bigint {
    const e = this.entry(root, va, true, 1)!;
    this.kc.store(e, (BigInt(gfn) << 12n) | flags | PTE.P);
    return e;
  }

  map2m(root: number, va: bigint, gfn: number, flags: bigint): bigint {
    if ((va & 0x1f_ffffn) !== 0n || gfn % 512 !== 0) throw new RangeError('2 MiB mapping must be 2 MiB-aligned');
    const e = this.entry(root, va, true, 2);
    if (e === null) throw new Error(`map2m: a large page already covers 0x${va.toString(16)}`);
    this.kc.store(e, (BigInt(gfn) << 12n) | flags | PTE.P | PTE.PS);
    return e;
  }

  /** Rewrites a PTE; `current` = the address space is loaded in CR3, so the old translation must go. */
  set(pte: bigint, v: bigint, va: bigint, current: boolean): void {
    this.kc.store(pte, v, current ? va : undefined);
  }

  /** A software walk to the final translation (for tests and tools): gpa, or null. */
  translate(root: number, va: bigint): bigint | null {
    let table = BigInt(root) << 12n;
    for (let l = 4; l >= 1; l--) {
      const v = this.kc.load(table + idx(va, l) * 8n);
      if (!(v & PTE.P)) return null;
      if (l === 1 || (l <= 3 && v & PTE.PS)) {
        const mask = (1n << BigInt(12 + 9 * (l - 1))) - 1n;
        return (v & ADDR & ~mask) | (va & mask);
      }
      table = v & ADDR;
    }
    return null;
  }

  /**
   * Every present-or-swapped leaf of the user half (4 KiB PTEs), table by table:
   * fn(va, pteGpa, value). Used by fork (Linux's copy_page_range walks the same way).
   */
  forEachUserLeaf(root: number, fn: (va: bigint, pte: bigint, v: bigint) => void): void {
    const rec = (table: bigint, level: number, base: bigint, count: number): void => {
      const addrs = Array.from({ length: count }, (_, i) => table + BigInt(i * 8));
      const vals = this.kc.read64(addrs);
      vals.forEach((v, i) => {
        const va = base + (BigInt(i) << BigInt(12 + 9 * (level - 1)));
        if (level === 1) { if (v !== 0n) fn(va, addrs[i], v); return; }
        if (!(v & PTE.P)) return;
        if (v & PTE.PS) throw new Error('fork of a large user page is not supported');
        rec(v & ADDR, level - 1, va, 512);
      });
    };
    rec(BigInt(root) << 12n, 4, 0n, 256);
  }
}
