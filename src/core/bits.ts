// Architectural bit constants for users building page tables and loading registers.
// The authoritative diagrams are in assembly/entry.ts.

export const CR0 = { PE: 1n << 0n, WP: 1n << 16n, PG: 1n << 31n } as const;
export const CR3_NOFLUSH = 1n << 63n;
export const CR4 = {
  PSE: 1n << 4n, PAE: 1n << 5n, PGE: 1n << 7n, LA57: 1n << 12n, PCIDE: 1n << 17n,
  SMEP: 1n << 20n, SMAP: 1n << 21n, PKE: 1n << 22n,
} as const;
export const EFER = { LME: 1n << 8n, LMA: 1n << 10n, NXE: 1n << 11n } as const;
export const RFLAGS = { AC: 1n << 18n } as const;

/** Paging-structure entry bits (x86-64, all levels). */
export const PTE = {
  P: 1n << 0n, W: 1n << 1n, U: 1n << 2n, PWT: 1n << 3n, PCD: 1n << 4n, A: 1n << 5n,
  D: 1n << 6n, PS: 1n << 7n, G: 1n << 8n, XD: 1n << 63n,
} as const;
export const PKEY_SHIFT = 59n;

/** Page-fault error-code bits. */
export const PFEC = { P: 1, W: 2, U: 4, RSVD: 8, ID: 16, PK: 32 } as const;

/** EPT entry bits (Intel format; see assembly/ept.ts). */
export const EPT = {
  R: 1n << 0n, W: 1n << 1n, X: 1n << 2n, MT_WB: 6n << 3n, IPAT: 1n << 6n, PS: 1n << 7n,
  A: 1n << 8n, D: 1n << 9n,
} as const;

/** An EPT pointer: write-back paging structures, `levels`-level walk, A/D flags on or off. */
export function eptp(root: bigint, levels: 4 | 5 = 4, ad = true): bigint {
  return (root & 0x000f_ffff_ffff_f000n) | 6n | (BigInt(levels - 1) << 3n) | (ad ? 1n << 6n : 0n);
}

/** EPT-violation exit-qualification bits. */
export const EPT_QUAL = {
  READ: 1, WRITE: 2, FETCH: 4, READABLE: 8, WRITABLE: 16, EXECUTABLE: 32, GLA_VALID: 128, FINAL: 256,
} as const;

export const PAGE_4K = 4096;
export const PAGE_2M = 2 * 1024 * 1024;
export const PAGE_1G = 1024 * 1024 * 1024;
export type PageSize = typeof PAGE_4K | typeof PAGE_2M | typeof PAGE_1G;
