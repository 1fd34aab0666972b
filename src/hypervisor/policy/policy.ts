// Allocation policy of the ESX paper (Waldspurger, OSDI 2002, §5 and §6.1–6.2): per-VM
// min / max / shares, admission control, resource pools, the idle memory tax and
// min-funding revocation. Pure functions over plain numbers: no VM, no clock.
//
// Units: every memory quantity here is a count of 4 KiB frames (min, max, reservation,
// limit, host frames, overheads, swap, pages, targets). Shares are dimensionless weights.
//
// The adjusted shares-per-page ratio (§5.2) of a VM with S shares, P pages of which a
// fraction f is active, at tax rate τ:
//
//        ρ = S / ( P · ( f + k·(1 − f) ) ),   k = 1 / (1 − τ),   0 ≤ τ < 1
//
// An idle page costs k active pages (k = 4 at the default τ = 0.75). τ = 1 is refused:
// k would be infinite, and "all idle memory may be taken" is better said with τ = 0.99.
// Min-funding revocation (§5.1) takes memory from the VM with the lowest ρ — the one
// paying the lowest price per page — and, when memory is free, gives it to the highest.

import { revokeBulk, grantBulk, tradeBulk } from './bulk.js';

/** Default idle memory tax rate (ESX `Mem/IdleTax` = 75 %). */
export const DEFAULT_TAU = 0.75;
/** Frames per MiB (4 KiB frames). */
export const FRAMES_PER_MIB = 256;

/**
 * One VM's allocation parameters, all in 4 KiB frames except shares.
 * - min: guaranteed even when memory is overcommitted (the admission-control reservation);
 * - max: the memory size the guest sees; it gets max when memory is not overcommitted;
 * - shares: relative right to memory beyond min (> 0);
 * - reservation: vSphere's name for a guaranteed floor; the floor is max(min, reservation);
 * - limit: a ceiling below max (the guest still sees max; frames beyond limit live in swap).
 */
export interface VmAllocation {
  min: number;
  max: number;
  shares: number;
  reservation?: number;
  limit?: number;
}

/** The guaranteed floor of an allocation: max(min, reservation). */
export const floorOf = (a: VmAllocation): number => Math.max(a.min, a.reservation ?? 0);
/** The most frames the VM may hold: min(max, limit). */
export const ceilingOf = (a: VmAllocation): number => Math.min(a.max, a.limit ?? a.max);

const isFrames = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** Everything wrong with an allocation, as messages (empty when valid). */
export function allocationProblems(a: VmAllocation): string[] {
  const p: string[] = [];
  if (!isFrames(a.min)) p.push(`min must be a whole number of frames >= 0, got ${a.min}`);
  if (!isFrames(a.max) || a.max < 1) p.push(`max must be a whole number of frames >= 1, got ${a.max}`);
  if (!(typeof a.shares === 'number' && Number.isFinite(a.shares) && a.shares > 0)) {
    p.push(`shares must be a finite number > 0, got ${a.shares} (to pin a VM at min, set max = min)`);
  }
  if (a.reservation !== undefined && !isFrames(a.reservation)) p.push(`reservation must be a whole number of frames >= 0, got ${a.reservation}`);
  if (a.limit !== undefined && !isFrames(a.limit)) p.push(`limit must be a whole number of frames >= 0, got ${a.limit}`);
  if (p.length) return p;
  if (a.min > a.max) p.push(`min (${a.min}) exceeds max (${a.max})`);
  if ((a.reservation ?? 0) > a.max) p.push(`reservation (${a.reservation}) exceeds max (${a.max})`);
  if (a.limit !== undefined && a.limit < floorOf(a)) p.push(`limit (${a.limit}) is below the guaranteed floor (${floorOf(a)})`);
  return p;
}

/** Returns the allocation if valid; throws a RangeError naming every problem otherwise. */
export function validateAllocation(a: VmAllocation, who = 'VM'): VmAllocation {
  const p = allocationProblems(a);
  if (p.length) throw new RangeError(`${who}: invalid allocation: ${p.join('; ')}`);
  return a;
}

