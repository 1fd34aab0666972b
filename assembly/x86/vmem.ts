// Guest linear-memory accesses of the interpreter: data loads and stores, stack and
// descriptor-table references, instruction fetch. Every access goes through the MMU:
// first the fast path the batch engine uses (a direct-mapped mirror of the L1 4 KiB
// TLB, see tlb.ts MICRO_*), else translate() (TLBs, paging-structure caches, walks,
// EPT, A/D updates, counters). A fetch uses a second mirror of the L1 instruction TLB,
// kept coherent by the same fill/invalidate code (Tlb.micro).
//
// A failed access stops the instruction (x.stop) before anything is committed:
//   #PF (native/nested) → guest exception with CR2;  non-canonical → #GP(0) / #SS(0);
//   shadow #PF, EPT violation/misconfiguration, MMIO → exit to the host.
// Accesses crossing a page translate both pages before a byte moves.

import { ACC_FETCH, ACC_IMPLICIT, ACC_USER, ACC_WRITE, XLATE_OK, XLATE_PF, XLATE_GP, CR0_AM,
  XLATE_EPT_VIOLATION, XLATE_EPT_MISCONFIG } from "../entry";
import { physInRange, physPtr } from "../mem";
import { Cpu, tlbOf, T_D4K, T_I4K, MODE_SHADOW, canonical } from "../cpu";
import { translate, rightsFault } from "../walk";
import { probe, isEntryFor, microSlot, A_V, A_D, A_PKEY_SHIFT, A_PCID_SHIFT, A_EPT_NOX } from "../tlb";
import { bump, C_SPLIT, C_MMIO } from "../counters";
import { isCodeFrame, codeWrite } from "./icache";
import {
  X86, raise, exitTo, maskOf, V_PF, V_GP, V_SS, V_AC, XEXIT_PF, XEXIT_MMIO, XEXIT_EPT_VIOLATION,
  XEXIT_EPT_MISCONFIG, STOP_NONE,
} from "./state";

// Extra access flag (never passed to translate): a stack reference (#SS, not #GP).
export const ACC_STACK: u32 = 1 << 12;

// Access descriptor of an explicit data access at the current CPL.
@inline export function dataAcc(c: Cpu): u32 { return c.cpl == 3 ? ACC_USER : 0; }

@inline function loadN(p: usize, size: u32): u64 {
  if (size == 8) return load<u64>(p);
  if (size == 4) return <u64>load<u32>(p);
  if (size == 1) return <u64>load<u8>(p);
  return <u64>load<u16>(p);
}

@inline function storeN(p: usize, v: u64, size: u32): void {
  if (size == 8) store<u64>(p, v);
  else if (size == 4) store<u32>(p, <u32>v);
  else if (size == 1) store<u8>(p, <u8>v);
  else store<u16>(p, <u16>v);
}

// A failed translation becomes a guest exception or an exit.
function xlateFailed(c: Cpu, x: X86, st: u32, va: u64, acc: u32): void {
  x.lastAcc = acc & ~ACC_STACK;
  if (st == XLATE_PF) {
    if (c.mode == MODE_SHADOW) { exitTo(c, x, XEXIT_PF); return; }
    raise(x, V_PF, true, c.errorCode);
    x.excCr2 = c.exitAddr;
    x.excIsPf = 1;
  } else if (st == XLATE_GP) {
    raise(x, (acc & ACC_STACK) != 0 ? V_SS : V_GP, true, 0);
  } else if (st == XLATE_EPT_VIOLATION) {
    exitTo(c, x, XEXIT_EPT_VIOLATION);
  } else if (st == XLATE_EPT_MISCONFIG) {
    exitTo(c, x, XEXIT_EPT_MISCONFIG);
  } else {
    raise(x, V_GP, true, 0); // legacy paging modes are not modeled
  }
}

