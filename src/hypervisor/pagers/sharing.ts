// Content-based page sharing (Waldspurger, OSDI 2002, §4.2–4.3; cf. Linux KSM).
//
// Three parts: the scanner (sharing-scanner.ts), driven by the caller's virtual clock
// (tick / scan), picks guest frames of the registered VMs in a seeded random order; this
// file hashes them in the core (xxHash64, batched) and matches them against the content
// table (sharing-table.ts: hints and shared frames); the COW pager (sharing-cow.ts) breaks
// the sharing when a shared page is written.
//
// On a match the full contents are compared (in the core) before anything is shared, so a
// hash collision never merges different pages (it counts as a false match and the page is
// left alone, as in ESX). Matching a hint whose page still hashes the same turns the hinted
// page's own frame into the shared frame (no copy); the matching page's frame is freed.
// All-zero pages map one shared zero frame without waiting for a partner (KSM's
// use_zero_pages, ESX's heavily shared zero page).
//
// Sharing remaps the gfn with p2m.map(gfn, sharedHfn, SHARED): the p2m listeners make the
// EPT entry read-only (splitting a 2 MiB / 1 GiB leaf that covers the gfn) and zap shadow
// leaves of the old frame. A guest (or host) write then reaches resolve(), which breaks
// the copy-on-write: the last sharer takes the frame back, others get a private copy.
//
// Shared frames belong to SHARED_OWNER in the VM pool, so host frames in use are always
//   Σ_vm usedBy(vm) + usedBy(SHARED_OWNER) = Σ_vm private backed gfns + distinct shared frames.
//
// Counters follow KSM's definitions (Documentation/admin-guide/mm/ksm.rst):
//   pagesShared  = shared frames in use (KSM pages_shared, stable-tree nodes; the zero frame included)
//   pagesSharing = guest pages mapping them beyond the first, Σ (refs − 1) (KSM pages_sharing),
//                  which is exactly the frames saved
//   zeroShared   = guest pages mapping the zero frame (KSM ksm_zero_pages)
//
// Each scanned batch costs a fixed number of core calls (hash, zero test, hint re-hash,
// compare), whatever its size.

import { requirePageable } from '../monitor/paging.js';
import type { Gfn, Hfn } from '../../core/addr.js';
import { hex } from '../../core/addr.js';
import type { Machine } from '../../core/machine.js';
import { FrameOps, ZERO_FRAME_XXH64, hashKey, MAX_KEY_BITS } from '../../core/hash.js';
import { SHARED_OWNER, type HostFrames } from '../monitor/frames.js';
import { P2M, frameField } from '../monitor/p2m.js';
import type { Vm, VmPager } from '../monitor/vm.js';
import { DEFAULT_SHARING_COSTS, type SharingCosts, type SharingOptions, type SharingStats } from './sharing-options.js';
import { SharingScanner, type Cand, type ScannedVm } from './sharing-scanner.js';
import { ContentTable, type Hint, type Shared } from './sharing-table.js';
import { SharingCow } from './sharing-cow.js';

export { DEFAULT_SHARING_COSTS, type SharingCosts, type SharingOptions, type SharingStats };

/** What page sharing needs from the hypervisor (a Hypervisor is one). */
export interface SharingHost {
  readonly machine: Machine;
  readonly frames: HostFrames;
}


/** A batch's pages with one key, and what they are to be compared against. */
interface Group {
  key: number;
  members: Cand[];
  /** The frame members are compared with: a shared frame, a hinted page, or members[0]. */
  anchor: { kind: 'shared'; e: Shared } | { kind: 'hint'; h: Hint; hfn: number } | { kind: 'first' } | { kind: 'zero' };
  /** Per member: contents equal the anchor (or are zero). */
  same: boolean[];
}

const ELIGIBLE_MASK = P2M.PRESENT | P2M.SHARED | P2M.PAGE_TABLE | P2M.TRAPPED | P2M.WRITE_PROTECTED;
/** Present, and no other subsystem's state: not shared, not a page table, not trapped or write-protected. */
const eligible = (w: number): boolean => (w & ELIGIBLE_MASK) === P2M.PRESENT;