/** ESX 2.5 share conventions: 5 / 10 / 20 shares per MiB of max (low / normal / high). */
export function conventionalShares(maxFrames: number, level: 'low' | 'normal' | 'high' = 'normal'): number {
  const perMib = { low: 5, normal: 10, high: 20 }[level];
  return (maxFrames / FRAMES_PER_MIB) * perMib;
}

// ─── Admission control (§6.1–6.2) ──────────────────────────────────────────────────

/**
 * What admission control reserves against, in frames. A VM's overhead (ESX: frame buffer,
 * pmap, shadow tables; ~32 MiB for a typical VM of 2002) is reserved with its min: in
 * `overheadFrames`, the separate region it lives in, when given (memvisor keeps EPT and
 * shadow tables in the hypervisor region), else in `frames` with the VMs' memory.
 */
export interface HostCapacity {
  /** Host memory for the VMs' own pages (and their overhead when overheadFrames is absent). */
  frames: number;
  /** Overhead of a VM whose request names none (default 0). */
  overheadPerVm?: number;
  /** Capacity of the region overhead memory comes from (the hypervisor region), if separate. */
  overheadFrames?: number;
  /** Hypervisor swap capacity. */
  swapFrames: number;
}

/** An allocation as admission control sees it: with the VM's overhead reservation, in frames. */
export interface AdmissionRequest extends VmAllocation {
  /** Overhead frames reserved with min (default: the host's overheadPerVm). */
  overhead?: number;
}

export type Admission =
  | { ok: true; memoryReserved: number; memoryFree: number; overheadReserved: number; overheadFree: number; swapReserved: number; swapFree: number }
  | { ok: false; reason: string };

/**
 * Per-VM overhead memory as ESX sizes it: a fixed part plus a part per MiB of the VM's
 * memory, in frames. (The paper: ~32 MiB for a typical VM of 2002, 4–8 MiB of it frame
 * buffer; larger VMs need more.) Paging structures come on top, from the VM's real pools.
 */
export interface OverheadModel { fixedFrames: number; framesPerMiB: number }
export const NO_OVERHEAD: Readonly<OverheadModel> = Object.freeze({ fixedFrames: 0, framesPerMiB: 0 });

/** The fixed + per-MiB overhead of a VM of `vmFrames` frames (the per-MiB part rounded up). */
export function modelOverhead(m: OverheadModel, vmFrames: number): number {
  if (!isFrames(m.fixedFrames)) throw new RangeError(`overhead fixedFrames must be a whole number >= 0, got ${m.fixedFrames}`);
  if (!(Number.isFinite(m.framesPerMiB) && m.framesPerMiB >= 0)) throw new RangeError(`overhead framesPerMiB must be >= 0, got ${m.framesPerMiB}`);
  return m.fixedFrames + Math.ceil(m.framesPerMiB * vmFrames / FRAMES_PER_MIB);
}

/** Frames as MiB for messages: "2.5 MiB (640 frames)". */
export const mibText = (frames: number): string => `${+(frames / FRAMES_PER_MIB).toFixed(3)} MiB (${frames} frames)`;

/**
 * May `candidate` power on next to `existing`? A VM reserves floor + overhead frames of
 * host memory and max − floor frames of swap (so all its memory can always be kept
 * somewhere); the totals, candidate included, must fit. The totals in the answer
 * include the candidate. An invalid candidate is refused with the reason; every refusal
 * names the sizes in MiB.
 */
