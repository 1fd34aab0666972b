// The Limine boot protocol as far as memvisor's loader speaks it (BOOT.md; upstream
// PROTOCOL.md / limine.h, checked against limine-bootloader/limine): the base revision tag,
// the request markers, the requests we answer and their response layouts.
//
// Request (8-aligned, in the loaded image):      Base revision tag (8-aligned):
//   +0  u64 id[4]  (id[0..1] = common magic)       +0  0xf9562b2d5c95a6c8
//   +32 u64 revision                                +8  0x6a7b384944536bdc (loaded revision
//   +40 u64 response (HHDM pointer, we write it)        written here when it differs)
//   +48 request-specific (entry, stack_size, mode)  +16 N (written 0 when N is supported)
//
// Responses (all pointers are HHDM addresses; every response starts with u64 revision = 0):
//   bootloader info    {rev, char* name, char* version}
//   HHDM               {rev, u64 offset}
//   memory map         {rev, u64 entry_count, entry** entries}; entry {u64 base, length, type}
//   executable address {rev, u64 physical_base, u64 virtual_base}
//   executable cmdline {rev, char* cmdline}
//   executable file    {rev, limine_file* executable_file}
//   stack size / entry point {rev};  paging mode {rev, u64 mode (0 = 4-level)}
//
// limine_file (112 bytes): +0 rev, +8 address, +16 size, +24 char* path, +32 char* string
//   (the command line; "cmdline" in older headers), +40 u32 media_type, +44 u32 unused,
//   +48 u32 tftp_ip, +52 u32 tftp_port, +56 u32 partition_index, +60 u32 mbr_disk_id,
//   +64 gpt_disk_uuid[16], +80 gpt_part_uuid[16], +96 part_uuid[16] (all zero here).

export const COMMON_MAGIC = [0xc7b1dd30df4c8b88n, 0x0a82e883a194f07bn] as const;
export const BASE_REVISION_MAGIC = [0xf9562b2d5c95a6c8n, 0x6a7b384944536bdcn] as const;
export const START_MARKER = [0xf6b8f4b39de7d1aen, 0xfab91a6940fcb9cfn, 0x785c6ed015d3e316n, 0x181e920a7852b9d9n] as const;
export const END_MARKER = [0xadc0e0531bb10d03n, 0x9572709f31764c62n] as const;
/** Highest base revision the loader implements (BOOT.md: 0..3). */
export const MAX_BASE_REVISION = 3n;
export const HHDM_OFFSET = 0xffff_8000_0000_0000n;
export const LIMINE_FILE_BYTES = 112;

export const REQUEST = {
  bootloaderInfo: [0xf55038d8e2a1202fn, 0x279426fcf5f59740n],
  hhdm: [0x48dcf1cb8ad2b852n, 0x63984e959a98244bn],
  memmap: [0x67cf3d9d378a806fn, 0xe304acdfc50c3c62n],
  executableAddress: [0x71ba76863cc55f63n, 0xb2644a48c516a487n],
  executableCmdline: [0x4b161536e598651en, 0xb390ad4a2f1f303an],
  executableFile: [0xad97e90e83f1ed67n, 0x31eb5d1c5ff23b69n],
  stackSize: [0x224ef0460a8e8926n, 0xe1cb0fc25f46ea3dn],
  pagingMode: [0x95c1a0edab0944cbn, 0xa4e5cb3842f7488an],
  entryPoint: [0x13d86c035a1cd3e1n, 0x2b0caa89d8f3026an],
} as const;
export type RequestKind = keyof typeof REQUEST;

export const MEMMAP = {
  USABLE: 0, RESERVED: 1, ACPI_RECLAIMABLE: 2, ACPI_NVS: 3, BAD_MEMORY: 4,
  BOOTLOADER_RECLAIMABLE: 5, EXECUTABLE_AND_MODULES: 6, FRAMEBUFFER: 7,
} as const;

export interface MemmapEntry { base: bigint; length: bigint; type: number }

/** A request found in the image: where it is and what it asks. */
export interface FoundRequest {
  kind: RequestKind;
  /** Guest-physical address of the request (its virtual address is gpa + slide). */
  gpa: bigint;
  revision: bigint;
  /** The request-specific word at +48 (entry, stack_size, mode), 0 when the image ends first. */
  arg: bigint;
}

