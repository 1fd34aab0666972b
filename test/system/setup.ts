// The whole-system rig for the memory fuzz: one small, overcommitted hypervisor running
// three VMs (nested, nested, shadow) under every memory mechanism at once — one
// PageSharing, one HostSwap, one ActiveSampler, and a BalloonDevice per VM driven through
// its backdoor register window host-side (what the guest driver's OUT/IN ops do).
//
// Each guest maps all of its guest-physical memory at DIRECT with 2 MiB pages; the page
// tables live in guest frames [PT_FIRST, PT_END). Their A bits (and the leaves' D bits)
// are set before boot, so the guest's walks never change them and their bytes are as
// predictable as data (the fuzz compares them with the reference like any other page).
// They are still shared, swapped and trapped like data in nested mode, and with EPT A/D a
// walk's access counts as a write (SDM 28.2.4): a shared page-table page gets COW-broken
// by the guest's own walks.
//
// Host layout (frames):  VM pool VM_POOL_FRAMES │ hypervisor pool HV_FRAMES
// The VM pool is smaller than the pages the fuzz may touch, so OUT_OF_FRAMES happens and
// is answered by hypervisor swapping (reclaim), as a host would. Data gfns: 0, 8..31 and
// the VM's top 8 (inside the 2 MiB EPT leaf of the 4 MiB VM when `largeLeaf` is on).
import {
  Hypervisor, PageSharing, HostSwap, ActiveSampler, OutOfFramesError, P2M, isSwappable,
  type Vm, type VcpuExit, type SharingOptions,
} from '../../src/hypervisor/index.js';
import { BackdoorInl } from '../../src/devices/backdoor-inl.js';
import { BalloonDevice, BALLOON_MAGIC, CAP, CMD, STATUS, classifyBalloonExit } from '../../src/devices/balloon.js';
import { createBalloonDevice } from '../../src/board/balloon.js';
import { PAGE_2M, PTE } from '../../src/core/bits.js';
import type { AccessBatch } from '../../src/core/batch.js';
import { bootDirectMap, DIRECT } from '../helpers/guest.js';

export const MiB = 2 ** 20;
export { DIRECT };
export const PT_FIRST = 1, PT_END = 8;           // gfns of the guest page tables
export const VM_POOL_FRAMES = 24;
export const HV_FRAMES = 64;
export const VM_SPECS = [
  { mode: 'nested', mib: 2 }, { mode: 'nested', mib: 4 }, { mode: 'shadow', mib: 2 },
] as const;

/** One VM of the rig with its balloon device and the gfns the fuzz uses. */
export interface SysVm {
  readonly vm: Vm;
  readonly dev: BalloonDevice;
  /** A balloon command through the backdoor window; returns the status (EAX). */
  call(cmd: number, arg?: number): number;
  /** Data gfns the fuzz reads and writes (the page tables are not among them). */
  readonly data: number[];
}

type Seen = 'oof' | 'guestOof' | 'reclaimed' | 'nestedResolves' | 'shadowResolves' | 'touches' | 'shadowTouches' |
  'locks' | 'lockedShared' | 'pinned' | 'starts' | 'restarts';

export interface Sys {
  hv: Hypervisor;
  sharing: PageSharing;
  swap: HostSwap;
  sampler: ActiveSampler;
  vms: SysVm[];
  batch: AccessBatch;
  /** Events the run saw (to check the fuzz reached the interesting states). */
  seen: Record<Seen, number>;
  close(): void;
}

export interface SysOptions {
  seed: number;
  hashBits?: number;
  /**
   * Back the upper half of the 4 MiB nested VM with one 2 MiB EPT leaf (512 more frames in
   * the VM pool): sharing, swapping and ballooning a gfn inside it must split the leaf.
   */
  largeLeaf?: boolean;
  sharing?: SharingOptions;
}

