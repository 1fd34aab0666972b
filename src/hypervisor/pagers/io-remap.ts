// Hot I/O page remapping (Waldspurger, OSDI 2002, §7).
//
// Devices that reach only low host memory (32-bit DMA below 4 GB on a PAE host with up to
// 64 GB) cannot transfer into a guest page whose host frame is high: the hypervisor copies
// through a low bounce buffer on every transfer. Because guest-physical pages are mapped
// to host frames by the p2m, ESX can instead move a page that keeps taking I/O copies into
// low memory, transparently to the guest, once its copy count passes a threshold; after
// that its transfers need no copy.
//
// Here the device is the guest swap disk's DMA engine (devices/swapdisk.ts): the board
// gives the disk `view(vm, charge)` as its DMA memory. Per 4 KiB page of a transfer:
//   host frame < dmaLimit  → direct transfer (counted `direct`, or `avoided` if this page
//                            is low because it was remapped here: a copy avoided)
//   host frame ≥ dmaLimit  → bounce copy (`bounces`, `bounceCycles` charged to the vCPU);
//                            the page's count goes up, and at `hotThreshold` it is remapped
//                            into a frame of the low reserve (one copy, `remapCycles`)
// The low reserve: `reserveFrames` free frames below the limit, claimed when the remapper
// is created (owner IO_RESERVE_OWNER), so guests' ordinary allocations cannot take the
// memory hot pages need. When it is empty, hot pages keep bouncing (`reserveEmpty`).
// Scaled down: the "4 GB" limit is `dmaLimit` frames of this host. Costs default to the
// sharing pager's page copy (1000 cycles) for a bounce and copy + remap (1300) for a move.
// A shared, write-protected or trapped page is never moved (its frame is not the VM's alone
// or another subsystem tracks it); it bounces.

import type { Gfn, Hfn } from '../../core/addr.js';
import { hpaOf, hex } from '../../core/addr.js';
import { IO_RESERVE_OWNER, type HostFrames } from '../monitor/frames.js';
import { P2M, frameField } from '../monitor/p2m.js';
import type { Vm } from '../monitor/vm.js';
import type { PhysicalMemory } from '../../core/memory.js';

export interface IoRemapOptions {
  /** First host frame a 32-bit DMA device cannot reach. */
  dmaLimit: number;
  /** Bounce copies after which a page is remapped low; 0 = never remap (bounce always). */
  hotThreshold: number;
  /** Low frames kept for remapped pages. */
  reserveFrames: number;
  bounceCycles?: number;
  remapCycles?: number;
}

export interface IoRemapStats {
  /** 4 KiB pages transferred by DMA. */
  pages: number;
  /** Pages whose frame was low anyway. */
  direct: number;
  /** Pages that needed a bounce copy (frame above the limit). */
  bounces: number;
  /** Pages transferred directly because this remapper had moved them low: copies avoided. */
  avoided: number;
  /** Pages moved low. */
  remaps: number;
  /** Hot pages left high because the reserve was empty (or the page could not move). */
  reserveEmpty: number;
  /** Modeled cycles charged (bounces and remaps). */
  cycles: number;
}

/** The DMA memory a device uses: GuestMemory's read/write surface. */
export interface DmaMemory {
  read(gpa: bigint, len: number): Uint8Array;
  write(gpa: bigint, data: Uint8Array): void;
}

export class IoRemapper {
  readonly stats: IoRemapStats = { pages: 0, direct: 0, bounces: 0, avoided: 0, remaps: 0, reserveEmpty: 0, cycles: 0 };
  private readonly reserve: Hfn[];
  private readonly bounceCycles: number;
  private readonly remapCycles: number;
  /** Per VM: bounce counts of high gfns, and the gfns this remapper moved low. */
  private readonly heat = new Map<number, Map<number, number>>();
  private readonly moved = new Map<number, Map<number, number>>(); // gfn → the low hfn it got