export function admit(host: HostCapacity, existing: readonly AdmissionRequest[], candidate: AdmissionRequest): Admission {
  for (const [k, v] of Object.entries(host)) {
    if (v !== undefined && !isFrames(v)) throw new RangeError(`host ${k} must be a whole number of frames >= 0, got ${v}`);
  }
  const overheadOf = (a: AdmissionRequest): number => a.overhead ?? host.overheadPerVm ?? 0;
  existing.forEach((a, i) => {
    validateAllocation(a, `existing VM #${i}`);
    if (!isFrames(overheadOf(a))) throw new RangeError(`existing VM #${i}: overhead must be a whole number of frames >= 0, got ${a.overhead}`);
  });
  const bad = allocationProblems(candidate);
  if (!isFrames(overheadOf(candidate))) bad.push(`overhead must be a whole number of frames >= 0, got ${candidate.overhead}`);
  if (bad.length) return { ok: false, reason: `invalid allocation: ${bad.join('; ')}` };
  const all = [...existing, candidate];
  const separate = host.overheadFrames !== undefined;
  const floors = all.reduce((s, a) => s + floorOf(a), 0);
  const overheads = all.reduce((s, a) => s + overheadOf(a), 0);
  const memoryReserved = separate ? floors : floors + overheads;
  const swapReserved = all.reduce((s, a) => s + a.max - floorOf(a), 0);
  const minC = floorOf(candidate), ohC = overheadOf(candidate);
  if (memoryReserved > host.frames) {
    const needs = separate ? minC : minC + ohC;
    return { ok: false, reason: `not enough unreserved memory: the candidate needs min ${mibText(minC)}` +
      (separate ? '' : ` + overhead ${mibText(ohC)} = ${mibText(needs)}`) +
      `, ${mibText(host.frames - (memoryReserved - needs))} is unreserved of ${mibText(host.frames)} ` +
      `(min${separate ? '' : ' + overhead'} of all VMs would be ${mibText(memoryReserved)})` };
  }
  if (separate && overheads > host.overheadFrames!) {
    return { ok: false, reason: `not enough unreserved hypervisor memory for overhead: the candidate needs ${mibText(ohC)}, ` +
      `${mibText(host.overheadFrames! - (overheads - ohC))} is unreserved of ${mibText(host.overheadFrames!)} ` +
      `(overhead of all VMs would be ${mibText(overheads)})` };
  }
  if (swapReserved > host.swapFrames) {
    return { ok: false, reason: `not enough swap: the candidate needs max − min ${mibText(candidate.max - minC)}, ` +
      `${mibText(host.swapFrames - (swapReserved - candidate.max + minC))} is unreserved of ${mibText(host.swapFrames)} ` +
      `(max − min of all VMs would be ${mibText(swapReserved)})` };
  }
  return { ok: true, memoryReserved, memoryFree: host.frames - memoryReserved,
    overheadReserved: overheads, overheadFree: separate ? host.overheadFrames! - overheads : host.frames - memoryReserved,
    swapReserved, swapFree: host.swapFrames - swapReserved };
}

// ─── Resource pools ────────────────────────────────────────────────────────────────

/** A VM as a pool member: its shares are relative to its siblings. */
export interface PoolVm { vm: string; shares: number }
/**
 * A resource pool: shares relative to its siblings; optionally a min (a reservation for its
 * members together) and a max / limit (a ceiling on its members' total frames).
 */
export interface PoolSpec { name: string; shares: number; min?: number; max?: number; limit?: number; children: PoolChild[] }
export type PoolChild = PoolSpec | PoolVm;
export const isPool = (c: PoolChild): c is PoolSpec => 'children' in c;

/** A pool limit as a constraint on the VMs below it. */
export interface PoolGroup { pool: string; limit: number; members: string[] }

export interface FlatPools {
  /** Effective shares per VM: the root's shares × the product of its fractions down the tree. */
  shares: Map<string, number>;
  /** One group per limited pool, children before parents. */
  groups: PoolGroup[];
}


/**
 * Hierarchical shares, flattened: a child's effective shares are its fraction of its
 * siblings' shares times its parent's effective shares (the root keeps its own).
 * Limits become groups for computeTargets. An approximation of a hierarchical
 * allocator: memory a pool leaves unused flows to whoever pays most, not to its
 * nearest relatives first.
 */