export async function system(o: SysOptions): Promise<Sys> {
  const pool = VM_POOL_FRAMES + (o.largeLeaf ? 512 : 0);
  const hv = await Hypervisor.create({ hostMemoryBytes: (pool + HV_FRAMES) * 4096, hypervisorBytes: HV_FRAMES * 4096 });
  const sharing = new PageSharing(hv, { seed: o.seed, scanRatePerVm: 40, scanRateTotal: 100, batch: 16, hashBits: o.hashBits, ...o.sharing });
  const swap = new HostSwap(hv, { seed: o.seed, capacity: 1024 });
  const sampler = new ActiveSampler({ seed: o.seed, samples: 6, periodSeconds: 1 });
  const raw = VM_SPECS.map(({ mode, mib }) => hv.createVm({ memoryBytes: mib * MiB, mode }));
  // Before anything else is backed: the leaf needs an aligned run of 512 free frames.
  if (o.largeLeaf && raw[1].prefault(2n * BigInt(MiB), 2n * BigInt(MiB), PAGE_2M) !== 1) throw new Error('no 2 MiB EPT leaf');
  const vms = raw.map((vm) => sysVm(hv, vm));
  for (const v of vms) {
    sharing.addVm(v.vm);
    swap.attach(v.vm);
    sampler.attach(v.vm, 0);
  }
  return {
    hv, sharing, swap, sampler, vms, batch: hv.machine.createBatch(4),
    seen: { oof: 0, guestOof: 0, reclaimed: 0, nestedResolves: 0, shadowResolves: 0, touches: 0, shadowTouches: 0, locks: 0, lockedShared: 0, pinned: 0, starts: 0, restarts: 0 },
    close: () => swap.close(),
  };
}

function sysVm(hv: Hypervisor, vm: Vm): SysVm {
  bootDirectMap(vm, { ptFirst: PT_FIRST, ptEnd: PT_END, flags: { dirty: true } });
  presetAccessed(vm);
  const dev = createBalloonDevice(vm, hv.frames);
  dev.setTarget(vm.frameCount); // the host always wants more: LOCK is never "not needed"
  const backdoor = new BackdoorInl(dev);
  const call = (cmd: number, arg = 0): number => {
    const regs = { rax: BigInt(BALLOON_MAGIC), rbx: BigInt(arg), rcx: BigInt(cmd), rdx: BigInt(backdoor.port), rsi: 0n, rdi: 0n };
    return Number(backdoor.handle({ port: backdoor.port, size: 4, direction: 'in' }, regs).rax);
  };
  if (call(CMD.START, CAP.BASIC_CMDS) !== STATUS.SUCCESS_WITH_CAPABILITIES) throw new Error('balloon START failed');
  const n = vm.frameCount;
  const data = [0, ...range(PT_END, 24), ...range(n - 8, 8)];
  return { vm, dev, call, data };
}

/** Sets A in every present entry of the guest's page tables. */
function presetAccessed(vm: Vm): void {
  for (let g = PT_FIRST; g < PT_END; g++) {
    const at = BigInt(g) << 12n;
    const page = vm.memory.read(at, 4096);
    const dv = new DataView(page.buffer);
    let any = false;
    for (let i = 0; i < 512; i++) {
      const e = dv.getBigUint64(i * 8, true);
      if (e & PTE.P) { dv.setBigUint64(i * 8, e | PTE.A, true); any = true; }
    }
    if (any) vm.memory.write(at, page);
  }
}

export const range = (from: number, n: number): number[] => Array.from({ length: n }, (_, i) => from + i);

// ── reclaiming under pressure ─────────────────────────────────────────────────────

/**
 * The VM pool ran dry while `requester` needed frames: swap out `need` frames, from the
 * other VMs first (swapping the requester's own pages could take the very page tables
 * its access needs: a livelock), releasing sampling traps if they pin too much, and from
 * the requester only as a last resort. Throws if nothing can go.
 */
export function reclaim(s: Sys, requester: SysVm, need = 4): void {
  s.seen.oof++;
  const swappable = (vm: Vm) => { let n = 0; vm.p2m.forEach((_g, w) => { if (isSwappable(w)) n++; }, P2M.PRESENT, P2M.PRESENT); return n; };
  const others = s.vms.filter((v) => v !== requester);
  const fromOthers = () => others.reduce((n, v) => n + swappable(v.vm), 0);
  if (fromOthers() < need) for (const v of s.vms) for (const g of s.sampler.trapped(v.vm)) s.sampler.untrap(v.vm, g);
  let freed = 0;
  for (const v of [...others.sort((a, b) => swappable(b.vm) - swappable(a.vm)), requester]) {
    if (freed >= need) break;
    freed += s.swap.swapOut(v.vm, need - freed);
  }
  if (freed === 0) throw new Error(`reclaim: no VM has a swappable frame (all shared, trapped or page tables); ${snapshot(s)}`);
  s.seen.reclaimed += freed;
}

