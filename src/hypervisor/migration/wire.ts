// What pre-copy puts on the wire for one guest frame, and how many bytes it costs. As the
// lecture describes VMotion's use of the memory metadata: a zero page is a flag, a page
// shared by content is sent once and then named by its content hash, a swapped page is
// named by its swap slot (the swap file sits on storage both hosts reach), and only other
// pages carry their 4 KiB.
//
// Record (every kind starts with the 8-byte header):
//
//   63          56 55                                   0
//  ┌──────────────┬──────────────────────────────────────┐
//  │ kind (below) │ gfn                                   │  then, by kind:
//  └──────────────┴──────────────────────────────────────┘
//   page        4096 bytes of contents
//   zero        nothing: the destination leaves the gfn unbacked (it reads as zeros)
//   shared      8-byte xxHash64 + 4096 bytes: the first frame of this content
//   shared-ref  8-byte xxHash64: contents sent before under this hash
//   swap-ref    8-byte swap slot: the destination's swap adopts the slot at switchover
//   swap-read   4096 bytes read from the source's swap (no shared storage): costs a disk read
//   unbacked    nothing: the gfn has no backing (it was dropped since an earlier round)
//   ballooned   nothing: the guest's balloon holds the gfn

export const PAGE_KINDS = ['page', 'zero', 'shared', 'shared-ref', 'swap-ref', 'swap-read', 'unbacked', 'ballooned'] as const;
export type PageKind = typeof PAGE_KINDS[number];

export const HEADER_BYTES = 8;
const PAGE_BYTES = 4096;
const WORD = 8;

const PAYLOAD: Record<PageKind, number> = {
  page: PAGE_BYTES, zero: 0, shared: WORD + PAGE_BYTES, 'shared-ref': WORD, 'swap-ref': WORD,
  'swap-read': PAGE_BYTES, unbacked: 0, ballooned: 0,
};

/** Bytes on the wire for one record of `kind`. */
export const recordBytes = (kind: PageKind): number => HEADER_BYTES + PAYLOAD[kind];

/** Kinds whose record carries the page's contents (the destination backs a frame). */
export const carriesContents = (kind: PageKind): boolean =>
  kind === 'page' || kind === 'shared' || kind === 'shared-ref' || kind === 'swap-read';

export type KindCounts = Record<PageKind, number>;
export const noKinds = (): KindCounts =>
  Object.fromEntries(PAGE_KINDS.map((k) => [k, 0])) as KindCounts;
