// The shadow MMU's reverse map: for each guest frame, the host addresses of the shadow
// leaves filled for it (KVM's rmap). Write protection and zaps of one gfn read it; every
// fill adds to it, so the common case — one leaf per gfn — is one typed-array word, not
// a hash-map entry:
//
//   one[gfn] (u32)   0           no leaf
//                    MANY        several: their addresses are in many.get(gfn), in fill order
//                    at + 1      one leaf, at hpa `at` (8-aligned, below 4 GiB)
//
// Guest frames are below the VM's size (a fill follows a successful walk through the
// VM's EPT), so the array grows to the highest gfn filled, not beyond.

const MANY = 0xffff_ffff;
const MAX_GFN = 2 ** 28; // the p2m's limit

export class ShadowRmap {
  private one = new Uint32Array(1024);
  private readonly many = new Map<number, Set<number>>();
  private top = 0; // one[top..] is all zero

  /** Notes that the shadow leaf at hpa `at` was filled for gfn. */
  add(gfn: number, at: number): void {
    if (gfn >>> 0 !== gfn || gfn >= this.one.length) this.grow(gfn); // grow refuses what is no gfn
    const v = this.one[gfn];
    if (v === 0) {
      this.one[gfn] = at + 1;
      if (gfn >= this.top) this.top = gfn + 1;
    } else if (v === MANY) this.many.get(gfn)!.add(at);
    else if (v - 1 !== at) {
      this.many.set(gfn, new Set([v - 1, at]));
      this.one[gfn] = MANY;
    }
  }

  // A typed array reads undefined outside 0..length-1 (and for non-integers): no leaf.
  has(gfn: number): boolean { return (this.one[gfn] ?? 0) !== 0; }

  /** The hpas of gfn's shadow leaves, in the order they were filled. */
  sptes(gfn: number): Iterable<number> {
    const v = this.one[gfn] ?? 0;
    return v === 0 ? [] : v === MANY ? this.many.get(gfn)! : [v - 1];
  }

  delete(gfn: number): void {
    if (!this.has(gfn)) return;
    this.one[gfn] = 0;
    this.many.delete(gfn);
  }

  clear(): void {
    this.one.fill(0, 0, this.top);
    this.top = 0;
    this.many.clear();
  }

  private grow(gfn: number): void {
    if (!Number.isInteger(gfn) || gfn < 0 || gfn >= MAX_GFN) throw new RangeError(`shadow rmap: gfn ${gfn} outside 0..2^28`);
    const next = new Uint32Array(Math.min(MAX_GFN, Math.max(gfn + 1, 2 * this.one.length)));
    next.set(this.one);
    this.one = next;
  }
}