/** Runs a host-side access, reclaiming and retrying while the VM pool is empty. */
export function withFrames<T>(s: Sys, requester: SysVm, fn: () => T): T {
  for (let tries = 0; ; tries++) {
    try {
      return fn();
    } catch (e) {
      if (!(e instanceof OutOfFramesError) || tries >= 20) throw e;
      if (e.pool !== 'vm') throw new Error(`the hypervisor pool ran dry: ${e.message}`);
      reclaim(s, requester);
    }
  }
}

/** Who holds the VM pool (for error messages). */
export function snapshot(s: Sys): string {
  const n = (vm: Vm, mask: number, match: number) => vm.p2m.count(mask, match);
  const vms = s.vms.map(({ vm }) => `VM ${vm.id}: private ${n(vm, P2M.PRESENT | P2M.SHARED, P2M.PRESENT)} ` +
    `(trapped ${n(vm, P2M.TRAPPED, P2M.TRAPPED)}, page tables ${n(vm, P2M.PAGE_TABLE | P2M.PRESENT, P2M.PAGE_TABLE | P2M.PRESENT)}), ` +
    `shared ${n(vm, P2M.SHARED, P2M.SHARED)}, swapped ${n(vm, P2M.SWAPPED, P2M.SWAPPED)}`);
  return `free ${s.hv.counts().vmFree}, shared frames ${s.sharing.stats.pagesShared}; ${vms.join('; ')}`;
}

// ── guest accesses through the vCPU ───────────────────────────────────────────────

export interface GuestResult { value: bigint; touchedBalloon: boolean }

const show = (x: VcpuExit) => JSON.stringify(x, (_k, v) => (typeof v === 'bigint' ? `0x${v.toString(16)}` : v));

/**
 * One 8-byte guest load or store at gpa through vCPU 0. OUT_OF_FRAMES is answered by
 * reclaiming; a touch of a ballooned gfn is caught by the device (recorded, balloon
 * popped) and the access retried on a fresh frame. Any other exit fails the run.
 */
export function guestAccess(s: Sys, v: SysVm, gpa: bigint, store: bigint | null): GuestResult {
  const b = s.batch.clear();
  if (store === null) b.load(DIRECT + gpa); else b.store(DIRECT + gpa, store);
  let at = 0, touchedBalloon = false;
  const resolves = v.vm.stats.resolves; // swap-ins, COW breaks and trap touches on the guest's path
  for (let n = 0; ; n++) {
    if (n > 40) throw new Error(`guest access to gpa 0x${gpa.toString(16)} of VM ${v.vm.id} makes no progress; ${snapshot(s)}`);
    const x = v.vm.vcpus[0].run(b, at);
    if (x.reason === 'end') {
      s.seen[v.vm.mode === 'shadow' ? 'shadowResolves' : 'nestedResolves'] += v.vm.stats.resolves - resolves;
      return { value: store === null ? b.value(0) : 0n, touchedBalloon };
    }
    if (x.reason === 'OUT_OF_FRAMES') {
      if (x.pool !== 'vm') throw new Error(`the hypervisor pool ran dry: ${show(x)}`);
      s.seen.guestOof++;
      reclaim(s, v);
      at = x.index;
      continue;
    }
    const c = classifyBalloonExit(v.dev, x);
    if (!c) throw new Error(`VM ${v.vm.id} (${v.vm.mode}): unexpected exit ${show(x)}`);
    if (touchedBalloon) throw new Error(`VM ${v.vm.id}: a second balloon touch for one access: ${show(x)}`);
    touchedBalloon = true;
    s.seen.touches++;
    if (v.vm.mode === 'shadow') s.seen.shadowTouches++;
    at = c.resumeAt;
  }
}