export class PageSharing implements VmPager {
  readonly name = 'sharing';
  readonly costs: SharingCosts;
  private readonly ops: FrameOps;
  private readonly vms = new Map<number, ScannedVm>();
  private readonly table = new ContentTable();
  private readonly scanner: SharingScanner;
  private readonly cow: SharingCow;
  /** NUMA replicas of shared contents: hash key → node → the frame on that node. */
  private readonly replicas = new Map<number, Map<number, Shared>>();
  private readonly zeroKey: number;
  private readonly shareZero: boolean;
  private readonly bits: number;
  private readonly batch: number;
  private readonly c = {
    scanned: 0, passes: 0, hintHits: 0, hintStale: 0, compares: 0, falseMatches: 0, cowBreaks: 0, cowReuses: 0,
    eptSplits: 0, skippedNoTable: 0, scanCycles: 0, cowCycles: 0, replicas: 0,
  };

  constructor(private readonly host: SharingHost, o: SharingOptions = {}) {
    const ratePerVm = rate(o.scanRatePerVm ?? 50, 'scanRatePerVm');
    const rateTotal = rate(o.scanRateTotal ?? 200, 'scanRateTotal');
    this.bits = o.hashBits ?? MAX_KEY_BITS;
    this.zeroKey = hashKey(ZERO_FRAME_XXH64, this.bits); // validates bits
    this.batch = o.batch ?? 512;
    if (!Number.isInteger(this.batch) || this.batch < 1) throw new RangeError(`batch must be a positive integer, got ${o.batch}`);
    this.shareZero = o.shareZeroPages ?? true;
    this.costs = { ...DEFAULT_SHARING_COSTS, ...o.costs };
    this.scanner = new SharingScanner(ratePerVm, rateTotal, o.seed ?? 1, eligible, this.c);
    this.cow = new SharingCow(host, this.table, this.vms, this.costs, this.c);
    this.ops = new FrameOps(host.machine.core, host.frames.total, this.batch);
  }

  // ── registration ──────────────────────────────────────────────────────────────────

  /** Scans `vm`'s memory from now on and installs this pager on it (copy-on-write breaks). */
  addVm(vm: Vm): void {
    if (vm.isDestroyed) throw new Error(`VM ${vm.id} was destroyed`);
    requirePageable(vm, 'its gpa = hpa mapping cannot be remapped for sharing');
    if (this.vms.has(vm.id)) throw new Error(`VM ${vm.id} is already registered with page sharing`);
    const st = this.scanner.newVm(vm);
    this.vms.set(vm.id, st);
    vm.watchResize(() => this.scanner.grow(st)); // memory hot-add
    vm.addPager(this);
  }

  /** Guest pages of `vm` currently mapped to shared frames. */
  sharedGfns(vm: Vm): number { return this.vms.get(vm.id)?.shared ?? 0; }

  /** Per-VM counters: shared gfns, pages hashed, hints in the table (zeros if not registered). */
  vmStats(vm: Vm): { sharedGfns: number; scanned: number; hints: number } {
    const st = this.vms.get(vm.id);
    return { sharedGfns: st?.shared ?? 0, scanned: st?.scanned ?? 0, hints: st?.hints.size ?? 0 };
  }

  /** The simulated time of the last tick, in seconds. */
  get now(): number { return this.scanner.now; }

  get stats(): SharingStats {
    const pagesShared = this.table.sharedCount, pagesSharing = this.table.refs - pagesShared;
    return {
      ...this.c, pagesShared, pagesSharing, saved: pagesSharing,
      zeroShared: this.table.zero?.refs ?? 0, hints: this.table.hintCount,
    };
  }

  /** The shared frames and their reference counts (lowest hfn first). */
  sharedFrames(): { hfn: Hfn; refs: number; zero: boolean }[] {
    return this.table.sharedFrames();
  }

  // ── the scanner ───────────────────────────────────────────────────────────────────

  /** Advances the virtual clock by `seconds` and scans what the rates allow; returns pages scanned. */
  scan(seconds: number): number { return this.tick(this.scanner.now + seconds); }

  /**
   * Scans at the configured rates for the time since the last tick (the clock starts at 0).
   * Whole pages of allowance not used (nothing eligible) are dropped; fractions carry over.
   * Returns pages scanned.
   */
  tick(nowSeconds: number): number {
    return this.scanner.tick(nowSeconds, this.vms.values(), this.batch, (chunk) => this.process(chunk));
  }

