// vCPU translation state: the architectural registers that affect translation, the
// values derived from them (recomputed by refresh()), the vCPU's TLBs and
// paging-structure caches, its counters and cost model.

import {
  CR0_PG, CR0_WP, CR0_AM, CR3_NOFLUSH, CR4_LA57, CR4_PAE, CR4_PCIDE, CR4_PGE, CR4_PKE, CR4_SMAP,
  CR4_SMEP, EFER_LMA, EFER_LME, EFER_NXE, PF_ID, RFLAGS_AC, PTE_XD,
} from "./entry";
import { alloc } from "./mem";
import { Tlb, initTlb, enableOrder, ENTRY, microFlush, MICRO_ENTRIES, MICRO_BYTES, CTX_ANY, CTX_NONZERO, invalidateWhere, invalidateVa, INV_ALL, INV_PCID_ALL,
  INV_PCID_NONGLOBAL, INV_NONGLOBAL } from "./tlb";
import { NUM_COUNTERS, C_FLUSHES, C_INVLPG, bump } from "./counters";
import { registerMicro } from "./x86/icache";

// Cache indices. L1 instruction and data TLBs per page size, a unified second-level
// TLB holding every size, and one paging-structure cache per non-leaf level.
export const T_I4K: i32 = 0;
export const T_I2M: i32 = 1;
export const T_D4K: i32 = 2;
export const T_D2M: i32 = 3;
export const T_D1G: i32 = 4;
export const T_L2: i32 = 5;
export const T_PDE: i32 = 6;   // PSC of level-2 entries (PDE → PT)
export const T_PDPTE: i32 = 7; // level 3
export const T_PML4E: i32 = 8; // level 4
export const T_PML5E: i32 = 9; // level 5
export const NUM_GUEST: i32 = 10; // caches of linear/combined mappings end here
// Guest-physical mappings (nested mode, tagged by the EPT, not by PCID/VPID):
export const T_NTLB: i32 = 10;  // nested TLB: gpa page → hpa frame (all sizes)
export const T_EPDE: i32 = 11;  // EPT paging-structure caches, by EPT level 2..5
export const NUM_TLBS: i32 = 15;

// Translation modes (VMCS-like state loaded with setVmcs).
export const MODE_NATIVE: u32 = 0;
export const MODE_NESTED: u32 = 1;
export const MODE_SHADOW: u32 = 2;
const TLB_DESC: usize = offsetof<Tlb>();

export const MAX_EVENTS: u32 = 64; // coherence-checker ring
export const EVENT_BYTES: usize = 32;

// Register selectors for setReg/getReg.
export const R_CR0: u32 = 0;
export const R_CR3: u32 = 1;
export const R_CR4: u32 = 2;
export const R_EFER: u32 = 3;
export const R_RFLAGS: u32 = 4;
export const R_PKRU: u32 = 5;
export const R_CPL: u32 = 6;