  constructor(private readonly frames: HostFrames, private readonly mem: PhysicalMemory, readonly o: IoRemapOptions) {
    if (!Number.isInteger(o.dmaLimit) || o.dmaLimit < 1 || o.dmaLimit > frames.hypervisorStart) {
      throw new RangeError(`dmaLimit must be a host frame number in 1..${frames.hypervisorStart} (the VM pool), got ${o.dmaLimit}`);
    }
    if (!Number.isInteger(o.hotThreshold) || o.hotThreshold < 0) throw new RangeError(`hotThreshold must be an integer ≥ 0 (0 = never remap), got ${o.hotThreshold}`);
    if (!Number.isInteger(o.reserveFrames) || o.reserveFrames < 0) throw new RangeError(`reserveFrames must be an integer ≥ 0, got ${o.reserveFrames}`);
    this.bounceCycles = o.bounceCycles ?? 1000;
    this.remapCycles = o.remapCycles ?? 1300;
    this.reserve = frames.claimBelow(IO_RESERVE_OWNER, o.dmaLimit, o.reserveFrames).reverse(); // pop lowest first
    if (this.reserve.length < o.reserveFrames) {
      for (const h of this.reserve) frames.free(h, IO_RESERVE_OWNER);
      throw new RangeError(`only ${this.reserve.length} free frames below the DMA limit ${hex(o.dmaLimit)}, ${o.reserveFrames} asked for the reserve`);
    }
  }

  /** Low frames left in the reserve. */
  get reserveLeft(): number { return this.reserve.length; }

  /** Gives the unused reserve back to the pool (the host is shutting the device down). */
  close(): void {
    for (const h of this.reserve.splice(0)) this.frames.free(h, IO_RESERVE_OWNER);
  }

  /** The DMA memory for `vm`'s device: transfers through vm.memory, bounce or direct per page. */
  view(vm: Vm, charge: (cycles: number) => void = () => {}): DmaMemory {
    const account = (gpa: bigint, len: number): void => {
      for (let g = Number(gpa >> 12n); g <= Number((gpa + BigInt(len) - 1n) >> 12n); g++) charge(this.page(vm, g as Gfn));
    };
    return {
      read: (gpa, len) => { const out = vm.memory.read(gpa, len); account(gpa, len); return out; },
      write: (gpa, data) => { vm.memory.write(gpa, data); account(gpa, data.length); },
    };
  }

  /** One page of a transfer (the data already moved through the host's view): its cost. */
  private page(vm: Vm, gfn: Gfn): number {
    this.stats.pages++;
    const hfn = vm.p2m.lookup(gfn);
    if (hfn === null) return 0; // an unbacked read transfers zeros: nothing to copy
    if (hfn < this.o.dmaLimit) {
      if (this.moved.get(vm.id)?.get(gfn) === hfn) this.stats.avoided++;
      else this.stats.direct++;
      return 0;
    }
    this.stats.bounces++;
    let cycles = this.bounceCycles;
    const heat = this.heatOf(vm);
    const n = (heat.get(gfn) ?? 0) + 1;
    heat.set(gfn, n);
    if (this.o.hotThreshold > 0 && n >= this.o.hotThreshold) {
      if (this.moveLow(vm, gfn)) { heat.delete(gfn); cycles += this.remapCycles; } else this.stats.reserveEmpty++;
    }
    this.stats.cycles += cycles;
    return cycles;
  }

  /** Moves gfn's contents to a reserve frame and remaps it (p2m → EPT / shadow follow). */
  private moveLow(vm: Vm, gfn: Gfn): boolean {
    const w = vm.p2m.raw(gfn);
    if ((w & (P2M.PRESENT | P2M.SHARED | P2M.WRITE_PROTECTED | P2M.TRAPPED | P2M.SWAPPED | P2M.BALLOONED | P2M.LOGGED)) !== P2M.PRESENT) return false;
    const low = this.reserve.pop();
    if (low === undefined) return false;
    const high = frameField(w) as Hfn;
    this.mem.copy(hpaOf(low), hpaOf(high), 4096);
    try {
      vm.p2m.map(gfn, low); // the listeners update the EPT / zap shadow leaves of the old frame
    } catch {
      this.reserve.push(low); // the EPT could not follow (no table frame): the p2m kept the old entry
      return false;
    }
    this.frames.transfer(low, IO_RESERVE_OWNER, vm.id);
    this.frames.free(high, vm.id);
    let m = this.moved.get(vm.id);
    if (!m) this.moved.set(vm.id, (m = new Map()));
    m.set(gfn, low);
    this.stats.remaps++;
    return true;
  }

  private heatOf(vm: Vm): Map<number, number> {
    let h = this.heat.get(vm.id);
    if (!h) this.heat.set(vm.id, (h = new Map()));
    return h;
  }
}
