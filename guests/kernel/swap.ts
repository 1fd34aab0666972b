// Page replacement: a clock over user frames that reads and clears the accessed bits in
// their PTEs (loads and stores through the vCPU, INVLPG after clearing a bit of the
// current address space so the next access walks and sets it again), and paging out to
// and in from the swap disk with port I/O, by DMA or PIO (see swapdisk.ts for the registers).
//
// A COW-shared frame is judged by all its mappings (any accessed bit saves it) and
// evicted from every sharer's PTE, found through the reverse map; each swap entry holds
// a reference to the slot. There is no swap cache: sharers that fault it back in get
// private copies. Every eviction writes the page (no clean-page shortcut).

import { PTE } from '../../src/core/bits.js';
import type { AccessBatch } from '../../src/core/batch.js';
import { FRAME, type FrameAllocator, type Mapping } from './frames.js';
import { type KernelCpu, WORDS } from './kcpu.js';
import { type PageTables, swapEntry } from './pagetable.js';
import { REG, DISK_CMD, SWAP_PORT } from '../../src/devices/swapdisk-protocol.js';

const SCAN = 64; // PTEs read per batch while the hand sweeps

export interface SwapStats { swapOuts: number; swapIns: number; scanned: number; accessedCleared: number }

export class Swapper {
  readonly stats: SwapStats = { swapOuts: 0, swapIns: 0, scanned: 0, accessedCleared: 0 };
  /** Called with the victim's gfn just before its frame is read for the disk (the host counts double paging). */
  beforePageOut?: (gfn: number) => void;
  /** Transfer pages by DMA (the disk copies guest memory) instead of PIO. */
  dma = false;
  private hand = 0;
  private readonly slotRefs = new Map<number, number>();
  private nextSlot = 0;
  private readonly freeSlots: number[] = [];

  constructor(private readonly kc: KernelCpu, private readonly frames: FrameAllocator,
              private readonly pt: PageTables, private readonly isCurrent: (asid: number) => boolean,
              private readonly port = SWAP_PORT, private readonly slots = 1 << 16) {}

  /** Evicts one user frame (it is free on return); false if nothing is evictable. */
  evictOne(): boolean {
    const n = this.frames.frameCount;
    for (let seen = 0; seen < 2 * n;) {
      const cands: { gfn: number; maps: Mapping[] }[] = [];
      while (cands.length < SCAN && seen < 2 * n) {
        const g = this.hand;
        // Back at this batch's first frame: its accessed bits were read before this batch
        // clears them, so end the batch here and read them again in the next one.
        if (cands.length > 0 && g === cands[0].gfn) break;
        this.hand = (this.hand + 1) % n;
        seen++;
        const maps = this.frames.mappings(g);
        if (this.frames.state[g] === FRAME.USER && maps.length > 0) cands.push({ gfn: g, maps: [...maps] });
      }
      if (!cands.length) continue;
      const vals = this.kc.read64(cands.flatMap((c) => c.maps.map((m) => m.pte)));
      const clear: [bigint, bigint][] = [], flush: bigint[] = [];
      let victim = -1, at = 0;
      for (let i = 0; i < cands.length; i++) {
        this.stats.scanned++;
        let accessed = false;
        for (const m of cands[i].maps) {
          const v = vals[at++];
          if (!(v & PTE.A)) continue;
          accessed = true;
          clear.push([m.pte, v & ~PTE.A]);
          if (this.isCurrent(m.asid)) flush.push(m.va);
        }
        if (accessed) continue;
        victim = i;
        this.hand = (cands[i].gfn + 1) % n; // the hand stops just past the victim
        break;
      }
      if (clear.length) { this.kc.write64(clear, flush); this.stats.accessedCleared += clear.length; }
      if (victim >= 0) { this.pageOut(cands[victim].gfn, cands[victim].maps); return true; }
    }
    return false;
  }