@unmanaged export class Cpu {
  // architectural state
  cr0: u64;
  cr3: u64;
  cr4: u64;
  efer: u64;
  rflags: u64;
  pkru: u32;
  cpl: u32;
  maxPhysAddr: u32;
  // derived (refresh)
  levels: u32;      // 0 = paging off, 4 or 5; 1 = legacy paging (not modeled)
  pcid: u32;        // current PCID (0 unless CR4.PCIDE)
  canonShift: u32;  // 16 for 4-level, 7 for 5-level
  nxe: u32;
  pke: u32;
  wp: u32;
  idBit: u32;       // error-code I/D for fetches: NXE or SMEP
  ac: u32;
  ctx: u32;         // translation context tag for cached entries
  pscRights: u32;   // scratch: rights of the last paging-structure-cache hit
  pscGpa: u64;      // scratch: its next table's gpa (nested mode)
  mode: u32;        // MODE_*
  eptRoot: u64;     // EPTP bits 51:12
  eptLoaded: u64;   // the root the caches were filled under
  eptLevels: u32;   // 4 or 5
  eptAD: u32;       // EPTP bit 6: EPT accessed/dirty flags
  eptRsvd: u64;     // reserved in every present EPT entry: bits 51:M
  // EPT translation scratch / exit data
  eptHpa: u64;      // result of the last EPT translation
  eptSize: u64;     // its EPT page size
  eptRights: u32;   // its R/W/X (AND over the EPT entries used)
  eptD: u32;        // its EPT leaf D flag (1 when EPT A/D is off)
  exitGpa: u64;
  exitQual: u32;
  exitValue: u64;   // IO data or CR3 value of an exit
  rsvdHigh: u64;    // reserved in every present entry: bits 51:M, bit 63 without NXE
  addrMask: u64;    // bits M-1:12
  perm: u64;        // low 8 bytes of the 16-byte permission table
  perm2: u64;       // high 8 bytes
  // structures
  tlbs: usize;      // NUM_TLBS × Tlb
  counters: usize;  // NUM_COUNTERS × u64
  path: usize;      // walk path by level: 5 entry values, 5 entry addresses, EPT scratch
  micro: usize;     // MICRO_ENTRIES fast-path entries (access.ts)
  events: usize;    // MAX_EVENTS × EVENT_BYTES
  checker: u32;
  tlbOn: u32;       // some TLB has entries (else lookups and fills are skipped)
  pscOn: u32;       // some guest paging-structure cache has entries
  ntlbOn: u32;      // the nested TLB has entries
  epscOn: u32;      // some EPT paging-structure cache has entries
  clock: u32;       // LRU time
  // last result / exit
  resPa: u64;
  resSize: u64;
  exitAddr: u64;
  errorCode: u32;
  exitReason: u32;
  exitIndex: u32;
  // the instruction interpreter (assembly/x86/): its state, and the fast-path mirror of
  // the L1 instruction TLB, created on first use
  x86: usize;
  microI: usize;
  // hand-off: the L1 4 KiB entry the last translation used or filled (microFill checks it)
  l1Entry: usize;
  hitTlb: usize;    // the ordered cache (Tlb) lookup's hit came from, or 0 (useEntry touches it)
  qLeaf: u32;       // scratch of the quick walk (walk.ts quickWalk): the leaf level
  qRights: u32;     // and the walk's rights
  qLeafPa: u64;     // and the leaf entry's address
  noFast: u32;      // 1: general path only: no batch fast loops, the careful 2D walk (differential tests)
}

@inline export function tlbOf(c: Cpu, i: i32): Tlb {
  return changetype<Tlb>(c.tlbs + <usize>i * TLB_DESC);
}

// geometry: NUM_TLBS pairs (entries, ways) in u32 at `geo`. Returns 0 on exhaustion.
export function newCpu(geo: usize, maxPhysAddr: u32): usize {
  let p = alloc(offsetof<Cpu>());
  if (p == 0) return 0;
  let c = changetype<Cpu>(p);
  c.tlbs = alloc(<u64>NUM_TLBS * TLB_DESC);
  c.counters = alloc(<u64>NUM_COUNTERS * 8);
  c.path = alloc(20 * 8);
  c.events = alloc(<u64>MAX_EVENTS * EVENT_BYTES);
  if (c.tlbs == 0 || c.counters == 0 || c.path == 0 || c.events == 0) return 0;
  for (let i = 0; i < NUM_TLBS; i++) {
    let entries = load<u32>(geo + (<usize>i << 3));
    let ways = load<u32>(geo + (<usize>i << 3) + 4);
    let sets = ways > 0 ? entries / ways : 0;
    let mem = sets > 0 ? alloc(<u64>entries * ENTRY) : 0;
    if (sets > 0 && mem == 0) return 0;
    initTlb(tlbOf(c, i), mem, sets, sets > 0 ? ways : 0);
  }
  // The unified L2 keeps its LRU order explicitly (tlb.ts: ordered caches).
  if (!enableOrder(tlbOf(c, T_L2))) return 0;
  for (let i = 0; i < T_PDE; i++) if (tlbOf(c, i).ways > 0) c.tlbOn = 1;
  for (let i = T_PDE; i < NUM_GUEST; i++) if (tlbOf(c, i).ways > 0) c.pscOn = 1;
  c.ntlbOn = tlbOf(c, T_NTLB).ways > 0 ? 1 : 0;
  for (let i = T_EPDE; i < NUM_TLBS; i++) if (tlbOf(c, i).ways > 0) c.epscOn = 1;
  // The fast path mirrors the L1 4 KiB data TLB (see access.ts).
  if (tlbOf(c, T_D4K).ways > 0) {
    c.micro = alloc(<u64>MICRO_ENTRIES * MICRO_BYTES);
    if (c.micro == 0) return 0;
    tlbOf(c, T_D4K).micro = c.micro;
    registerMicro(c.micro); // its write entries must never cover cached code (x86/icache.ts)
  }
  c.maxPhysAddr = maxPhysAddr;
  refresh(c);
  return p;
}