export interface ScanResult {
  requests: FoundRequest[];
  /** gpa of the base revision tag, or null (revision 0). */
  baseRevisionTag: bigint | null;
  requestedRevision: bigint;
  /** Start / end markers found (they bound the scan). */
  markers: { start: bigint | null; end: bigint | null };
}

export class LimineError extends Error {
  constructor(message: string) { super(`Limine: ${message}`); this.name = 'LimineError'; }
}

/** The loaded image as the scanner sees it: 8-aligned words over file-backed ranges. */
export interface ScanImage {
  /** File-backed [gpa, end) ranges, in ascending order. */
  ranges: { gpa: bigint; end: bigint }[];
  read64(gpa: bigint): bigint;
}

const kinds = Object.entries(REQUEST) as [RequestKind, readonly [bigint, bigint]][];
const hex = (v: bigint): string => '0x' + v.toString(16);

/** Scans the image in 8-byte steps for the base revision tag, the markers and the requests. */
export function scan(img: ScanImage): ScanResult {
  const words = (fn: (gpa: bigint, left: bigint) => void) => {
    for (const r of img.ranges) for (let a = (r.gpa + 7n) & ~7n; a + 8n <= r.end; a += 8n) fn(a, r.end - a);
  };
  let tag: bigint | null = null, start: bigint | null = null, end: bigint | null = null;
  words((a, left) => {
    const w0 = img.read64(a);
    if (left >= 24n && w0 === BASE_REVISION_MAGIC[0] && img.read64(a + 8n) === BASE_REVISION_MAGIC[1] && tag === null) tag = a;
    if (left >= 32n && w0 === START_MARKER[0] && START_MARKER.every((m, i) => img.read64(a + 8n * BigInt(i)) === m)) start ??= a;
    if (left >= 16n && w0 === END_MARKER[0] && img.read64(a + 8n) === END_MARKER[1]) end ??= a;
  });
  if (start !== null && end !== null && end < start) throw new LimineError(`end marker at ${hex(end)} precedes the start marker at ${hex(start)}`);
  const requests: FoundRequest[] = [];
  words((a, left) => {
    if ((start !== null && a < start) || (end !== null && a >= end) || left < 48n) return;
    if (img.read64(a) !== COMMON_MAGIC[0] || img.read64(a + 8n) !== COMMON_MAGIC[1]) return;
    const id2 = img.read64(a + 16n), id3 = img.read64(a + 24n);
    const k = kinds.find(([, id]) => id[0] === id2 && id[1] === id3);
    if (!k) return; // a request we do not support: its response stays untouched (NULL)
    if (requests.some((r) => r.kind === k[0])) throw new LimineError(`duplicate ${k[0]} request at ${hex(a)}`);
    requests.push({ kind: k[0], gpa: a, revision: img.read64(a + 32n), arg: left >= 56n ? img.read64(a + 48n) : 0n });
  });
  const requestedRevision = tag === null ? 0n : img.read64((tag as bigint) + 16n);
  return { requests, baseRevisionTag: tag, requestedRevision, markers: { start, end } };
}

/**
 * The base revision outcome: a supported request (0..3) is acknowledged by writing 0 into
 * the tag's third word; a higher one boots with our highest revision, which newer loaders
 * report in the tag's second word (LIMINE_LOADED_BASE_REVISION), leaving the third word.
 */
export function baseRevision(s: ScanResult): { loaded: bigint; supported: boolean; writes: [bigint, bigint][] } {
  if (s.baseRevisionTag === null) return { loaded: 0n, supported: true, writes: [] };
  if (s.requestedRevision <= MAX_BASE_REVISION) {
    return { loaded: s.requestedRevision, supported: true, writes: [[s.baseRevisionTag + 16n, 0n]] };
  }
  return { loaded: MAX_BASE_REVISION, supported: false, writes: [[s.baseRevisionTag + 8n, MAX_BASE_REVISION]] };
}

/** Sorted, disjoint memory map entries must tile what they describe; checks the invariants. */
export function checkMemmap(entries: MemmapEntry[]): void {
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i], prev = entries[i - 1];
    if (e.length <= 0n || (e.base | e.length) & 0xfffn) throw new Error(`memmap entry ${i} ${hex(e.base)}+${hex(e.length)} is not page-granular`);
    if (prev && prev.base + prev.length > e.base) throw new Error(`memmap entry ${i} at ${hex(e.base)} overlaps or is unsorted`);
    if (e.type === MEMMAP.USABLE && e.base < 0x1000n) throw new Error('memmap: page 0 must not be usable');
  }
}