  private pageOut(gfn: number, maps: Mapping[]): void {
    this.beforePageOut?.(gfn);
    const slot = this.allocSlot();
    const b = this.kc.b.clear();
    b.out(this.port + REG.SECTOR, BigInt(slot), 4);
    if (this.dma) {
      this.dmaAddress(b, gfn).out(this.port + REG.CMD, BigInt(DISK_CMD.DMA_WRITE), 1);
    } else {
      const data = this.kc.readFrame(gfn);
      for (let i = 0; i < WORDS; i++) {
        b.out(this.port + REG.DATA, data[i] & 0xffff_ffffn, 4).out(this.port + REG.DATA, data[i] >> 32n, 4);
      }
      b.out(this.port + REG.CMD, BigInt(DISK_CMD.WRITE), 1);
    }
    b.in(this.port + REG.STATUS, 1);
    this.kc.exec();
    if (b.value(b.length - 1) !== 0n) throw new Error(`swap disk: write of slot ${slot} failed`);
    for (const m of maps) this.pt.set(m.pte, swapEntry(slot), m.va, this.isCurrent(m.asid));
    this.slotRefs.set(slot, maps.length);
    this.frames.release(gfn);
    this.stats.swapOuts++;
  }

  /** Reads slot into gfn and drops this PTE's reference to the slot. */
  pageIn(slot: number, gfn: number): void {
    if (this.dma) {
      const b = this.kc.b.clear();
      b.out(this.port + REG.SECTOR, BigInt(slot), 4);
      this.dmaAddress(b, gfn).out(this.port + REG.CMD, BigInt(DISK_CMD.DMA_READ), 1).in(this.port + REG.STATUS, 1);
      this.kc.exec();
      if (b.value(b.length - 1) !== 0n) throw new Error(`swap disk: DMA read of slot ${slot} failed`);
      this.putSlot(slot);
      this.stats.swapIns++;
      return;
    }
    const b = this.kc.b.clear();
    b.out(this.port + REG.SECTOR, BigInt(slot), 4).out(this.port + REG.CMD, BigInt(DISK_CMD.READ), 1).in(this.port + REG.STATUS, 1);
    for (let i = 0; i < 2 * WORDS; i++) b.in(this.port + REG.DATA, 4);
    this.kc.exec();
    if (b.value(2) !== 0n) throw new Error(`swap disk: read of slot ${slot} failed`);
    const data = new BigUint64Array(WORDS);
    for (let i = 0; i < WORDS; i++) data[i] = b.value(3 + 2 * i) | (b.value(4 + 2 * i) << 32n);
    this.kc.writeFrame(gfn, data);
    this.putSlot(slot);
    this.stats.swapIns++;
  }

  /** Programs the DMA address registers with gfn's guest-physical address. */
  private dmaAddress(b: AccessBatch, gfn: number): AccessBatch {
    const gpa = BigInt(gfn) << 12n;
    return b.out(this.port + REG.DMA_LO, gpa & 0xffff_ffffn, 4).out(this.port + REG.DMA_HI, gpa >> 32n, 4);
  }

  /** fork copied a swap PTE: one more reference to its slot. */
  getSlot(slot: number): void { this.slotRefs.set(slot, (this.slotRefs.get(slot) ?? 0) + 1); }

  putSlot(slot: number): void {
    const r = (this.slotRefs.get(slot) ?? 0) - 1;
    if (r < 0) throw new Error(`swap slot ${slot} released twice`);
    if (r === 0) { this.slotRefs.delete(slot); this.freeSlots.push(slot); } else this.slotRefs.set(slot, r);
  }

  get slotsInUse(): number { return this.slotRefs.size; }

  private allocSlot(): number {
    const s = this.freeSlots.length ? this.freeSlots.pop()! : this.nextSlot++;
    if (s >= this.slots) throw new Error('swap disk full');
    this.slotRefs.set(s, 1);
    return s;
  }
}