// Permission table: for each access type a (bit 0 write, bit 1 user, bit 2 fetch,
// bit 3 SMAP-exempt), a byte whose bit r is set when rights r (bit 0 W, bit 1 U,
// bit 2 NX — the tlb.ts attr layout >> 1) forbid the access. Protection keys are
// checked apart because they depend on the key, not on the rights (SDM §4.6).
function permByte(c: Cpu, a: u32): u8 {
  let write = (a & 1) != 0, user = (a & 2) != 0, fetch = (a & 4) != 0, smapOk = (a & 8) != 0;
  let smep = (c.cr4 & CR4_SMEP) != 0, smap = (c.cr4 & CR4_SMAP) != 0;
  let out: u32 = 0;
  for (let r: u32 = 0; r < 8; r++) {
    let w = (r & 1) != 0, u = (r & 2) != 0, nx = (r & 4) != 0;
    let fault = false;
    if (fetch) {
      fault = nx || (user ? !u : (smep && u));
    } else if (user) {
      fault = !u || (write && !w);
    } else {
      fault = (write && !w && c.wp != 0) || (u && smap && !smapOk);
    }
    if (fault) out |= 1 << r;
  }
  return <u8>out;
}

// Recomputes every derived field after a register change.
export function refresh(c: Cpu): void {
  let m = c.maxPhysAddr;
  let pg = (c.cr0 & CR0_PG) != 0, pae = (c.cr4 & CR4_PAE) != 0, lme = (c.efer & EFER_LME) != 0;
  // LMA is not loaded: it follows LME, PG and PAE as on hardware.
  if (pg && pae && lme) c.efer |= EFER_LMA; else c.efer &= ~EFER_LMA;
  c.levels = !pg ? 0 : ((c.efer & EFER_LMA) == 0 ? 1 : ((c.cr4 & CR4_LA57) != 0 ? 5 : 4));
  c.canonShift = c.levels == 5 ? 7 : 16;
  c.pcid = (c.cr4 & CR4_PCIDE) != 0 ? <u32>(c.cr3 & 0xFFF) : 0;
  c.nxe = (c.efer & EFER_NXE) != 0 ? 1 : 0;
  c.pke = (c.cr4 & CR4_PKE) != 0 ? 1 : 0;
  c.wp = (c.cr0 & CR0_WP) != 0 ? 1 : 0;
  c.ac = (c.rflags & RFLAGS_AC) != 0 ? 1 : 0;
  c.idBit = c.nxe != 0 || (c.cr4 & CR4_SMEP) != 0 ? PF_ID : 0;
  let high: u64 = m >= 52 ? 0 : (((<u64>1 << 52) - 1) & ~((<u64>1 << m) - 1));
  c.eptRsvd = high;
  c.rsvdHigh = high | (c.nxe != 0 ? 0 : PTE_XD);
  c.addrMask = ((<u64>1 << m) - 1) & ~(<u64>0xFFF);
  let lo: u64 = 0, hi: u64 = 0;
  for (let a: u32 = 0; a < 8; a++) {
    lo |= <u64>permByte(c, a) << (a * 8);
    hi |= <u64>permByte(c, a + 8) << (a * 8);
  }
  c.perm = lo;
  c.perm2 = hi;
  // Alignment checking (#AC at CPL 3 with CR0.AM and RFLAGS.AC) happens on the interpreter's
  // slow path only (x86/vmem.ts), so the data fast path is off while it is enabled.
  c.micro = c.cpl == 3 && (c.cr0 & CR0_AM) != 0 && c.ac != 0 ? 0 : tlbOf(c, T_D4K).micro;
  // Fast-path entries hold rights computed for the old state.
  if (c.micro != 0) microFlush(c.micro);
  if (c.microI != 0) microFlush(c.microI);
}

@inline export function permFaults(c: Cpu, a: u32, rights: u32): bool {
  let t = a < 8 ? c.perm >> (<u64>a * 8) : c.perm2 >> (<u64>(a - 8) * 8);
  return ((<u32>t >> rights) & 1) != 0;
}

