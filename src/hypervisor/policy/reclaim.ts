// Free-memory states and the reclamation plan of the ESX paper (§6.3): a pure state
// machine over the host's free-memory fraction, and a per-round plan that says, for
// each VM above its target allocation, how many frames to balloon, how many to swap,
// and whether to block it.
//
// Thresholds (fractions of host memory; defaults 6 % / 4 % / 2 % / 1 %):
//
//   free  1.0 ───────────────────────────────────────────────
//              high: no reclamation
//   high 0.06 ─ ─ ─ ─ ─ ─ ─ ─  soft → high only when free > high
//              (hysteresis band of soft)
//   soft 0.04 ─────────────── high → soft when free < soft
//              soft: balloon; swap only what the balloon cannot take
//   hard 0.02 ─────────────── soft → hard when free < hard; hard → soft when free > soft
//              hard: swap
//   low  0.01 ─────────────── hard → low  when free < low;  low → hard when free > hard
//              low: swap, and block every VM above its target
//
// Our reading of §6.3: a state is entered when free memory drops *below* its threshold
// (possibly several states at once) and left for the next higher state only when free
// memory *exceeds* the threshold above it, one state at a time (repeated within one
// call while free keeps exceeding). Exactly at a threshold nothing changes. The paper
// says "significantly exceeding"; `margin` (default 0) adds that much to every upward
// threshold. Targets (policy.ts computeTargets over vmBudget frames) aim at keeping
// free memory above the high threshold in every reclaiming state.

export type FreeState = 'high' | 'soft' | 'hard' | 'low';

/** Fractions of host memory, 0 < low < hard < soft < high < 1. */
export interface FreeThresholds { high: number; soft: number; hard: number; low: number }

export const DEFAULT_THRESHOLDS: Readonly<FreeThresholds> = Object.freeze({ high: 0.06, soft: 0.04, hard: 0.02, low: 0.01 });

/** States from no reclamation to the most forceful. */
export const FREE_STATES: readonly FreeState[] = ['high', 'soft', 'hard', 'low'];

const rank = (s: FreeState): number => FREE_STATES.indexOf(s);

/** Throws a RangeError unless 0 < low < hard < soft < high < 1. */
export function validateThresholds(t: FreeThresholds): FreeThresholds {
  const v = [t.low, t.hard, t.soft, t.high];
  if (!v.every((x) => typeof x === 'number' && Number.isFinite(x)) || !(0 < t.low && t.low < t.hard && t.hard < t.soft && t.soft < t.high && t.high < 1)) {
    throw new RangeError(`free-memory thresholds must satisfy 0 < low < hard < soft < high < 1, got ` +
      `low ${t.low}, hard ${t.hard}, soft ${t.soft}, high ${t.high}`);
  }
  return t;
}

/** The threshold a state is entered below ('high' has none: it is the state above soft). */
const entry = (s: FreeState, t: FreeThresholds): number => (s === 'high' ? Infinity : t[s]);
/** The threshold free memory must exceed to leave state s for the next higher one. */
const exit = (s: FreeState, t: FreeThresholds): number => t[FREE_STATES[rank(s) - 1]];

/**
 * The state after observing free memory `free` (a fraction of host memory) in state
 * `current`: drops to the lowest state whose threshold free is below; otherwise rises
 * one state at a time while free exceeds the threshold above (plus margin).
 */
export function nextState(current: FreeState, free: number, t: FreeThresholds = DEFAULT_THRESHOLDS, margin = 0): FreeState {
  if (rank(current) < 0) throw new RangeError(`unknown free-memory state "${current}"`);
  if (!(free >= 0 && free <= 1)) throw new RangeError(`free memory must be a fraction in [0, 1], got ${free}`);
  if (!(margin >= 0)) throw new RangeError(`margin must be >= 0, got ${margin}`);
  validateThresholds(t);
  let down: FreeState = 'high';
  for (const s of FREE_STATES) if (free < entry(s, t)) down = s;
  if (rank(down) > rank(current)) return down;
  let s = current;
  while (s !== 'high' && free > exit(s, t) + margin) s = FREE_STATES[rank(s) - 1];
  return s;
}

/** The state of a host seen for the first time with free fraction `free`. */
export const stateFor = (free: number, t: FreeThresholds = DEFAULT_THRESHOLDS): FreeState => nextState('high', free, t);

/** The free-memory state machine of one host. */
export class FreeMemoryStates {
  readonly thresholds: FreeThresholds;
  state: FreeState;
  /** State changes so far (for reports). */
  transitions = 0;

  constructor(thresholds: FreeThresholds = DEFAULT_THRESHOLDS, readonly margin = 0, initial: FreeState = 'high') {
    this.thresholds = validateThresholds({ ...thresholds });
    if (rank(initial) < 0) throw new RangeError(`unknown free-memory state "${initial}"`);
    this.state = initial;
  }

  /** Observes the free fraction and returns the (possibly new) state. */
  next(free: number): FreeState {
    const s = nextState(this.state, free, this.thresholds, this.margin);
    if (s !== this.state) this.transitions++;
    return (this.state = s);
  }

  /** Observes free frames out of total frames. */
  nextFrames(freeFrames: number, totalFrames: number): FreeState {
    if (!(totalFrames > 0) || !(freeFrames >= 0 && freeFrames <= totalFrames)) {
      throw new RangeError(`free frames ${freeFrames} must lie in [0, total ${totalFrames}] with total > 0`);
    }
    return this.next(freeFrames / totalFrames);
  }
}

