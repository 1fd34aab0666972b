// Live migration, VMotion-style pre-copy, between two Hypervisors in one process.
//
//   round 0      every gfn with a backing state goes on the wire (unbacked gfns: the
//                destination starts unbacked); the guest keeps running meanwhile
//   round 1..k   the gfns the dirty tracker (dirty.ts) saw change during the previous round
//   converged    a round's dirty set is at most `stopPages`, or `maxRounds` pre-copy rounds
//                ran: the source vCPUs stop (downtime starts), the last dirty set, the vCPU
//                state and the device state are sent, swap slots change hands, the
//                destination re-shares, and the destination resumes (downtime ends); the
//                source VM is destroyed and all its frames freed
//
// Time is the link's: a round lasts bytes / bandwidth simulated seconds (plus the disk
// time of pages read from swap), and the guest runs for that long (`runGuest`) before the
// tracker is harvested. Pages are read at the start of their round, so a write during the
// round is always seen by the next harvest. Downtime = (last dirty set + vCPU and device
// state) / bandwidth + switchoverSeconds.
//
// What each record is (wire.ts) comes from the source p2m: SWAPPED → a swap reference when
// the destination's swap shares the source's swap file, else the page read from swap;
// BALLOONED → a flag; present → zero test and hash in the core (batched), then a zero flag,
// a shared page's contents once per hash and its hash after that, or the page.

import { type Gfn, type Hfn, hpaOf } from '../../core/addr.js';
import { FrameOps } from '../../core/hash.js';
import type { Machine } from '../../core/machine.js';
import type { Hypervisor } from '../monitor/hypervisor.js';
import { P2M, frameField } from '../monitor/p2m.js';
import type { Vm, VmOptions } from '../monitor/vm.js';
import type { HostSwap } from '../pagers/swap.js';
import type { PageSharing } from '../pagers/sharing.js';
import { DirtyTracker, DEFAULT_DIRTY_COSTS, type DirtyCosts, type DirtyStats, type DirtyTracking } from './dirty.js';
import { type KindCounts, type PageKind, carriesContents, noKinds, recordBytes } from './wire.js';

export interface MigrationOptions {
  /** The VM to move (nested or shadow paging). */
  vm: Vm;
  from: Hypervisor;
  to: Hypervisor;
  tracking: DirtyTracking;
  /** Link bandwidth, bytes per simulated second. */
  bandwidth: number;
  /** Cycles per simulated second (disk reads, the guest's TSC across the downtime). */
  hz: number;
  /** Pre-copy rounds (round 0 included) before stop-and-copy is forced (default 30). */
  maxRounds?: number;
  /** Stop-and-copy once a round leaves at most this many dirty pages (default 64). */
  stopPages?: number;
  /** Runs the source guest for `seconds` of simulated time (a round on the wire). */
  runGuest(seconds: number): void;
  /** The source's swap; `to` given and on the same swap file: swap references, else pages read from swap. */
  swap?: { from: HostSwap; to?: HostSwap };
  /** The destination's page sharing (the VM is registered with it here): pages shared at the source are shared again. */
  sharing?: PageSharing;
  /** Device state sent at switchover besides the vCPUs' (bytes; default 0). */
  deviceStateBytes?: number;
  /** Fixed cost of the switchover besides the copy (default 0 s). */
  switchoverSeconds?: number;
  /** Destination VM options besides memory, mode and vCPU count (default: the source's EPT levels and A/D). */
  destination?: Partial<Omit<VmOptions, 'memoryBytes' | 'mode' | 'vcpus'>>;
  /** Called with the stopped source before the last copy (tests snapshot its memory). */
  onSwitchover?(src: Vm): void;
  dirtyCosts?: Partial<DirtyCosts>;
}