  /**
   * Tries to share the given gfns of `vm` now, outside the rate limits (ESX tries to share
   * a page before paging it out). Ineligible gfns are skipped. Returns how many became shared.
   */
  shareNow(vm: Vm, gfns: Iterable<number>): number {
    const st = this.cow.state(vm);
    const seen = new Set<number>();
    const cands: Cand[] = [];
    for (const g of gfns) {
      if (!Number.isInteger(g) || g < 0 || g >= vm.frameCount) throw new RangeError(`gfn ${g} outside VM ${vm.id}`);
      if (seen.has(g)) continue;
      seen.add(g);
      const w = vm.p2m.raw(g as Gfn);
      if (eligible(w)) cands.push({ st, gfn: g, hfn: frameField(w), key: 0 });
    }
    const before = st.shared;
    for (let i = 0; i < cands.length; i += this.batch) this.process(cands.slice(i, i + this.batch));
    return st.shared - before;
  }

  // ── one batch: hash, group by key, verify in the core, then share ─────────────────

  private process(cands: Cand[]): void {
    const keys = this.ops.hashKeys(cands.map((c) => c.hfn), this.bits);
    this.c.scanned += cands.length;
    this.c.scanCycles += cands.length * this.costs.hash;
    const groups = new Map<number, Group>();
    cands.forEach((c, i) => {
      c.key = keys[i];
      c.st.scanned++;
      this.table.dropHint(c.st, c.gfn); // its own old hint is superseded by this visit
      let g = groups.get(c.key);
      if (!g) { g = { key: c.key, members: [], anchor: { kind: 'first' }, same: [] }; groups.set(c.key, g); }
      g.members.push(c);
    });
    const list = [...groups.values()];
    for (const g of list) this.chooseAnchor(g);
    this.verifyZero(list);
    this.verifyHints(list);
    this.compareMembers(list);
    for (const g of list) this.apply(g);
  }

  private chooseAnchor(g: Group): void {
    const e = this.table.get(g.key);
    if (this.shareZero && g.key === this.zeroKey) g.anchor = { kind: 'zero' };
    else if (e?.kind === 'shared') g.anchor = { kind: 'shared', e };
    else if (e?.kind === 'hint') {
      const w = e.st.vm.isDestroyed ? 0 : e.st.vm.p2m.raw(e.gfn as Gfn);
      if (eligible(w)) g.anchor = { kind: 'hint', h: e, hfn: frameField(w) };
      else this.staleHint(e);
    }
  }

  /** Zero-key groups: each member is tested for all-zero contents (one core call). */
  private verifyZero(groups: Group[]): void {
    const zs = groups.filter((g) => g.anchor.kind === 'zero');
    const hfns = zs.flatMap((g) => g.members.map((m) => m.hfn));
    if (hfns.length === 0) return;
    const z = this.ops.isZero(hfns);
    this.c.scanCycles += hfns.length * this.costs.compare;
    let i = 0;
    for (const g of zs) g.same = g.members.map(() => z[i++] === 1);
  }

  /** Hinted pages are re-hashed (one core call); a changed hash makes the hint stale. */
  private verifyHints(groups: Group[]): void {
    const hs = groups.filter((g) => g.anchor.kind === 'hint');
    if (hs.length === 0) return;
    const keys = this.ops.hashKeys(hs.map((g) => (g.anchor as { hfn: number }).hfn), this.bits);
    this.c.scanCycles += hs.length * this.costs.hash;
    hs.forEach((g, i) => {
      if (keys[i] === g.key) return;
      this.staleHint((g.anchor as { h: Hint }).h);
      g.anchor = { kind: 'first' };
    });
  }