/**
 * The smallest whole number of frames F with F / totalFrames >= fraction (so a host
 * with F free frames is exactly at the threshold, never below it by rounding).
 */
export function thresholdFrames(totalFrames: number, fraction: number): number {
  if (!(Number.isSafeInteger(totalFrames) && totalFrames > 0)) throw new RangeError(`totalFrames must be a whole number > 0, got ${totalFrames}`);
  if (!(fraction >= 0 && fraction <= 1)) throw new RangeError(`fraction must be in [0, 1], got ${fraction}`);
  let f = Math.ceil(fraction * totalFrames);
  while (f > 0 && (f - 1) / totalFrames >= fraction) f--;
  while (f / totalFrames < fraction) f++;
  return f;
}

/**
 * Frames VMs may hold in total so free memory stays at the high threshold:
 * total − thresholdFrames(high) − frames used otherwise (hypervisor, overheads).
 */
export function vmBudget(totalFrames: number, otherUsed = 0, t: FreeThresholds = DEFAULT_THRESHOLDS): number {
  validateThresholds(t);
  if (!(Number.isSafeInteger(otherUsed) && otherUsed >= 0)) throw new RangeError(`otherUsed must be a whole number >= 0, got ${otherUsed}`);
  return Math.max(0, totalFrames - thresholdFrames(totalFrames, t.high) - otherUsed);
}

// ─── The per-round plan ────────────────────────────────────────────────────────────

export interface ReclaimVm {
  id: string;
  /** Frames the VM holds now. */
  current: number;
  /** Its target allocation (computeTargets). */
  target: number;
  /** Frames its balloon can still take (0: no driver, driver not running, or at its limit). */
  balloonable: number;
}

export interface VmAction {
  id: string;
  /** current − target (> 0). */
  excess: number;
  /** Frames to reclaim by ballooning this round (raise the balloon target by this much). */
  balloon: number;
  /** Frames to reclaim by hypervisor swapping this round. */
  swap: number;
  /** Stop the VM's vCPUs until it is back at its target (low state only). */
  block: boolean;
}

export interface ReclaimPlan {
  state: FreeState;
  /** One entry per VM above its target, in input order (all zeros in the high state). */
  actions: VmAction[];
  /** VMs below their target and by how much (they may grow: deflate, swap in on demand). */
  below: { id: string; deficit: number }[];
  balloon: number;
  swap: number;
  blocked: string[];
}

export interface PlanOptions {
  /** Most frames to balloon per VM per round (default unlimited). */
  balloonPerRound?: number;
  /** Most frames to swap per VM per round (default unlimited). */
  swapPerRound?: number;
}

const isCount = (v: number): boolean => Number.isSafeInteger(v) && v >= 0;

function checkVms(vms: readonly ReclaimVm[]): void {
  const ids = new Set<string>();
  for (const v of vms) {
    if (ids.has(v.id)) throw new RangeError(`VM id "${v.id}" appears twice`);
    ids.add(v.id);
    for (const k of ['current', 'target', 'balloonable'] as const) {
      if (!isCount(v[k])) throw new RangeError(`VM "${v.id}": ${k} must be a whole number of frames >= 0, got ${v[k]}`);
    }
  }
}

/** How one VM's excess splits between balloon and swap in a state. */
function split(state: FreeState, excess: number, balloonable: number, o: PlanOptions): { balloon: number; swap: number } {
  const bMax = o.balloonPerRound ?? Infinity, sMax = o.swapPerRound ?? Infinity;
  switch (state) {
    case 'high': return { balloon: 0, swap: 0 };
    case 'soft': {
      const byBalloon = Math.min(excess, balloonable);
      // Only the part the balloon cannot take at all is swapped; a rate cap just defers the rest.
      return { balloon: Math.min(byBalloon, bMax), swap: Math.min(excess - byBalloon, sMax) };
    }
    case 'hard': case 'low': return { balloon: 0, swap: Math.min(excess, sMax) };
  }
}

/**
 * This round's reclamation for `state`: high — nothing; soft — balloon, swapping only
 * what ballooning cannot take; hard — swap; low — swap and block every VM above target.
 */
export function planReclaim(state: FreeState, vms: readonly ReclaimVm[], o: PlanOptions = {}): ReclaimPlan {
  if (rank(state) < 0) throw new RangeError(`unknown free-memory state "${state}"`);
  for (const [k, v] of Object.entries(o)) {
    if (v !== undefined && !(v >= 0)) throw new RangeError(`${k} must be >= 0, got ${v}`);
  }
  checkVms(vms);
  const plan: ReclaimPlan = { state, actions: [], below: [], balloon: 0, swap: 0, blocked: [] };
  for (const v of vms) {
    if (v.current < v.target) { plan.below.push({ id: v.id, deficit: v.target - v.current }); continue; }
    const excess = v.current - v.target;
    if (excess === 0) continue;
    const { balloon, swap } = split(state, excess, v.balloonable, o);
    const block = state === 'low';
    plan.actions.push({ id: v.id, excess, balloon, swap, block });
    plan.balloon += balloon;
    plan.swap += swap;
    if (block) plan.blocked.push(v.id);
  }
  return plan;
}