export function flatten(root: PoolSpec): FlatPools {
  const shares = new Map<string, number>();
  const groups: PoolGroup[] = [];
  const pools = new Set<string>();
  const walk = (p: PoolSpec, eff: number): string[] => {
    if (pools.has(p.name)) throw new RangeError(`pool name "${p.name}" appears twice`);
    pools.add(p.name);
    for (const k of ['min', 'max', 'limit'] as const) {
      if (p[k] !== undefined && !isFrames(p[k])) throw new RangeError(`pool "${p.name}": ${k} must be a whole number of frames >= 0, got ${p[k]}`);
    }
    if (p.min !== undefined && p.min > Math.min(p.max ?? Infinity, p.limit ?? Infinity)) {
      throw new RangeError(`pool "${p.name}": min ${p.min} exceeds its max / limit ${Math.min(p.max ?? Infinity, p.limit ?? Infinity)}`);
    }
    let total = 0;
    for (const c of p.children) {
      const who = isPool(c) ? `pool "${c.name}"` : `VM "${c.vm}"`;
      if (!(Number.isFinite(c.shares) && c.shares > 0)) throw new RangeError(`${who} in pool "${p.name}": shares must be > 0, got ${c.shares}`);
      total += c.shares;
    }
    const members: string[] = [];
    for (const c of p.children) {
      const e = (eff * c.shares) / total;
      if (isPool(c)) { members.push(...walk(c, e)); continue; }
      if (shares.has(c.vm)) throw new RangeError(`VM "${c.vm}" appears twice in the pool tree`);
      shares.set(c.vm, e);
      members.push(c.vm);
    }
    const cap = Math.min(p.max ?? Infinity, p.limit ?? Infinity);
    if (cap !== Infinity) groups.push({ pool: p.name, limit: cap, members });
    return members;
  };
  if (!(Number.isFinite(root.shares) && root.shares > 0)) throw new RangeError(`root pool "${root.name}": shares must be > 0, got ${root.shares}`);
  walk(root, root.shares);
  return { shares, groups };
}

// ─── Idle memory tax (§5.2) ────────────────────────────────────────────────────────

/** k = 1/(1 − τ): the cost of an idle page in active pages. Refuses τ outside [0, 1). */
export function idleCost(tau: number): number {
  if (!(tau >= 0 && tau < 1)) {
    throw new RangeError(`tax rate tau must be in [0, 1), got ${tau}` +
      (tau === 1 ? ' (at tau = 1 an idle page would cost infinitely many active pages; use e.g. 0.99)' : ''));
  }
  return 1 / (1 - tau);
}

/** Cost per page of a VM whose active fraction is f: f + k·(1 − f). */
function pageCost(f: number, tau: number): number {
  if (!(f >= 0 && f <= 1)) throw new RangeError(`active fraction f must be in [0, 1], got ${f}`);
  return f + idleCost(tau) * (1 - f);
}

/**
 * The adjusted shares-per-page ratio ρ = S / (P·(f + k·(1 − f))). P = 0 gives Infinity:
 * a VM with no pages pays an unbounded price for its first one.
 */
export function rho(S: number, P: number, f: number, tau = DEFAULT_TAU): number {
  if (!(Number.isFinite(S) && S > 0)) throw new RangeError(`shares must be > 0, got ${S}`);
  if (!(P >= 0)) throw new RangeError(`pages must be >= 0, got ${P}`);
  return S / (P * pageCost(f, tau));
}

// ─── Min-funding revocation (§5.1) ─────────────────────────────────────────────────

export interface TargetVm {
  id: string;
  alloc: VmAllocation;
  /** Frames the VM holds now (used with from: 'current'). */
  pages: number;
  /** Estimated active fraction f in [0, 1] (from ActiveSampler). */
  activeFraction: number;
  /** Overrides alloc.shares, e.g. with flatten()'s effective shares. */
  shares?: number;
}