  /** Full compares of every member with its group's anchor frame (one core call). */
  private compareMembers(groups: Group[]): void {
    const a: number[] = [], b: number[] = [];
    for (const g of groups) {
      const an = g.anchor;
      if (an.kind === 'zero') continue;
      const ref = an.kind === 'shared' ? an.e.hfn : an.kind === 'hint' ? an.hfn : g.members[0].hfn;
      for (let i = an.kind === 'first' ? 1 : 0; i < g.members.length; i++) { a.push(g.members[i].hfn); b.push(ref); }
    }
    const eq = a.length > 0 ? this.ops.equal(a, b) : new Uint8Array(0);
    this.c.compares += a.length;
    this.c.scanCycles += a.length * this.costs.compare;
    let k = 0;
    for (const g of groups) {
      if (g.anchor.kind === 'zero') continue;
      const first = g.anchor.kind === 'first';
      g.same = g.members.map((_, i) => (first && i === 0 ? true : eq[k++] === 1));
    }
  }

  private apply(g: Group): void {
    const an = g.anchor;
    const same = g.members.filter((_, i) => g.same[i]);
    this.c.falseMatches += g.members.length - same.length;
    if (an.kind === 'zero') {
      for (const m of same) {
        if (this.table.zero) this.join(m, this.table.zero);
        else this.table.zero = this.promote(m.st, m.gfn, m.hfn, g.key, true);
      }
      return;
    }
    if (an.kind === 'shared') { for (const m of same) this.join(m, an.e); return; }
    if (an.kind === 'hint') {
      if (same.length === 0) return; // the hint stays; these pages collided with it
      const e = this.promote(an.h.st, an.h.gfn, an.hfn, g.key, false);
      if (!e) return;
      this.c.hintHits++;
      for (const m of same) this.join(m, e);
      return;
    }
    const [first, ...rest] = same; // 'first': members[0] is always in `same`
    if (rest.length === 0) { this.table.addHint(first.st, first.gfn, first.key); return; }
    const e = this.promote(first.st, first.gfn, first.hfn, g.key, false);
    if (e) for (const m of rest) this.join(m, e);
  }

  // ── sharing and unsharing one page ────────────────────────────────────────────────

  /** Makes the page's own frame a shared frame (refs 1). Null if its EPT leaf cannot be split. */
  private promote(st: ScannedVm, gfn: number, hfn: number, key: number, zero: boolean): Shared | null {
    if (!this.canRemap(st.vm, gfn)) return null;
    this.table.dropHint(st, gfn);
    this.host.frames.transfer(hfn as Hfn, st.vm.id, SHARED_OWNER);
    this.cow.remap(st.vm, gfn, hfn, P2M.SHARED);
    const e = this.table.addShared(hfn, key, zero);
    st.shared++;
    return e;
  }

  /** Maps the page to shared frame e and frees its own frame. */
  private join(m: Cand, e: Shared): void {
    if (!this.canRemap(m.st.vm, m.gfn)) return;
    this.cow.remap(m.st.vm, m.gfn, e.hfn, P2M.SHARED);
    this.host.frames.free(m.hfn as Hfn, m.st.vm.id);
    this.table.ref(e);
    m.st.shared++;
  }

  /** A 4 KiB remap inside a large EPT leaf needs table frames (one per level split). */
  private canRemap(vm: Vm, gfn: number): boolean {
    const m = vm.ept?.lookup(gfn as Gfn);
    const need = m && m.level > 1 ? m.level - 1 : 0;
    if (need === 0 || this.host.frames.counts().hypervisorFree >= need) return true;
    this.c.skippedNoTable++;
    return false;
  }

  private staleHint(h: Hint): void {
    this.c.hintStale++;
    this.table.dropHint(h.st, h.gfn);
  }

  // ── NUMA replicas ─────────────────────────────────────────────────────────────────

