// NUMA placement and rebalancing (issue 17 item 2), in the spirit of ESX's NUMA scheduler
// and Linux's automatic NUMA balancing.
//
// Host memory comes in nodes (HostFrames `nodes`: equal contiguous ranges of the VM pool).
// Each VM has a home node (frames.setHome) and gets its frames there first; when the home
// node is full they spill to the next node. A page on another node than its VM's home costs
// a remote access (NUMA_COSTS: the cost model the experiments charge per memory access).
// The balancer migrates a VM's remote pages home, a few per pass (a rate limit, as page
// migration costs copies and invalidations): allocate on the home node, copy, remap (the
// p2m listeners update the EPT and zap shadow leaves of the old frame; one INVEPT per
// page), free the old frame. Hot pages first when the caller says which pages are hot.
// Read-only shared pages (page sharing) are not migrated but replicated: a VM whose shared
// page sits on another node gets the replica of that content on its home node (made once
// per node and content, PageSharing.replicate), so every node reads a local copy at the
// price of one frame per node and content. Pages that are write-protected, trapped,
// swapped or ballooned are left alone (another subsystem owns their frames).

import type { Gfn, Hfn } from '../../core/addr.js';
import { hpaOf } from '../../core/addr.js';
import type { PhysicalMemory } from '../../core/memory.js';
import { SHARED_OWNER, type HostFrames } from '../monitor/frames.js';
import type { PageSharing } from './sharing.js';
import { P2M, frameField } from '../monitor/p2m.js';
import type { Vm } from '../monitor/vm.js';

/**
 * Memory-access latencies, cycles (2-socket x86 servers: ~90 ns local, ~140 ns remote at
 * ~2.5 GHz, a remote/local ratio of about 1.5; the ratio is what matters here).
 */
export interface NumaCosts { local: number; remote: number; migrate: number }
export const NUMA_COSTS: NumaCosts = { local: 225, remote: 350, migrate: 1300 };

export interface NumaPass { migrated: number; replicated: number; noFrame: number; cycles: number }

/** Where a VM's present private pages are: per node, and the remote fraction. */
export function placement(vm: Vm, frames: HostFrames): { perNode: number[]; remote: number; pages: number } {
  const perNode = new Array<number>(frames.nodes).fill(0);
  vm.p2m.forEach((_g, w) => { perNode[frames.nodeOf(frameField(w))]++; }, P2M.PRESENT, P2M.PRESENT);
  const pages = perNode.reduce((a, b) => a + b, 0);
  const home = frames.homeOf(vm.id);
  return { perNode, pages, remote: pages ? (pages - perNode[home]) / pages : 0 };
}

// LOGGED: a migration's write-protect dirty log owns the page's rights until it ends.
const MOVABLE = P2M.PRESENT | P2M.SHARED | P2M.WRITE_PROTECTED | P2M.TRAPPED | P2M.SWAPPED | P2M.BALLOONED | P2M.LOGGED;

export class NumaBalancer {
  constructor(private readonly frames: HostFrames, private readonly mem: PhysicalMemory,
    private readonly o: { pagesPerPass: number; costs?: NumaCosts; sharing?: PageSharing }) {
    if (!Number.isInteger(o.pagesPerPass) || o.pagesPerPass < 0) throw new RangeError(`pagesPerPass must be an integer ≥ 0, got ${o.pagesPerPass}`);
  }

  /**
   * Migrates (or, if shared, replicates) up to pagesPerPass of vm's remote pages to its
   * home node: the gfns in `hot` first (in order), then the rest in gfn order. Stops when
   * the home node is full.
   */
  pass(vm: Vm, hot: Iterable<number> = []): NumaPass {
    const r: NumaPass = { migrated: 0, replicated: 0, noFrame: 0, cycles: 0 };
    const home = this.frames.homeOf(vm.id);
    const tried = new Set<number>();
    const left = (): boolean => r.migrated + r.replicated < this.o.pagesPerPass; // replicas count against the rate too
    const visit = (g: number): boolean => {
      if (!left() || tried.has(g) || g < 0 || g >= vm.frameCount) return left();
      tried.add(g);
      const w = vm.p2m.raw(g as Gfn);
      if (this.frames.nodeOf(frameField(w)) === home) return true;
      if ((w & MOVABLE) === (P2M.PRESENT | P2M.SHARED) && this.o.sharing) {
        const how = this.o.sharing.replicate(vm, g as Gfn, home, (h) => this.frames.nodeOf(h), (n) => this.frames.tryAllocOn(SHARED_OWNER, n));
        if (how === 'no-frame') { r.noFrame++; return false; }
        if (how === 'replicated') r.replicated++;
        return left();
      }
      if ((w & MOVABLE) !== P2M.PRESENT) return true;
      if (!this.migrate(vm, g as Gfn, home)) { r.noFrame++; return false; }
      r.migrated++;
      return left();
    };
    for (const g of hot) if (!visit(g)) break;
    for (let g = 0; g < vm.frameCount && left() && r.noFrame === 0; g++) visit(g);
    r.cycles = (r.migrated + r.replicated) * (this.o.costs ?? NUMA_COSTS).migrate;
    return r;
  }

  /** Moves one page to `node`: copy, remap, free. False if the node has no free frame. */
  private migrate(vm: Vm, gfn: Gfn, node: number): boolean {
    const to = this.frames.tryAllocOn(vm.id, node);
    if (to === null) return false;
    const from = frameField(vm.p2m.raw(gfn)) as Hfn;
    this.mem.copy(hpaOf(to), hpaOf(from), 4096);
    try {
      vm.p2m.map(gfn, to); // EPT / shadow follow through the p2m listeners
    } catch (e) {
      this.frames.free(to, vm.id);
      throw e;
    }
    this.frames.free(from, vm.id);
    return true;
  }
}