export interface TargetOptions {
  /**
   * 'max' (default): every VM starts at its ceiling (each guest would use all it sees)
   * and pages are revoked until the total fits: the fixed point, in one call.
   * 'current': start from `pages` (clamped to floor..ceiling); revoke while over, grant
   * while under, then move pages from the lowest-ρ VM to the highest-ρ VM that wants
   * more while that buyer still pays more after the move (no page ever moves back).
   */
  from?: 'max' | 'current';
  /** Pool limits (from flatten): members' targets sum to at most the limit. */
  groups?: readonly PoolGroup[];
  /** At most this many page moves (revocations, grants, trades): gradual reallocation with from: 'current'. */
  maxMoves?: number;
  /**
   * 'bulk' (default): jump over runs of greedy steps (bulk.ts), O(VMs × log) per phase;
   * 'stepwise': one page per step, O(pages × VMs): the reference the bulk method is tested
   * against. Both give the same targets (the bulk jumps land on states the greedy reaches).
   */
  method?: 'bulk' | 'stepwise';
}

export interface Targets {
  /** Target frames per VM id. */
  frames: Map<string, number>;
  /** Frames left unassigned (every VM at its ceiling or its pool's limit). */
  free: number;
  /** Frames by which the floors exceed totalFrames (0 unless admission control was bypassed). */
  shortfall: number;
  /** Pages revoked, granted and traded (moved from one VM to another). */
  revoked: number;
  granted: number;
  traded: number;
}

interface Client {
  id: string; S: number; cost: number; floor: number; ceiling: number; P: number; groups: Group[];
}
interface Group { limit: number; sum: number; pool: string }

const rhoOf = (c: Client): number => c.S / (c.P * c.cost);
/** Lowest ρ first, ties by id (ascending). */
const cheaper = (a: Client, b: Client): boolean => rhoOf(a) < rhoOf(b) || (rhoOf(a) === rhoOf(b) && a.id < b.id);
/** ρ one page richer: what a buyer would pay per page after taking one more. */
const rhoAfter = (c: Client): number => c.S / ((c.P + 1) * c.cost);
/**
 * Highest ρ one page richer first, ties by id (ascending). Buyers are ranked by the ρ
 * they would have, not the ρ they have: at P = 0 every ρ is infinite, and ranking by
 * it gave the page to the lowest id rather than to the VM that pays most for it.
 */
const keener = (a: Client, b: Client): boolean => rhoAfter(a) > rhoAfter(b) || (rhoAfter(a) === rhoAfter(b) && a.id < b.id);

function pick(cs: readonly Client[], ok: (c: Client) => boolean, better: (a: Client, b: Client) => boolean): Client | null {
  let best: Client | null = null;
  for (const c of cs) if (ok(c) && (best === null || better(c, best))) best = c;
  return best;
}

const canShrink = (c: Client): boolean => c.P > c.floor;
const hasRoom = (c: Client, except?: Client): boolean =>
  c.P < c.ceiling && c.groups.every((g) => g.sum < g.limit || (except !== undefined && except.groups.includes(g)));

function move(c: Client, d: number): void {
  c.P += d;
  for (const g of c.groups) g.sum += d;
}

function clients(vms: readonly TargetVm[], tau: number, o: TargetOptions): Client[] {
  const ids = new Set<string>();
  const cs = vms.map((v) => {
    if (ids.has(v.id)) throw new RangeError(`VM id "${v.id}" appears twice`);
    ids.add(v.id);
    validateAllocation(v.alloc, `VM "${v.id}"`);
    const S = v.shares ?? v.alloc.shares;
    if (!(Number.isFinite(S) && S > 0)) throw new RangeError(`VM "${v.id}": shares must be > 0, got ${S}`);
    if (!isFrames(v.pages)) throw new RangeError(`VM "${v.id}": pages must be a whole number >= 0, got ${v.pages}`);
    const floor = floorOf(v.alloc), ceiling = ceilingOf(v.alloc);
    const P = o.from === 'current' ? Math.min(ceiling, Math.max(floor, v.pages)) : ceiling;
    return { id: v.id, S, cost: pageCost(v.activeFraction, tau), floor, ceiling, P, groups: [] as Group[] };
  });
  const byId = new Map(cs.map((c) => [c.id, c]));
  for (const g of o.groups ?? []) {
    if (!isFrames(g.limit)) throw new RangeError(`pool "${g.pool}": limit must be a whole number of frames >= 0, got ${g.limit}`);
    const grp: Group = { limit: g.limit, sum: 0, pool: g.pool };
    for (const m of g.members) {
      const c = byId.get(m);
      if (c) { c.groups.push(grp); grp.sum += c.P; }
    }
  }
  return cs;
}