export interface RoundStats {
  /** 0 = the full pass; the last round is the stop-and-copy (stopAndCopy true). */
  round: number;
  stopAndCopy: boolean;
  pagesSent: number;
  byKind: KindCounts;
  bytes: number;
  /** Simulated seconds on the wire (and reading swap). */
  seconds: number;
  /** Pages the tracker found dirty after the round (0 for the stop-and-copy). */
  pagesDirtied: number;
}

export interface MigrationResult {
  /** The VM on the destination, ready to run. */
  vm: Vm;
  rounds: RoundStats[];
  /** Pre-copy ended because the dirty set fell to stopPages (false: the round limit). */
  converged: boolean;
  downtimeSeconds: number;
  totalSeconds: number;
  totalBytes: number;
  /** Bytes of vCPU and device state sent at switchover. */
  stateBytes: number;
  tracking: DirtyTracking;
  dirty: DirtyStats;
  /** Swap slots handed over, gfns re-shared on the destination. */
  swapSlotsMoved: number;
  reshared: number;
}

const fopsByMachine = new WeakMap<Machine, FrameOps>();
const frameOps = (hv: Hypervisor): FrameOps => {
  let f = fopsByMachine.get(hv.machine);
  if (!f) { f = new FrameOps(hv.machine.core, hv.frames.total, 1024); fopsByMachine.set(hv.machine, f); }
  return f;
};

/** One record to send: a gfn, its kind, and what it carries. */
interface Rec { gfn: number; kind: PageKind; data?: Uint8Array; hash?: bigint; slot?: number }

/** Moves opts.vm from opts.from to opts.to by pre-copy; see the header. */
export function migrate(o: MigrationOptions): MigrationResult {
  check(o);
  const src = o.vm;
  const dst = o.to.createVm({
    memoryBytes: src.memoryBytes, mode: src.mode, vcpus: src.vcpus.length,
    eptLevels: src.ept!.levels, eptAd: (src.ept!.eptp & 0x40n) !== 0n, ...o.destination,
  });
  try {
    return new Migration(o, dst).run();
  } catch (e) {
    if (!dst.isDestroyed) o.to.destroyVm(dst); // the source keeps running where it was
    throw e;
  }
}

function check(o: MigrationOptions): void {
  if (o.from === o.to) throw new Error('migration needs two different hosts');
  if (o.from.vm(o.vm.id) !== o.vm) throw new Error(`VM ${o.vm.id} is not running on the source host`);
  if (!o.vm.ept) throw new Error(`VM ${o.vm.id} is ${o.vm.mode}: its memory is host frames [0, n); only nested and shadow VMs migrate`);
  if (!(o.bandwidth > 0) || !Number.isFinite(o.bandwidth)) throw new RangeError(`bandwidth must be a positive number of bytes per second, got ${o.bandwidth}`);
  if (!(o.hz > 0)) throw new RangeError(`hz must be positive, got ${o.hz}`);
  const rounds = o.maxRounds ?? 30, stop = o.stopPages ?? 64;
  if (!Number.isInteger(rounds) || rounds < 1) throw new RangeError(`maxRounds must be an integer >= 1, got ${rounds}`);
  if (!Number.isInteger(stop) || stop < 0) throw new RangeError(`stopPages must be an integer >= 0, got ${stop}`);
}

class Migration {
  private readonly src: Vm;
  private readonly tracker: DirtyTracker;
  /** Destination side: hash → contents received; gfn → swap slot to adopt; gfns shared at the source. */
  private readonly received = new Map<bigint, Uint8Array>();
  private readonly swapRefs = new Map<number, number>();
  private readonly sharedAtSource = new Set<number>();
  private readonly swapByRef: boolean;

  constructor(private readonly o: MigrationOptions, private readonly dst: Vm) {
    this.src = o.vm;
    this.swapByRef = !!o.swap?.to && o.swap.to.file === o.swap.from.file;
    this.tracker = new DirtyTracker(this.src, o.tracking, { ...DEFAULT_DIRTY_COSTS, ...o.dirtyCosts });
  }