// Mirrors the L1 4 KiB entry for va into a fast-path array (after a slow translation).
function microFill(c: Cpu, x: X86, va: u64, acc: u32): void {
  let fetch = (acc & ACC_FETCH) != 0;
  let micro = fetch ? x.microI : c.micro;
  if (micro == 0 || c.checker != 0 || c.levels < 4) return;
  let t = tlbOf(c, fetch ? T_I4K : T_D4K);
  let tag = va >> 12;
  let e = c.l1Entry; // the entry this translation used or filled, if it is still that one
  if (!isEntryFor(t, e, tag, c.pcid << A_PCID_SHIFT, c.ctx)) e = probe(t, tag, A_V, c.pcid << A_PCID_SHIFT, c.ctx);
  if (e == 0) return;
  let frame = load<u64>(e, 8);
  if (!physInRange(frame, 4096)) return;
  let a = load<u32>(e, 32);
  let pkey = (a >> A_PKEY_SHIFT) & 15;
  let base = c.cpl == 3 ? ACC_USER : 0;
  let s = microSlot(micro, tag);
  if (fetch) {
    let ok = rightsFault(c, base | ACC_FETCH, a, pkey) == 0 && (a & A_EPT_NOX) == 0;
    store<u64>(s, ok ? tag : ~(<u64>0));
    store<u64>(s, ~(<u64>0), 8);
  } else {
    store<u64>(s, rightsFault(c, base, a, pkey) == 0 ? tag : ~(<u64>0));
    let w = rightsFault(c, base | ACC_WRITE, a, pkey) == 0 && (a & A_D) != 0 && !isCodeFrame(frame);
    store<u64>(s, w ? tag : ~(<u64>0), 8);
  }
  store<u32>(s, <u32>physPtr(frame), 16);
  store<u32>(s, <u32>e, 20);
  store<u32>(s, <u32>physPtr(frame) - (<u32>tag << 12), 24);
}

// Translates one page's part of an access; returns the physical address, or stops.
function xlate(c: Cpu, x: X86, va: u64, acc: u32, len: u32): u64 {
  let st = translate(c, va, acc & ~ACC_STACK);
  if (st != XLATE_OK) {
    // Nested paging: a final access outside the VM is the MMIO the host answered.
    if (st == XLATE_EPT_VIOLATION && (c.exitQual & (1 << 8)) != 0) {
      if (x.mmioReady != 0 && c.exitGpa == x.mmioPa) { x.mmioHit = 1; return 0; }
      x.mmioPa = c.exitGpa;
    }
    xlateFailed(c, x, st, va, acc);
    return 0;
  }
  let pa = c.resPa;
  if (!physInRange(pa, <u64>len)) {
    if (x.mmioReady != 0 && pa == x.mmioPa) { x.mmioHit = 1; return 0; }
    x.mmioPa = pa;
    c.exitAddr = pa;
    x.exitWrite = (acc & ACC_WRITE) != 0 ? 1 : 0;
    bump(c.counters, C_MMIO);
    exitTo(c, x, XEXIT_MMIO);
    return 0;
  }
  if (c.resSize == 4096 && (acc & ACC_IMPLICIT) == 0 && (acc & ACC_USER) == (c.cpl == 3 ? ACC_USER : 0)) {
    microFill(c, x, va, acc);
  }
  return pa;
}

// Loads `size` (1, 2, 4, 8) bytes at va.
@inline export function rd(c: Cpu, x: X86, va: u64, size: u32, acc: u32): u64 {
  let vpn = va >> 12;
  let s = microSlot(c.micro, vpn);
  if (c.micro != 0 && load<u64>(s) == vpn && (va & 0xFFF) <= 4096 - <u64>size && (acc & ACC_IMPLICIT) == 0) {
    x.nLoads++;
    x.nHits++;
    store<u32>(<usize>load<u32>(s, 20), ++c.clock, 36);
    return loadN(<usize>load<u32>(s, 16) + <usize>(va & 0xFFF), size);
  }
  return rdSlow(c, x, va, size, acc);
}

