// fast-check generators of one random guest walk for the differential tests (nested,
// shadow, all modes): levels, leaf size, MAXPHYADDR 36..52, a va (so every entry sits at
// a random offset in its table), per-level entry flags with noise in ignored bits and
// occasional reserved bits (bits 51:M, PS in a PML4E/PML5E, 29:13 / 20:13 of a large
// leaf), control state and one access. Same shapes as test/model.property.test.ts.
import fc from 'fast-check';
import {
  type RefAccess, type RefRegs, CR0_PG, CR0_WP, CR4_PAE, CR4_LA57, CR4_SMEP, CR4_SMAP, CR4_PKE, EFER_LME,
  EFER_NXE, RFLAGS_AC, P, RW, US, A, D, PS, XD,
} from '../core/model/x86ref.js';

const U64 = (1n << 64n) - 1n;
const CR0_PE = 1n, CR4_PGE = 1n << 7n, CR4_PCIDE = 1n << 17n;
const bit = (n: number): bigint => 1n << BigInt(n);
const bits = (hi: number, lo: number): bigint => (hi < lo ? 0n : (bit(hi + 1) - 1n) & ~(bit(lo) - 1n));

export const often = (n: number) => fc.integer({ min: 0, max: n - 1 }).map((x) => x !== n - 1);
export const rare = (n: number) => fc.integer({ min: 0, max: n - 1 }).map((x) => x === n - 1);

const NOISE_NONLEAF = bits(4, 3) | bit(6) | bit(8) | bits(11, 9) | bits(62, 52);
const NOISE_PTE = bits(4, 3) | bit(7) | bit(8) | bits(11, 9) | bits(62, 52);
const NOISE_LARGE = bits(4, 3) | bit(8) | bits(11, 9) | bit(12) | bits(62, 52);

export interface WalkGenOptions {
  /** Leaf frame numbers below 2^frameBits (default 40). */
  frameBits?: number;
  /** MAXPHYADDR range (default 36..52). */
  minPhys?: number;
  /** Chance 1/n of reserved bits 51:M in each entry (default 40). */
  rsvdHighOneIn?: number;
  /** Include CPL 0 / 3 and the rest of the control state (default: everything). */
  pkeAllowed?: boolean;
}

export const entryArb = (frameBits: number, rsvdHighOneIn: number) => fc.record({
  p: often(24), w: often(3), u: often(5), xd: rare(12), a: fc.boolean(), d: fc.boolean(),
  noise: fc.bigInt(0n, U64),
  rsvdHigh: rare(rsvdHighOneIn), rsvdShape: rare(40), pick: fc.nat(),
  frame: fc.bigInt(0n, bit(frameBits) - 1n),
});
export type EntryGen = { p: boolean; w: boolean; u: boolean; xd: boolean; a: boolean; d: boolean; noise: bigint;
  rsvdHigh: boolean; rsvdShape: boolean; pick: number; frame: bigint };

export const walkCaseArb = (o: WalkGenOptions = {}) => fc.record({
  levels: fc.constantFrom(4, 5) as fc.Arbitrary<4 | 5>,
  leafLevel: fc.constantFrom(1, 2, 3),
  maxPhysAddr: fc.integer({ min: o.minPhys ?? 36, max: 52 }),
  vaRaw: fc.bigInt(0n, U64),
  canonical: often(12),
  entries: fc.array(entryArb(o.frameBits ?? 40, o.rsvdHighOneIn ?? 40), { minLength: 5, maxLength: 5 }),
  ctl: fc.record({
    wp: fc.boolean(), smep: fc.boolean(), smap: fc.boolean(), pke: o.pkeAllowed === false ? fc.constant(false) : fc.boolean(),
    pge: fc.boolean(), pcide: fc.boolean(), nxe: fc.boolean(), ac: fc.boolean(), cpl: fc.constantFrom(0, 3),
    pkru: fc.integer({ min: 0, max: 0xffff_ffff }), cr3Low: fc.integer({ min: 0, max: 0xfff }),
  }),
  access: fc.record({
    kind: fc.constantFrom('read', 'write', 'fetch'),
    user: fc.constantFrom(undefined, true),
    implicit: rare(5),
  }),
});
export type WalkCase = {
  levels: 4 | 5; leafLevel: number; maxPhysAddr: number; vaRaw: bigint; canonical: boolean; entries: EntryGen[];
  ctl: { wp: boolean; smep: boolean; smap: boolean; pke: boolean; pge: boolean; pcide: boolean; nxe: boolean;
    ac: boolean; cpl: number; pkru: number; cr3Low: number };
  access: { kind: string; user: true | undefined; implicit: boolean };
};

/** The raw value of the entry at `level`; `next` is the next table's address (non-leaf). */
export function entryValue(g: EntryGen, level: number, isLeaf: boolean, M: number, next: bigint): bigint {
  let v = (g.p ? P : 0n) | (g.w ? RW : 0n) | (g.u ? US : 0n) | (g.a ? A : 0n) | (g.xd ? XD : 0n);
  if (isLeaf) {
    const shift = level === 1 ? 12 : level === 2 ? 21 : 30;
    v |= (g.noise & (level === 1 ? NOISE_PTE : NOISE_LARGE)) | (g.d ? D : 0n) | (level > 1 ? PS : 0n);
    v |= (g.frame << 12n) & bits(M - 1, shift);
  } else {
    v |= (g.noise & NOISE_NONLEAF) | next;
  }
  if (g.rsvdHigh && M < 52) v |= bit(M + (g.pick % (52 - M)));
  if (g.rsvdShape) {
    if (level >= 4) v |= PS;
    else if (level === 3 && isLeaf) v |= bit(13 + (g.pick % 17));
    else if (level === 2 && isLeaf) v |= bit(13 + (g.pick % 8));
  }
  return v;
}

export const vaOf = (c: WalkCase): bigint =>
  c.canonical ? BigInt.asUintN(64, BigInt.asIntN(c.levels === 5 ? 57 : 48, c.vaRaw)) : c.vaRaw;

export function regsOf(c: WalkCase, cr3: bigint, o: { pcide?: boolean } = {}): RefRegs {
  const k = c.ctl;
  const pcide = o.pcide ?? k.pcide;
  return {
    cr0: CR0_PE | CR0_PG | (k.wp ? CR0_WP : 0n),
    cr3: cr3 | BigInt(k.cr3Low),
    cr4: CR4_PAE | (c.levels === 5 ? CR4_LA57 : 0n) | (k.smep ? CR4_SMEP : 0n) | (k.smap ? CR4_SMAP : 0n) |
      (k.pke ? CR4_PKE : 0n) | (k.pge ? CR4_PGE : 0n) | (pcide ? CR4_PCIDE : 0n),
    efer: EFER_LME | (k.nxe ? EFER_NXE : 0n),
    rflags: 2n | (k.ac ? RFLAGS_AC : 0n),
    pkru: k.pkru, cpl: k.cpl, maxPhysAddr: c.maxPhysAddr,
  };
}

export const accessOf = (c: WalkCase): RefAccess => {
  const a: RefAccess = {};
  if (c.access.kind === 'write') a.write = true;
  if (c.access.kind === 'fetch') a.fetch = true;
  if (c.access.user !== undefined) a.user = c.access.user;
  if (c.access.implicit) a.implicit = true;
  return a;
};