  run(): MigrationResult {
    const o = this.o, maxRounds = o.maxRounds ?? 30, stopPages = o.stopPages ?? 64;
    const rounds: RoundStats[] = [];
    let todo: number[] = [];
    this.src.p2m.forEach((g, w) => { if (w & (P2M.PRESENT | P2M.SWAPPED | P2M.BALLOONED)) todo.push(g); });
    let converged = false;
    try {
      for (let r = 0; ; r++) {
        const s = this.send(todo, r, false);
        o.runGuest(s.seconds);
        todo = this.tracker.harvest();
        s.pagesDirtied = todo.length;
        rounds.push(s);
        if (todo.length <= stopPages) { converged = true; break; }
        if (r + 1 >= maxRounds) break;
      }
    } catch (e) {
      this.tracker.stop();
      throw e;
    }
    return this.switchover(todo, rounds, converged);
  }

  /** Stop-and-copy: the source is stopped from here on. */
  private switchover(last: number[], rounds: RoundStats[], converged: boolean): MigrationResult {
    const o = this.o;
    this.tracker.stop();
    o.onSwitchover?.(this.src);
    const final = this.send(last, rounds.length, true);
    // The CPU holds every register; under shadow paging CR0 (WP forced) and CR3 (the shadow
    // root) are the guest's only in the shadow MMU.
    const vcpuState = this.src.vcpus.map((v) => ({
      regs: { ...v.cpu.getRegisters(), cr0: v.guestRegisters().cr0, cr3: v.guestRegisters().cr3 }, hidden: v.cpu.saveHiddenState(),
      exceptions: v.cpu.exceptionBitmap, latencies: v.cpu.latencies(),
    }));
    const stateBytes = vcpuState.reduce((n, s) => n + 8 * (Object.keys(s.regs).length + s.hidden.length + 1), 0) + (o.deviceStateBytes ?? 0);
    final.bytes += stateBytes;
    final.seconds += stateBytes / o.bandwidth;
    rounds.push(final);
    const downtime = final.seconds + (o.switchoverSeconds ?? 0);
    const swapSlotsMoved = this.handOverSwap();
    const reshared = this.reshare();
    this.dst.vcpus.forEach((v, i) => {
      const s = vcpuState[i];
      v.cpu.setLatencies(s.latencies);
      v.setRegisters(s.regs);
      v.cpu.loadHiddenState(s.hidden);
      v.cpu.setExceptionBitmap(s.exceptions);
      v.cpu.advanceTsc(BigInt(Math.round(downtime * o.hz))); // the guest's clock runs on through the downtime
    });
    const dirty = { ...this.tracker.stats };
    o.from.destroyVm(this.src);
    const totalBytes = rounds.reduce((n, r) => n + r.bytes, 0);
    return {
      vm: this.dst, rounds, converged, downtimeSeconds: downtime,
      totalSeconds: rounds.reduce((n, r) => n + r.seconds, 0) + (o.switchoverSeconds ?? 0),
      totalBytes, stateBytes, tracking: o.tracking, dirty, swapSlotsMoved, reshared,
    };
  }

  /** Sends gfns (read now) and applies them at the destination. */
  private send(gfns: number[], round: number, stopAndCopy: boolean): RoundStats {
    const recs = this.records(gfns);
    const byKind = noKinds();
    let bytes = 0, diskCycles = 0;
    for (const r of recs) {
      byKind[r.kind]++;
      bytes += recordBytes(r.kind);
      if (r.kind === 'swap-read') diskCycles += this.o.swap!.from.swapInCycles;
      this.apply(r);
    }
    return { round, stopAndCopy, pagesSent: recs.length, byKind, bytes,
      seconds: bytes / this.o.bandwidth + diskCycles / this.o.hz, pagesDirtied: 0 };
  }