  /**
   * Maps vm's shared gfn to a replica of its shared frame on `node` (NUMA: read-only shared
   * pages are replicated per node, so each VM reads its node's copy). A replica already on
   * the node is reused; else `alloc(node)` gives a SHARED_OWNER frame there and the bytes are
   * copied. The gfn stays shared (copy-on-write) and read-only. Returns what happened.
   */
  replicate(vm: Vm, gfn: Gfn, node: number, nodeOf: (hfn: number) => number,
    alloc: (node: number) => Hfn | null): 'replicated' | 'local' | 'no-frame' | 'not-shared' {
    const w = vm.p2m.raw(gfn);
    if ((w & ELIGIBLE_MASK) !== (P2M.PRESENT | P2M.SHARED)) return 'not-shared';
    const e = this.table.shared(frameField(w));
    if (!e) throw new Error(`VM ${vm.id} gfn ${hex(gfn)}: shared frame ${hex(frameField(w))} unknown`);
    if (nodeOf(e.hfn) === node) return 'local';
    let group = this.replicas.get(e.key);
    if (!group) this.replicas.set(e.key, (group = new Map()));
    let r = group.get(node);
    if (r && this.table.shared(r.hfn) !== r) r = undefined; // that replica's last page went away
    if (!r) {
      const h = alloc(node);
      if (h === null) return 'no-frame';
      this.host.machine.memory.copy(BigInt(h) << 12n, BigInt(e.hfn) << 12n, 4096);
      r = this.table.addReplica(h, e);
      group.set(node, r);
      this.c.replicas++;
    }
    vm.p2m.map(gfn, r.hfn as Hfn, P2M.SHARED); // the EPT maps the replica read-only
    this.table.ref(r);
    if (this.table.unref(e)) {
      this.host.frames.free(e.hfn as Hfn, SHARED_OWNER);
      this.table.promote(r);
    }
    return 'replicated';
  }

  // ── VmPager ───────────────────────────────────────────────────────────────────────

  /** Copy-on-write break of a shared gfn being written (sharing-cow.ts). */
  resolve(vm: Vm, gfn: Gfn, word: number, write: boolean): number | null {
    return this.cow.resolve(vm, gfn, word, write);
  }

  /** A balloon took gfn: drop its reference to the shared frame; the gfn becomes unbacked. */
  discard(vm: Vm, gfn: Gfn, word: number): boolean {
    return this.cow.discard(vm, gfn, word);
  }

  /** The VM is going away: its shared gfns become unbacked and drop their references; its hints go. */
  detach(vm: Vm): void {
    if (this.cow.detach(vm)) this.vms.delete(vm.id);
  }

  /**
   * Checks the bookkeeping against the p2ms and the frame allocator (tests, debugging):
   * every shared gfn maps a known shared frame, reference counts equal the mappings,
   * shared frames belong to SHARED_OWNER, hints point at their table slots.
   */
  checkInvariants(): void {
    const refs = new Map<number, number>();
    for (const st of this.vms.values()) {
      let n = 0;
      st.vm.p2m.forEach((gfn, w) => {
        const h = frameField(w);
        if (!this.table.shared(h)) throw new Error(`VM ${st.vm.id} gfn ${hex(gfn)}: shared frame ${hex(h)} unknown`);
        refs.set(h, (refs.get(h) ?? 0) + 1);
        n++;
      }, P2M.PRESENT | P2M.SHARED, P2M.PRESENT | P2M.SHARED);
      if (n !== st.shared) throw new Error(`VM ${st.vm.id}: ${n} shared gfns, counted ${st.shared}`);
      for (const [gfn, key] of st.hints) {
        const e = this.table.get(key);
        if (e?.kind !== 'hint' || e.st !== st || e.gfn !== gfn) throw new Error(`VM ${st.vm.id} gfn ${hex(gfn)}: hint not in the table`);
      }
    }
    let total = 0;
    for (const e of this.table.sharedEntries()) {
      if ((refs.get(e.hfn) ?? 0) !== e.refs) throw new Error(`shared frame ${hex(e.hfn)}: refs ${e.refs}, mapped ${refs.get(e.hfn) ?? 0}`);
      if (this.host.frames.ownerOf(e.hfn as Hfn) !== SHARED_OWNER) throw new Error(`shared frame ${hex(e.hfn)} is not owned by page sharing`);
      total += e.refs;
    }
    if (total !== this.table.refs) throw new Error(`reference total ${this.table.refs}, counted ${total}`);
    if (this.host.frames.usedBy(SHARED_OWNER) !== this.table.sharedCount) {
      throw new Error(`${this.host.frames.usedBy(SHARED_OWNER)} frames owned by page sharing, ${this.table.sharedCount} shared frames`);
    }
  }
}

function rate(v: number, what: string): number {
  if (!Number.isFinite(v) || v < 0) throw new RangeError(`${what} must be a finite number of pages per second ≥ 0, got ${v}`);
  return v;
}