// #AC(0): a misaligned explicit data access at CPL 3 with CR0.AM and RFLAGS.AC (the fast
// path is off meanwhile, see refresh in cpu.ts). A non-canonical address takes #GP/#SS
// first; #AC comes before #PF (as measured on hardware).
@inline function misaligned(c: Cpu, x: X86, va: u64, size: u32, acc: u32): bool {
  if ((va & <u64>(size - 1)) == 0 || c.ac == 0 || c.cpl != 3 || (c.cr0 & CR0_AM) == 0 || (acc & ACC_IMPLICIT) != 0) return false;
  if (!canonical(c, va)) return false;
  raise(x, V_AC, true, 0);
  return true;
}

// An access crossing into a non-canonical page is #GP (#SS for the stack) before any #PF
// on its first page: the processor checks the whole access's address first.
function tailNonCanonical(c: Cpu, x: X86, va: u64, acc: u32): bool {
  if (canonical(c, (va | 0xFFF) + 1)) return false;
  xlateFailed(c, x, XLATE_GP, va, acc);
  return true;
}

export function rdSlow(c: Cpu, x: X86, va: u64, size: u32, acc: u32): u64 {
  if (misaligned(c, x, va, size, acc)) return 0;
  x.exitSize = size;
  let off = <u32>(va & 0xFFF);
  if (off + size <= 4096) {
    let pa = xlate(c, x, va, acc, size);
    if (x.stop != STOP_NONE) return 0;
    x.nLoads++;
    if (x.mmioHit != 0) { x.mmioHit = 0; x.mmioReady = 0; return x.mmioData & maskOf(size); }
    return loadN(physPtr(pa), size);
  }
  bump(c.counters, C_SPLIT);
  if (tailNonCanonical(c, x, va, acc)) return 0;
  let n1: u32 = 4096 - off;
  let pa1 = xlate(c, x, va, acc, n1);
  if (x.stop != STOP_NONE) return 0;
  let pa2 = xlate(c, x, (va | 0xFFF) + 1, acc, size - n1);
  if (x.stop != STOP_NONE) return 0;
  let v: u64 = 0;
  for (let b: u32 = 0; b < size; b++) {
    let q = b < n1 ? physPtr(pa1) + b : physPtr(pa2) + (b - n1);
    v |= <u64>load<u8>(q) << (8 * <u64>b);
  }
  x.nLoads++;
  return v;
}

// Stores `size` (1, 2, 4, 8) bytes at va.
@inline export function wr(c: Cpu, x: X86, va: u64, size: u32, v: u64, acc: u32): void {
  let vpn = va >> 12;
  let s = microSlot(c.micro, vpn);
  if (c.micro != 0 && load<u64>(s, 8) == vpn && (va & 0xFFF) <= 4096 - <u64>size && (acc & ACC_IMPLICIT) == 0) {
    x.nStores++;
    x.nHits++;
    store<u32>(<usize>load<u32>(s, 20), ++c.clock, 36);
    storeN(<usize>load<u32>(s, 16) + <usize>(va & 0xFFF), v, size);
    return;
  }
  wrSlow(c, x, va, size, v, acc);
}

export function wrSlow(c: Cpu, x: X86, va: u64, size: u32, v: u64, acc: u32): void {
  if (misaligned(c, x, va, size, acc)) return;
  acc |= ACC_WRITE;
  x.exitSize = size;
  x.exitValue = v;
  let off = <u32>(va & 0xFFF);
  if (off + size <= 4096) {
    let pa = xlate(c, x, va, acc, size);
    if (x.stop != STOP_NONE) return;
    x.nStores++;
    if (x.mmioHit != 0) { x.mmioHit = 0; x.mmioReady = 0; return; } // the host performed it
    codeWrite(pa, <u64>size);
    storeN(physPtr(pa), v, size);
    return;
  }
  bump(c.counters, C_SPLIT);
  if (tailNonCanonical(c, x, va, acc)) return;
  let n1: u32 = 4096 - off;
  let pa1 = xlate(c, x, va, acc, n1);
  if (x.stop != STOP_NONE) return;
  let pa2 = xlate(c, x, (va | 0xFFF) + 1, acc, size - n1);
  if (x.stop != STOP_NONE) return;
  codeWrite(pa1, <u64>n1);
  codeWrite(pa2, <u64>(size - n1));
  for (let b: u32 = 0; b < size; b++) {
    let q = b < n1 ? physPtr(pa1) + b : physPtr(pa2) + (b - n1);
    store<u8>(q, <u8>(v >> (8 * <u64>b)));
  }
  x.nStores++;
}

