// Bulk moves for min-funding revocation: what computeTargets' one-page-per-step greedy
// does in k steps, done in O(VMs × log(range)) instead of O(k × VMs).
//
// Why it is exact. Revoking takes one page from the VM with the lowest key ρ = S/(P·cost)
// (ties by id). A VM's successive keys as it shrinks, S/(P·cost), S/((P−1)·cost), …, rise,
// so k greedy revocations remove exactly the k smallest keys of all VMs' sequences. For a
// threshold λ every key < λ comes before every key ≥ λ in that order, so "remove every
// key < λ" is a state the greedy passes through. We bisect for the largest λ whose count
// is ≤ k, jump there, and let the caller's one-page loop do the rest (only ties at λ are
// left, at most about one page per VM). Granting is the mirror image (highest
// S/(P·cost) first, keys fall as P grows). Keys are compared with the same floating-point
// expression the greedy uses, so the jump lands on a state the greedy really reaches.

/** What the bulk moves need of a client (computeTargets' Client). */
export interface BulkClient { id: string; S: number; cost: number; floor: number; ceiling: number; P: number }

const key = (c: BulkClient, p: number): number => c.S / (p * c.cost);
const BISECT_STEPS = 200;

/** Pages c gives up when every key < λ goes: P' in (floor, P] with S/(P'·cost) < λ. */
function revokedBelow(c: BulkClient, lam: number): number {
  if (c.P <= c.floor) return 0;
  let p = Math.max(c.floor, Math.min(c.P, Math.floor(c.S / (c.cost * lam))));
  // The closed form is a guess; settle it with the greedy's own comparison.
  while (p < c.P && !(key(c, p + 1) < lam)) p++;
  while (p > c.floor && key(c, p) < lam) p--;
  return c.P - p;
}

/** Pages c takes when every key > λ goes to it: P' in [P, ceiling) with S/(P'·cost) > λ. */
function grantedAbove(c: BulkClient, lam: number): number {
  if (c.P >= c.ceiling) return 0;
  let p = Math.max(c.P, Math.min(c.ceiling, Math.ceil(c.S / (c.cost * lam))));
  while (p > c.P && !(key(c, p - 1) > lam)) p--;
  while (p < c.ceiling && key(c, p) > lam) p++;
  return p - c.P;
}

const total = (cs: readonly BulkClient[], f: (c: BulkClient) => number): number => cs.reduce((s, c) => s + f(c), 0);

/** Largest λ in [lo, hi] with count(λ) ≤ k, for count rising with λ (count(lo) ≤ k assumed). */
function bisectRising(lo: number, hi: number, k: number, count: (lam: number) => number): number {
  for (let i = 0; i < BISECT_STEPS; i++) {
    const mid = lo + (hi - lo) / 2;
    if (mid <= lo || mid >= hi) break;
    if (count(mid) <= k) lo = mid; else hi = mid;
  }
  return lo;
}

/**
 * Revokes up to k pages, lowest key first, as k greedy steps would, stopping short by
 * at most the ties at the last key (the caller's greedy loop finishes). `apply(c, d)`
 * moves d pages (d < 0). Returns the pages revoked.
 */
export function revokeBulk<C extends BulkClient>(cs: readonly C[], k: number, apply: (c: C, d: number) => void): number {
  const sellers = cs.filter((c) => c.P > c.floor);
  if (k <= 0 || sellers.length === 0) return 0;
  const avail = total(sellers, (c) => c.P - c.floor);
  if (k >= avail) { for (const c of sellers) apply(c, c.floor - c.P); return avail; }
  // Below the smallest key nothing goes; above the largest (P' = floor + 1) everything does.
  const lo = Math.min(...sellers.map((c) => key(c, c.P)));
  const hi = Math.max(...sellers.map((c) => key(c, c.floor + 1)));
  if (!Number.isFinite(hi)) return 0; // floor 0 and P' = 1 with S/cost overflowing: leave it to the greedy
  const lam = bisectRising(lo, hi, k, (l) => total(sellers, (c) => revokedBelow(c, l)));
  let n = 0;
  for (const c of sellers) { const d = revokedBelow(c, lam); if (d > 0) { apply(c, -d); n += d; } }
  return n;
}

/**
 * Grants up to k pages, highest key first, as k greedy steps would (buyers = clients
 * below their ceiling; no pool limits). Returns the pages granted.
 */
