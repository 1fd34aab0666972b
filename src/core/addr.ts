// Address kinds, kept distinct so the compiler catches a gpa passed where an hpa is
// due (the rust-vmm vm-memory idea). All are bigint at run time; the brands cost nothing.
//   gva  guest-virtual (linear) address      gpa  guest-physical address
//   hpa  host-physical address               gfn / hfn  guest / host frame number

declare const brand: unique symbol;
type Brand<T, B extends string> = T & { readonly [brand]: B };

export type Gva = Brand<bigint, 'Gva'>;
export type Gpa = Brand<bigint, 'Gpa'>;
export type Hpa = Brand<bigint, 'Hpa'>;
export type Gfn = Brand<number, 'Gfn'>;
export type Hfn = Brand<number, 'Hfn'>;

export const PAGE_SIZE = 4096;
export const PAGE_SHIFT = 12n;

export const gva = (v: bigint | number): Gva => BigInt(v) as Gva;
export const gpa = (v: bigint | number): Gpa => BigInt(v) as Gpa;
export const hpa = (v: bigint | number): Hpa => BigInt(v) as Hpa;
export const hfnOf = (a: Hpa): Hfn => Number(a >> PAGE_SHIFT) as Hfn;
export const gfnOf = (a: Gpa): Gfn => Number(a >> PAGE_SHIFT) as Gfn;
export const hpaOf = (f: Hfn): Hpa => (BigInt(f) << PAGE_SHIFT) as Hpa;
export const gpaOf = (f: Gfn): Gpa => (BigInt(f) << PAGE_SHIFT) as Gpa;

/** Formats an address as 0x-prefixed hex, for messages. */
export const hex = (v: bigint | number): string => '0x' + BigInt(v).toString(16);