// Checks that [va, va+len) can be written (translating each page for write) so that an
// instruction with several stores commits all or none of them.
export function probeWrite(c: Cpu, x: X86, va: u64, len: u32, acc: u32): bool {
  let end = va + <u64>len - 1;
  let s = microSlot(c.micro, va >> 12);
  if (c.micro != 0 && (va >> 12) == (end >> 12) && load<u64>(s, 8) == (va >> 12) && (acc & ACC_IMPLICIT) == 0) return true;
  if ((end >> 12) != (va >> 12) && tailNonCanonical(c, x, va, acc)) return false;
  xlate(c, x, va, acc | ACC_WRITE, 1);
  if (x.stop != STOP_NONE) return false;
  if ((end >> 12) != (va >> 12)) {
    xlate(c, x, end & ~(<u64>0xFFF), acc | ACC_WRITE, 1);
    if (x.stop != STOP_NONE) return false;
  }
  return true;
}

// Checks that [va, va+len) can be read.
export function probeRead(c: Cpu, x: X86, va: u64, len: u32, acc: u32): bool {
  if (((va + <u64>len - 1) >> 12) != (va >> 12) && tailNonCanonical(c, x, va, acc)) return false;
  xlate(c, x, va, acc, 1);
  if (x.stop != STOP_NONE) return false;
  let end = va + <u64>len - 1;
  if ((end >> 12) != (va >> 12)) {
    xlate(c, x, end & ~(<u64>0xFFF), acc, 1);
    if (x.stop != STOP_NONE) return false;
  }
  return true;
}

// ---- instruction fetch ----

// Opens the fetch window on the page holding va. Returns false (stopped) on a fault.
export function fetchPage(c: Cpu, x: X86, va: u64): bool {
  let vpn = va >> 12;
  let micro = x.microI;
  if (micro != 0) {
    let s = microSlot(micro, vpn);
    if (load<u64>(s) == vpn) {
      store<u32>(<usize>load<u32>(s, 20), ++c.clock, 36);
      x.fVpn = vpn;
      x.fHost = <usize>load<u32>(s, 16);
      x.fSlot = s;
      return true;
    }
  }
  let acc = ACC_FETCH | (c.cpl == 3 ? ACC_USER : 0);
  let pa = xlate(c, x, va, acc, 1);
  if (x.stop != STOP_NONE) return false;
  // The whole page must be in memory to serve later bytes from it.
  if (!physInRange(pa & ~(<u64>0xFFF), 4096)) {
    c.exitAddr = pa;
    exitTo(c, x, XEXIT_MMIO);
    return false;
  }
  x.fVpn = vpn;
  x.fHost = physPtr(pa & ~(<u64>0xFFF));
  x.fSlot = 0;
  x.nFetchSlow++; // translate() counted its TLB events
  return true;
}

// Byte `off` of the instruction at x.rip (0 and stopped on a fault).
@inline export function fetchByte(c: Cpu, x: X86, off: u32): u32 {
  let va = x.rip + <u64>off;
  if ((va >> 12) != x.fVpn) {
    if (!fetchPage(c, x, va)) return 0;
  }
  return <u32>load<u8>(x.fHost + <usize>(va & 0xFFF));
}