  /** Classifies gfns from the source p2m; zero tests and hashes run in the core, batched. */
  private records(gfns: number[]): Rec[] {
    const p2m = this.src.p2m, mem = this.o.from.machine.memory;
    const recs: Rec[] = [];
    const present: Rec[] = [], hfns: number[] = [];
    for (const g of gfns) {
      const w = p2m.raw(g as Gfn);
      if (w & P2M.SWAPPED) recs.push(this.swapped(g, frameField(w)));
      else if (w & P2M.BALLOONED) recs.push({ gfn: g, kind: 'ballooned' });
      else if (!(w & P2M.PRESENT)) recs.push({ gfn: g, kind: 'unbacked' });
      else {
        const r: Rec = { gfn: g, kind: w & P2M.SHARED ? 'shared' : 'page' };
        recs.push(r); present.push(r); hfns.push(frameField(w));
      }
    }
    if (!present.length) return recs;
    const ops = frameOps(this.o.from);
    const zero = ops.isZero(hfns);
    const sharedAt = present.flatMap((r, i) => (r.kind === 'shared' && !zero[i] ? [i] : []));
    const hashes = ops.hash(sharedAt.map((i) => hfns[i]));
    const hashOf = new Map(sharedAt.map((i, k) => [i, hashes[k]]));
    const sentNow = new Map<bigint, Uint8Array>(); // first frames of a content in this batch
    present.forEach((r, i) => {
      if (zero[i]) { r.kind = 'zero'; return; }
      r.data = mem.read(hpaOf(hfns[i] as Hfn), 4096);
      if (r.kind !== 'shared') return;
      r.hash = hashOf.get(i)!;
      const known = this.received.get(r.hash) ?? sentNow.get(r.hash);
      if (known && equalBytes(known, r.data)) r.kind = 'shared-ref'; // a hash collision is sent in full
      else if (!known) sentNow.set(r.hash, r.data);
    });
    return recs;
  }

  private swapped(gfn: number, slot: number): Rec {
    if (!this.o.swap) throw new Error(`gfn ${gfn} of VM ${this.src.id} is swapped but no swap was given to the migration`);
    if (this.swapByRef) return { gfn, kind: 'swap-ref', slot };
    return { gfn, kind: 'swap-read', data: this.o.swap.from.file.read(slot) };
  }

  /** The destination's side of one record. */
  private apply(r: Rec): void {
    const d = this.dst, g = r.gfn as Gfn;
    this.swapRefs.delete(g);
    if (r.kind === 'shared' || r.kind === 'shared-ref') this.sharedAtSource.add(g); else this.sharedAtSource.delete(g);
    if (carriesContents(r.kind)) {
      const data = r.kind === 'shared-ref' ? this.received.get(r.hash!)! : r.data!;
      if (r.kind === 'shared' && !this.received.has(r.hash!)) this.received.set(r.hash!, data);
      let h = d.p2m.lookup(g);
      if (h === null) {
        if (d.p2m.raw(g) & P2M.BALLOONED) d.unback(g);
        h = d.backGfn(g, true)!;
      }
      this.o.to.machine.memory.write(hpaOf(h), data);
      return;
    }
    d.unback(g, r.kind === 'ballooned');
    if (r.kind === 'swap-ref') this.swapRefs.set(g, r.slot!);
  }

  /** Swap references: the source's swap releases each slot, the destination's adopts it. */
  private handOverSwap(): number {
    const s = this.o.swap;
    for (const [g, slot] of this.swapRefs) {
      const w = this.src.p2m.raw(g as Gfn);
      if (!(w & P2M.SWAPPED) || frameField(w) !== slot) throw new Error(`migration bug: gfn ${g} was sent as swap slot ${slot}, the source has p2m ${w.toString(16)}`);
      s!.from.release(this.src, g as Gfn);
      s!.to!.adopt(this.dst, g as Gfn, slot, s!.from);
    }
    return this.swapRefs.size;
  }

  private reshare(): number {
    const sh = this.o.sharing;
    if (!sh) return 0;
    sh.addVm(this.dst);
    return this.sharedAtSource.size ? sh.shareNow(this.dst, this.sharedAtSource) : 0;
  }
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
