// The copy-on-write side of page sharing: the VmPager hooks the VM calls when a shared gfn
// is written (resolve), taken by a balloon (discard) or the VM goes away (detach).
// A write breaks the sharing: the last sharer takes the frame back (no copy), others get a
// private copy. Shared frames belong to SHARED_OWNER, so these moves keep the invariant
//   Σ_vm usedBy(vm) + usedBy(SHARED_OWNER) = Σ_vm private backed gfns + distinct shared frames.

import { type Gfn, type Hfn, hpaOf, hex } from '../../core/addr.js';
import { SHARED_OWNER } from '../monitor/frames.js';
import { P2M, frameField } from '../monitor/p2m.js';
import type { Vm } from '../monitor/vm.js';
import type { SharingCosts } from './sharing-options.js';
import type { ScannedVm } from './sharing-scanner.js';
import type { ContentTable, Shared } from './sharing-table.js';
import type { SharingHost } from './sharing.js';

/** The counters the COW pager and remaps update (page sharing's). */
export interface CowCounters { cowBreaks: number; cowReuses: number; cowCycles: number; eptSplits: number }

export class SharingCow {
  constructor(
    private readonly host: SharingHost,
    private readonly table: ContentTable,
    private readonly vms: ReadonlyMap<number, ScannedVm>,
    private readonly costs: SharingCosts,
    private readonly c: CowCounters,
  ) {}

  /** p2m.map, counting the large EPT leaves the remap splits. */
  remap(vm: Vm, gfn: number, hfn: number, flags: number): void {
    const before = vm.ept?.stats.splits ?? 0;
    vm.p2m.map(gfn as Gfn, hfn as Hfn, flags);
    this.c.eptSplits += (vm.ept?.stats.splits ?? 0) - before;
  }

  /**
   * Copy-on-write break of a shared gfn being written. The last sharer takes the frame
   * back (no copy); otherwise a private frame is allocated (OutOfFramesError propagates,
   * nothing changed) and the contents copied. Trapped / write-protected bits are kept for
   * their own pagers. Returns the modeled cycles.
   */
  resolve(vm: Vm, gfn: Gfn, word: number, write: boolean): number | null {
    if (!write || (word & (P2M.PRESENT | P2M.SHARED)) !== (P2M.PRESENT | P2M.SHARED)) return null;
    const st = this.state(vm);
    const hfn = frameField(word);
    const e = this.known(vm, gfn, hfn);
    const keep = word & (P2M.TRAPPED | P2M.WRITE_PROTECTED);
    let cost: number;
    if (e.refs === 1) {
      this.table.unref(e);
      this.host.frames.transfer(hfn as Hfn, SHARED_OWNER, vm.id);
      this.remap(vm, gfn, hfn, keep);
      this.c.cowReuses++;
      cost = this.costs.remap;
    } else {
      const h = this.host.frames.alloc(vm.id);
      this.host.machine.memory.copy(hpaOf(h), hpaOf(hfn as Hfn), 4096);
      this.remap(vm, gfn, h, keep);
      this.table.unref(e);
      cost = vm.costs.pageAlloc + this.costs.pageCopy;
    }
    st.shared--;
    this.c.cowBreaks++;
    this.c.cowCycles += cost;
    return cost;
  }

  /** A balloon took gfn: drop its reference to the shared frame; the gfn becomes unbacked. */
  discard(vm: Vm, gfn: Gfn, word: number): boolean {
    const both = P2M.PRESENT | P2M.SHARED;
    const st = this.vms.get(vm.id);
    if ((word & both) !== both || !st || st.vm !== vm) return false;
    const e = this.known(vm, gfn, frameField(word));
    vm.p2m.unmap(gfn);
    this.release(e);
    st.shared--;
    return true;
  }

  /** The VM is going away: its shared gfns become unbacked and drop their references; its hints go. */
  detach(vm: Vm): boolean {
    const st = this.vms.get(vm.id);
    if (!st || st.vm !== vm) return false;
    const both = P2M.PRESENT | P2M.SHARED;
    vm.p2m.forEach((gfn, w) => {
      const e = this.known(vm, gfn, frameField(w));
      vm.p2m.unmap(gfn);
      this.release(e);
    }, both, both);
    for (const gfn of [...st.hints.keys()]) this.table.dropHint(st, gfn);
    st.shared = 0;
    return true;
  }

  /** Drops one reference; the last one frees the frame. */
  release(e: Shared): void {
    if (this.table.unref(e)) this.host.frames.free(e.hfn as Hfn, SHARED_OWNER);
  }

  state(vm: Vm): ScannedVm {
    const st = this.vms.get(vm.id);
    if (!st || st.vm !== vm) throw new Error(`VM ${vm.id} is not registered with page sharing`);
    return st;
  }

  private known(vm: Vm, gfn: Gfn, hfn: number): Shared {
    const e = this.table.shared(hfn);
    if (!e) throw new Error(`VM ${vm.id} gfn ${hex(gfn)} maps shared frame ${hex(hfn)} that page sharing does not know`);
    return e;
  }
}
