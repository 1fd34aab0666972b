// Page sharing's knobs, costs and counters, kept apart from its workings (sharing.ts and
// its scanner, content table and COW pager) as metrics are kept apart from devices.

/** Modeled cycles of the sharing work. */
export interface SharingCosts {
  /** Hashing one 4 KiB page (xxHash64 runs at several bytes per cycle). */
  hash: number;
  /** A full compare of two pages. */
  compare: number;
  /** Copying a page on a copy-on-write break (on top of the VM's pageAlloc cost). */
  pageCopy: number;
  /** Remapping a gfn (p2m, EPT, shadow zap), e.g. the last sharer taking the frame back. */
  remap: number;
}

export const DEFAULT_SHARING_COSTS: SharingCosts = { hash: 1000, compare: 500, pageCopy: 1000, remap: 300 };

export interface SharingOptions {
  /** Seed of the scan order (default 1). */
  seed?: number;
  /** Pages scanned per simulated second per VM (default 50, ESX 2.5 Mem/ShareScanVM). */
  scanRatePerVm?: number;
  /** Pages scanned per simulated second over all VMs (default 200, ESX 2.5 Mem/ShareScanTotal). */
  scanRateTotal?: number;
  /** Map all-zero pages to one shared zero frame as soon as they are seen (default true). */
  shareZeroPages?: boolean;
  /** Hash bits in table keys, 1..53 (default 53). Few bits force collisions (tests, weak hashes). */
  hashBits?: number;
  /** Frames per batch of core calls (default 512). */
  batch?: number;
  costs?: Partial<SharingCosts>;
}

export interface SharingStats {
  /** Pages hashed by the scanner (and by shareNow). */
  scanned: number;
  /** Completed passes over a VM's guest frames (KSM full_scans, summed over VMs). */
  passes: number;
  /** Shared frames in use (KSM pages_shared). */
  pagesShared: number;
  /** Guest pages mapped to shared frames beyond the first of each (KSM pages_sharing). */
  pagesSharing: number;
  /** Host frames saved by sharing (= pagesSharing). */
  saved: number;
  /** Guest pages mapped to the shared zero frame (KSM ksm_zero_pages). */
  zeroShared: number;
  /** Hints currently in the table. */
  hints: number;
  /** Matches with a hint that was still valid (the hinted page became shared). */
  hintHits: number;
  /** Hints dropped on a match because their page changed or stopped being shareable. */
  hintStale: number;
  /** Full page compares. */
  compares: number;
  /** Hash matches whose contents differed (the page stays unshared). */
  falseMatches: number;
  /** Copy-on-write breaks (writes to shared pages), and those where the last sharer kept the frame. */
  cowBreaks: number;
  cowReuses: number;
  /** Large EPT leaves split to share a 4 KiB page inside them. */
  eptSplits: number;
  /** Pages not shared because splitting their large EPT leaf needed a table frame the hypervisor pool lacks. */
  skippedNoTable: number;
  /** Modeled cycles of scanning and of copy-on-write breaks. */
  scanCycles: number;
  cowCycles: number;
  /** NUMA replica frames made for read-only shared pages (pagers/numa.ts). */
  replicas: number;
}