export function setReg(c: Cpu, reg: u32, v: u64): void {
  if (reg == R_CR0) c.cr0 = v;
  else if (reg == R_CR3) c.cr3 = v & ~CR3_NOFLUSH;
  else if (reg == R_CR4) c.cr4 = v;
  else if (reg == R_EFER) c.efer = v;
  else if (reg == R_RFLAGS) c.rflags = v;
  else if (reg == R_PKRU) c.pkru = <u32>v;
  else if (reg == R_CPL) c.cpl = <u32>v & 3;
  refresh(c);
}

export function getReg(c: Cpu, reg: u32): u64 {
  if (reg == R_CR0) return c.cr0;
  if (reg == R_CR3) return c.cr3;
  if (reg == R_CR4) return c.cr4;
  if (reg == R_EFER) return c.efer;
  if (reg == R_RFLAGS) return c.rflags;
  if (reg == R_PKRU) return <u64>c.pkru;
  return <u64>c.cpl;
}

// Applies `how` to every cache of linear/combined mappings of context `ctx` (PSCs get
// the matching selector). Guest-physical mappings are untouched: only INVEPT drops them.
function invalidateAll(c: Cpu, how: u32, pcid: u32, ctx: u32 = 0xFFFF_FFFF): void {
  if (ctx == 0xFFFF_FFFF) ctx = c.ctx;
  for (let i = 0; i < NUM_GUEST; i++) {
    let t = tlbOf(c, i);
    if (i >= T_PDE) {
      // Paging-structure caches hold no global entries: a non-global selector
      // drops every entry of its scope.
      let h = how == INV_PCID_NONGLOBAL ? INV_PCID_ALL : (how == INV_NONGLOBAL ? INV_ALL : how);
      invalidateWhere(t, h, pcid, ctx);
    } else {
      invalidateWhere(t, how, pcid, ctx);
    }
  }
  bump(c.counters, C_FLUSHES);
}

// Drops every cached translation of every kind and context.
export function flushAll(c: Cpu): void {
  for (let i = 0; i < NUM_TLBS; i++) invalidateWhere(tlbOf(c, i), INV_ALL, 0, CTX_ANY);
  bump(c.counters, C_FLUSHES);
}

// Loads the VMCS-like translation controls. Returns false for a bad EPTP.
export function setVmcs(c: Cpu, mode: u32, eptp: u64, vpid: u32): bool {
  if (mode > MODE_SHADOW || vpid > 0xFFFF) return false;
  if (mode == MODE_NESTED) {
    let levels = <u32>((eptp >> 3) & 7) + 1;
    let mt = <u32>(eptp & 7);
    if ((levels != 4 && levels != 5) || (mt != 0 && mt != 6) || (eptp & 0xF80) != 0 ||
        (eptp & c.eptRsvd) != 0 || (eptp >> 52) != 0) return false;
    c.eptLevels = levels;
    c.eptAD = (eptp & 0x40) != 0 ? 1 : 0;
    c.eptRoot = eptp & 0x000F_FFFF_FFFF_F000;
  }
  let changed = mode != c.mode || (mode == MODE_NESTED && (eptp & 0x000F_FFFF_FFFF_F000) != c.eptLoaded);
  c.mode = mode;
  c.ctx = vpid;
  if (mode == MODE_NESTED) c.eptLoaded = eptp & 0x000F_FFFF_FFFF_F000;
  refresh(c);
  // Cached entries carry no EPT-root tag: a new mode or EPT root starts from empty
  // caches. With VPID 0 every VM entry drops VPID 0's linear/combined mappings.
  if (changed) flushAll(c);
  else if (vpid == 0) invalidateAll(c, INV_ALL, 0, 0);
  return true;
}

// INVEPT: type 1 (single context) or 2 (global). Mappings are not tagged with the EPTP,
// so both drop every guest-physical and combined mapping (the SDM allows more).
export function invept(c: Cpu, type: u32): bool {
  if (type != 1 && type != 2) return false;
  flushAll(c);
  return true;
}

// INVVPID types 0-3 (SDM: individual address, single context, all contexts, single
// context retaining globals). Returns false for VMfail.
export function invvpid(c: Cpu, type: u32, vpid: u32, va: u64): bool {
  if (type > 3 || vpid > 0xFFFF || (type != 2 && vpid == 0)) return false;
  if (type == 0) {
    if (!canonical(c, va)) return false;
    for (let i = 0; i < T_PDE; i++) invalidateVa(tlbOf(c, i), va, 0, true, vpid, true);
    for (let i = T_PDE; i < NUM_GUEST; i++) invalidateWhere(tlbOf(c, i), INV_ALL, 0, vpid);
  } else if (type == 1) {
    invalidateAll(c, INV_ALL, 0, vpid);
  } else if (type == 2) {
    for (let i = 0; i < NUM_GUEST; i++) invalidateWhere(tlbOf(c, i), INV_ALL, 0, CTX_NONZERO);
  } else {
    invalidateAll(c, INV_NONGLOBAL, 0, vpid);
  }
  return true;
}