/**
 * Target frames per VM by min-funding revocation with the idle memory tax: pages go
 * from low-ρ VMs to high-ρ VMs, never below a VM's floor (min, reservation), never
 * above its ceiling (max, limit) or its pools' limits. Deterministic: defined as one
 * page at a time, ties broken by id; computed by jumping over runs of such steps
 * (O(VMs × log) per phase, bulk.ts) unless method: 'stepwise'.
 *
 * Fixed point (no binding floors or ceilings): equal ρ, i.e. P_i ∝ S_i / (f_i + k(1 − f_i)).
 * Two VMs with equal shares get equal pages at τ = 0; at τ = 0.75 an idle VM (f = 0)
 * ends with a quarter of an active one's (f = 1) pages.
 */
export function computeTargets(totalFrames: number, vms: readonly TargetVm[], tau = DEFAULT_TAU, o: TargetOptions = {}): Targets {
  if (!isFrames(totalFrames)) throw new RangeError(`totalFrames must be a whole number >= 0, got ${totalFrames}`);
  if (o.maxMoves !== undefined && !(o.maxMoves >= 0)) throw new RangeError(`maxMoves must be >= 0, got ${o.maxMoves}`);
  const cs = clients(vms, tau, o);
  const floors = cs.reduce((s, c) => s + c.floor, 0);
  const r: Targets = { frames: new Map(), free: 0, shortfall: Math.max(0, floors - totalFrames), revoked: 0, granted: 0, traded: 0 };
  let budget = o.maxMoves ?? Infinity;
  const groups = [...new Set(cs.flatMap((c) => c.groups))];
  const bulk = o.method !== 'stepwise';
  // Bulk grants and trades ignore pool limits: with pools those two phases go page by page.
  const free = bulk && groups.length === 0;
  // Pools over their limit give back first (from their own cheapest member).
  for (const g of groups) {
    if (bulk) {
      const n = revokeBulk(cs.filter((c) => c.groups.includes(g)), Math.min(g.sum - g.limit, budget), move);
      r.revoked += n; budget -= n;
    }
    while (g.sum > g.limit && budget > 0) {
      const v = pick(cs, (c) => c.groups.includes(g) && canShrink(c), cheaper);
      if (!v) break;
      move(v, -1); r.revoked++; budget--;
    }
  }
  let total = cs.reduce((s, c) => s + c.P, 0);
  if (bulk) { const n = revokeBulk(cs, Math.min(total - totalFrames, budget), move); total -= n; r.revoked += n; budget -= n; }
  while (total > totalFrames && budget > 0) {
    const v = pick(cs, canShrink, cheaper);
    if (!v) break;
    move(v, -1); total--; r.revoked++; budget--;
  }
  if (free) { const n = grantBulk(cs, Math.min(totalFrames - total, budget), move); total += n; r.granted += n; budget -= n; }
  while (total < totalFrames && budget > 0) {
    const b = pick(cs, (c) => hasRoom(c), keener);
    if (!b) break;
    move(b, 1); total++; r.granted++; budget--;
  }
  if (free) { const n = tradeBulk(cs, budget, move); r.traded += n; budget -= n; }
  while (budget > 0) {
    const seller = pick(cs, canShrink, cheaper);
    if (!seller) break;
    const buyer = pick(cs, (c) => c !== seller && hasRoom(c, seller), keener);
    // Trade only while the buyer, one page richer, still pays strictly more than the seller does now.
    if (!buyer || !(rhoAfter(buyer) > rhoOf(seller))) break;
    move(seller, -1); move(buyer, 1); r.traded++; budget--;
  }
  for (const c of cs) r.frames.set(c.id, c.P);
  r.free = Math.max(0, totalFrames - total);
  return r;
}