export function grantBulk<C extends BulkClient>(cs: readonly C[], k: number, apply: (c: C, d: number) => void): number {
  const buyers = cs.filter((c) => c.P < c.ceiling);
  if (k <= 0 || buyers.length === 0) return 0;
  const avail = total(buyers, (c) => c.ceiling - c.P);
  if (k >= avail) { for (const c of buyers) apply(c, c.ceiling - c.P); return avail; }
  // A VM with no pages has key Infinity: those go first, one by one, in the greedy loop.
  if (buyers.some((c) => c.P === 0)) return 0;
  const lo = Math.min(...buyers.map((c) => key(c, c.ceiling - 1))); // at lo (minus) everything goes
  const hi = Math.max(...buyers.map((c) => key(c, c.P)));           // at hi nothing goes
  // granted(λ) falls with λ: find the smallest λ with granted(λ) ≤ k by bisecting on −λ.
  let a = lo, b = hi;
  for (let i = 0; i < BISECT_STEPS; i++) {
    const mid = a + (b - a) / 2;
    if (mid <= a || mid >= b) break;
    if (total(buyers, (c) => grantedAbove(c, mid)) <= k) b = mid; else a = mid;
  }
  let n = 0;
  for (const c of buyers) { const d = grantedAbove(c, b); if (d > 0) { apply(c, d); n += d; } }
  return n;
}

/** The greedy's own picks (lowest / highest S/(P·cost), ties by id), for the last few steps. */
function pickBy<C extends BulkClient>(cs: readonly C[], ok: (c: C) => boolean, lower: boolean): C | null {
  let best: C | null = null, bk = 0;
  for (const c of cs) {
    if (!ok(c)) continue;
    const k = key(c, c.P);
    if (best === null || (lower ? k < bk : k > bk) || (k === bk && c.id < best.id)) { best = c; bk = k; }
  }
  return best;
}

/** Exactly n greedy revocations (fewer only if every client is at its floor). */
export function revokeN<C extends BulkClient>(cs: readonly C[], n: number, apply: (c: C, d: number) => void): number {
  let done = revokeBulk(cs, n, apply);
  for (; done < n; done++) {
    const c = pickBy(cs, (x) => x.P > x.floor, true);
    if (!c) break;
    apply(c, -1);
  }
  return done;
}

/** Exactly n greedy grants (fewer only if every client is at its ceiling). */
export function grantN<C extends BulkClient>(cs: readonly C[], n: number, apply: (c: C, d: number) => void): number {
  let done = grantBulk(cs, n, apply);
  for (; done < n; done++) {
    const c = pickBy(cs, (x) => x.P < x.ceiling, false);
    if (!c) break;
    apply(c, 1);
  }
  return done;
}

/**
 * Trades as the greedy does them: the lowest-ρ seller's page goes to the highest-ρ
 * buyer while the buyer, one page richer, still pays strictly more. For a threshold λ
 * we simulate "every seller key < λ sold, as many top buyer steps bought" and accept
 * it only if the greedy would have made each of those trades: every buyer step's key
 * after the page stays > λ (so > its seller's key) and above every seller's new ρ (so
 * no seller outranks a buyer). The largest accepted λ is applied; the caller's greedy
 * loop finishes. No pool limits. Returns the trades done.
 */
export function tradeBulk<C extends BulkClient>(cs: readonly C[], k: number, apply: (c: C, d: number) => void): number {
  if (k <= 0 || cs.some((c) => c.P === 0)) return 0;
  const sellers0 = cs.filter((c) => c.P > c.floor);
  if (sellers0.length === 0) return 0;
  const trial = (lam: number): Map<C, number> | null => {
    const sold = new Map<C, number>();
    let t = 0;
    for (const c of sellers0) { const d = revokedBelow(c, lam); if (d > 0) { sold.set(c, d); t += d; } }
    t = Math.min(t, k);
    if (t === 0) return new Map();
    const clones = cs.map((c) => ({ ...c, P: c.P, orig: c }));
    const moves = new Map<C, number>();
    const mv = (x: (typeof clones)[number], d: number) => { x.P += d; moves.set(x.orig, (moves.get(x.orig) ?? 0) + d); };
    if (revokeN(clones, t, mv) !== t) return null;
    let sellerTop = 0;
    for (const x of clones) if ((moves.get(x.orig) ?? 0) < 0) sellerTop = Math.max(sellerTop, key(x, x.P));
    const buyers = clones.filter((x) => (moves.get(x.orig) ?? 0) === 0 && x.P < x.ceiling);
    if (grantN(buyers, t, mv) !== t) return null;
    for (const x of buyers) {
      if ((moves.get(x.orig) ?? 0) <= 0) continue;
      if (!(key(x, x.P) > lam) || !(key(x, x.P - 1) > sellerTop)) return null;
    }
    return moves;
  };
  let lo = Math.min(...sellers0.map((c) => key(c, c.P)));
  let hi = Math.max(...cs.filter((c) => c.P < c.ceiling).map((c) => key(c, c.P + 1)), lo);
  if (!(lo < hi) || !Number.isFinite(hi)) return 0;
  let best: Map<C, number> | null = null;
  for (let i = 0; i < 60; i++) {
    const mid = lo + (hi - lo) / 2;
    if (mid <= lo || mid >= hi) break;
    const m = trial(mid);
    if (m) { best = m; lo = mid; } else hi = mid;
  }
  if (!best) return 0;
  let t = 0;
  for (const [c, d] of best) { apply(c, d); if (d > 0) t += d; }
  return t;
}