@inline export function canonical(c: Cpu, va: u64): bool {
  let s = <u64>c.canonShift;
  return <u64>((<i64>(va << s)) >> s) == va;
}

// MOV to CR3 (SDM §4.10.4.1). Returns false for #GP (reserved bits set).
export function writeCr3(c: Cpu, v: u64): bool {
  let pcide = (c.cr4 & CR4_PCIDE) != 0;
  let noflush = pcide && (v & CR3_NOFLUSH) != 0;
  // Bit 63 means "no flush" only with PCIDE; otherwise it is reserved like bits 62:M.
  let val = pcide ? v & ~CR3_NOFLUSH : v;
  let rsvd = ~(<u64>0) << c.maxPhysAddr;
  if ((c.efer & EFER_LMA) != 0 && (val & rsvd) != 0) return false;
  c.cr3 = val;
  refresh(c);
  if (!noflush) invalidateAll(c, INV_PCID_NONGLOBAL, c.pcid);
  return true;
}

// MOV to CR4 (SDM §4.10.4.1). Returns false for #GP.
export function writeCr4(c: Cpu, v: u64): bool {
  let old = c.cr4;
  let changed = old ^ v;
  let lma = (c.efer & EFER_LMA) != 0;
  if (lma && (changed & CR4_LA57) != 0) return false;  // LA57 is fixed in 64-bit mode
  if (lma && (v & CR4_PAE) == 0) return false;         // PAE cannot be cleared in long mode
  if ((changed & v & CR4_PCIDE) != 0 && ((c.cr3 & 0xFFF) != 0 || !lma)) return false;
  c.cr4 = v;
  refresh(c);
  if ((changed & CR4_PGE) != 0 || (changed & old & CR4_PCIDE) != 0 ||
      (changed & CR4_PAE) != 0 || (changed & v & CR4_SMEP) != 0) {
    // The SDM requires a PCID-local flush for PAE/SMEP changes; flushing all is allowed.
    invalidateAll(c, INV_ALL, 0);
  }
  return true;
}

// MOV to CR0: only PG changes flush; WP is applied at access time.
export function writeCr0(c: Cpu, v: u64): bool {
  let changed = c.cr0 ^ v;
  c.cr0 = v;
  refresh(c);
  if ((changed & CR0_PG) != 0) invalidateAll(c, INV_ALL, 0);
  return true;
}

// INVLPG: the page's entries of the current PCID and global ones; all PSC entries of
// the current PCID. A non-canonical address is a no-op.
export function invlpg(c: Cpu, va: u64): void {
  bump(c.counters, C_INVLPG);
  if (!canonical(c, va)) return;
  for (let i = 0; i < T_PDE; i++) invalidateVa(tlbOf(c, i), va, c.pcid, true, c.ctx);
  for (let i = T_PDE; i < NUM_GUEST; i++) invalidateWhere(tlbOf(c, i), INV_PCID_ALL, c.pcid, c.ctx);
}

// INVPCID types 0–3. Returns false for #GP.
export function invpcid(c: Cpu, type: u32, pcid: u64, va: u64): bool {
  if (type > 3 || pcid > 0xFFF) return false;
  let p = <u32>pcid;
  if ((c.cr4 & CR4_PCIDE) == 0 && type <= 1 && p != 0) return false;
  if (type == 0) {
    if (!canonical(c, va)) return false;
    for (let i = 0; i < T_PDE; i++) invalidateVa(tlbOf(c, i), va, p, false, c.ctx);
    for (let i = T_PDE; i < NUM_GUEST; i++) invalidateWhere(tlbOf(c, i), INV_PCID_ALL, p, c.ctx);
  } else if (type == 1) {
    invalidateAll(c, INV_PCID_NONGLOBAL, p);
  } else if (type == 2) {
    invalidateAll(c, INV_ALL, 0);
  } else {
    invalidateAll(c, INV_NONGLOBAL, 0);
  }
  return true;
}

