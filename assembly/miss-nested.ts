// The batch engine's miss path for nested paging: consecutive loads, stores and
// translates that miss the L1 TLBs (or run without TLBs) run here in one loop — an L2
// hit taken as miss.ts takes it, any other op a 2D walk inline (nested.ts walk2D and
// commitNested, each EPT translation by nested-quick.ts quickEpt) — instead of one
// general-path step each (access.ts step → translate → lookup → walkNested →
// eptTranslate → eptWalk); the walk and access counters stay in locals until the loop
// ends.
//
// It does what the general path does for such an op — clock, probes and LRU stamps,
// walk path, A/D checks, fills, exits, the access itself and its counters — and leaves
// to the general path any op it does not handle (fetches, user/implicit ops,
// page-crossing or non-canonical accesses, the non-memory kinds, L1 TLB hits, large
// pages cached in a TLB, L2 hits that fault or need D set). A walk that exits
// (guest #PF, EPT violation or misconfiguration) or an access outside memory ends the
// batch here with the exit set, as step would. An EPT translation quickEpt cannot do
// goes to the careful eptTranslate, whose results (packCareful) the walk goes on with.
// Checked against the general path by test/core/nested/fastpath2d.property.test.ts.

import { ACC_USER, ACC_WRITE, EXIT_MMIO, EXIT_PF, EXIT_GP, EXIT_EPT_VIOLATION, EXIT_EPT_MISCONFIG,
  EXIT_UNSUPPORTED, XLATE_OK, XLATE_PF, XLATE_GP, XLATE_EPT_VIOLATION, XLATE_EPT_MISCONFIG } from "./entry";
import { PTE_A, PTE_D, PF_P, PKEY_SHIFT, levelShift } from "./entry";
import { physInRange, physPtr, readPhys64 } from "./mem";
import { Cpu, canonical } from "./cpu";
import { walkPath } from "./path";
import { A_W, A_U, A_RIGHTS, A_PKEY_SHIFT, A_PCID_SHIFT, A_D, A_EPT_NOX, entryAt } from "./tlb";
import { eptTranslate, EPT_OK, EPT_A, EA_READ, EA_WRITE, EA_FETCH } from "./ept";
import { exitFromEpt, guestFault, adWritesAllowed, fillGuestPscs } from "./nested";
import { quickEptIn, eptUpper, eptMid, quickPscLookupIn, packCareful, Q_NONE, qRefs, qHpa, qPage, qRights, qSize, qD } from "./nested-quick";
import { carefulStep, STEP_FAULT, STEP_LEAF, STEP_VALUE, rightsFault, accIndex, setFlag, fillTlbs, fillTlbs4k } from "./walk";
import { tlbWhere, takeL2Hit, HELD } from "./miss";
import { codeWrite } from "./x86/icache";
import { bump, C_ACCESSES, C_LOADS, C_STORES, C_MMIO, C_WALKS, C_WALK_REFS, C_GUEST_REFS, C_PSC_MISS,
  C_PSC_HIT_PDE, C_WALK_4K, C_WALK_2M, C_WALK_1G, C_NTLB_HIT, C_NTLB_MISS, C_EPT_WALKS, C_EPT_REFS,
  C_EPT_PSC_HIT, C_L1_MISS, C_L2_HIT_4K, C_L2_MISS } from "./counters";
import { OP_BYTES, K_LOAD, K_STORE, K_TRANSLATE, CTL_USER, CTL_IMPLICIT, loadN, storeN } from "./access";

@inline function exitOf(st: u32): u32 {
  if (st == XLATE_PF) return EXIT_PF;
  if (st == XLATE_GP) return EXIT_GP;
  if (st == XLATE_EPT_VIOLATION) return EXIT_EPT_VIOLATION;
  if (st == XLATE_EPT_MISCONFIG) return EXIT_EPT_MISCONFIG;
  return EXIT_UNSUPPORTED;
}

// Runs ops from i; returns the index of the first op it does not complete. If that op
// exited, c.exitReason is set (the caller ends the batch). Callers check the mode
// (nested), levels (4/5), checker (off) and fast paths (on).
// Three configurations have a copy of the loop with the configuration as constants, which
// the JIT compiles to fewer instructions per op: 4-level guest and EPT tables, EPT A/D on,
// no protection keys, and every cache on (the default), or every cache but the TLBs on,
// or every cache off (the last two are what the 2D walk figures measure). Any other
// configuration takes the general copy.
export function missRunNested(c: Cpu, ops: usize, i: u32, count: u32): u32 {
  if (c.levels == 4 && c.eptLevels == 4 && c.eptAD != 0 && c.pke == 0) {
    let caches = c.ntlbOn + c.pscOn + c.epscOn;
    if (c.tlbOn != 0) { if (caches == 3) return nestedDefault(c, ops, i, count); }
    else if (caches == 3) return nestedCached(c, ops, i, count);
    else if (caches == 0) return nestedUncached(c, ops, i, count);
  }
  return nestedLoop(c, ops, i, count, c.levels, c.eptLevels, c.tlbOn != 0, c.ntlbOn != 0, c.pscOn != 0,
    c.epscOn != 0, c.eptAD != 0, c.pke != 0);
}

function nestedDefault(c: Cpu, ops: usize, i: u32, count: u32): u32 {
  return nestedLoop(c, ops, i, count, 4, 4, true, true, true, true, true, false);
}

function nestedCached(c: Cpu, ops: usize, i: u32, count: u32): u32 {
  return nestedLoop(c, ops, i, count, 4, 4, false, true, true, true, true, false);
}

function nestedUncached(c: Cpu, ops: usize, i: u32, count: u32): u32 {
  return nestedLoop(c, ops, i, count, 4, 4, false, false, false, false, true, false);
}

// The loop. levels, eptLevels: of the guest and EPT tables; tlbOn, ntlb, pscOn, epscOn:
// the TLBs, nested TLB, guest PSCs and EPT PSCs hold entries (Cpu.tlbOn ...); ad: EPT A/D
// on; pke: protection keys on.
@inline function nestedLoop(c: Cpu, ops: usize, i: u32, count: u32, levels: u32, eptLevels: u32,
                            tlbOn: bool, ntlb: bool, pscOn: bool, epscOn: bool, ad: bool, pke: bool): u32 {
  let user = c.cpl == 3 ? ACC_USER : 0;
  let addrMask = c.addrMask, ntlbOn: u64 = ntlb ? 1 : 0;
  let pagingAcc = ad ? EA_READ | EA_WRITE : EA_READ; // see nested.ts walk2D
  let path = walkPath(c.path);
  // walk.ts rightsFault's permission bytes for this loop's data reads and writes (cpu.ts
  // permByte: bit r set when rights r forbid it); protection keys take rightsFault itself.
  let high = c.eptRsvd, must: u64 = ad ? EPT_A : 0, upper = eptUpper(high, must), mid = eptMid(high, must);
  let permRead = permBits(c, user), permWrite = permBits(c, user | ACC_WRITE);
  let loads: u64 = 0, stores: u64 = 0;
  // the walk counters (nested.ts, ept.ts), bumped when the loop ends
  // (the quick EPT walks' nested-TLB misses are eptWalks with the nested TLB on; their refs
  // and the guest refs make the walk refs)
  let walks: u64 = 0, guestRefs: u64 = 0, pscMisses: u64 = 0, pdeHits: u64 = 0;
  let walks4k: u64 = 0, walks2m: u64 = 0, walks1g: u64 = 0;
  let ntlbHits: u64 = 0, eptWalks: u64 = 0, eptRefs: u64 = 0, eptPscHits: u64 = 0;
  let l1Misses: u64 = 0, l2Hits: u64 = 0; // with TLBs: ops that missed the L1 TLBs, and hit the L2
  let pcidBits = c.pcid << A_PCID_SHIFT, ctx = c.ctx;
  for (; i < count; i++) {
    let p = ops + <usize>i * OP_BYTES;
    let va = load<u64>(p);
    let ctl = load<u32>(p, 16);
    let kind = ctl & 15, size = (ctl >> 4) & 15;
    // loads, stores and translates (kinds 0, 1, 3) without USER or IMPLICIT
    if ((ctl & (CTL_USER | CTL_IMPLICIT)) != 0 || ((0b1011 >> kind) & 1) == 0) break;
    if ((va & 0xFFF) + <u64>size > 4096 || !canonical(c, va)) break;
    let acc = (kind == K_STORE ? ACC_WRITE : 0) | user;
    // With TLBs: lookup's probes (walk.ts). An L1 hit or a large page leaves the op to the
    // general path, as does an L2 hit it cannot use (a fault, a write to a clean entry).
    let e: usize = 0;
    if (tlbOn) {
      e = tlbWhere(c, va, pcidBits, ctx);
      if (e == HELD) break;
      if (e != 0) {
        let a = entryAt(e).attr;
        if (rightsFault(c, acc, a, (a >> A_PKEY_SHIFT) & 15) != 0 || (kind == K_STORE && (a & A_D) == 0) ||
            (kind != K_TRANSLATE && !physInRange(entryAt(e).frame | (va & 0xFFF), <u64>size))) break;
      }
      l1Misses++;
    }
    c.clock++;
    let pa: u64, resSize: u64 = 4096;
    if (e != 0) { // an L2 hit (walk.ts lookup and useEntry)
      takeL2Hit(c, e, va, acc, c.clock, permRead, permWrite);
      l2Hits++;
      pa = entryAt(e).frame | (va & 0xFFF);
    } else {
      // The 2D walk: nested.ts walk2D and commitNested, the EPT translations by quickEpt.
      let level = levels;
      let gtable = c.cr3 & addrMask, htable: u64 = 0;
      let rights: u32 = A_W | A_U;
      let pscLevel = quickPscLookupIn(c, va, pscOn, levels);
      let known = false;
      if (pscLevel != 0) {
        htable = c.resPa; gtable = c.pscGpa; rights = c.pscRights; level = pscLevel - 1; known = true;
      }
      let top = level, rights0 = rights;
      let noWrite: u32 = 0, pte: u64 = 0, refs: u64 = 0, st: u32 = XLATE_OK;
      while (true) {
        let offset = ((va >> levelShift(level)) & 511) << 3;
        if (!known) {
          let gpa = gtable | offset;
          let r = quickEptIn(c, gpa, pagingAcc, high, must, upper, mid, ntlb, epscOn, eptLevels, ad);
          if (r == Q_NONE) {
            let s2 = eptTranslate(c, gpa, pagingAcc, false, va);
            if (s2 != EPT_OK) { st = exitFromEpt(c, va, s2, refs, pscLevel); break; }
            r = packCareful(c);
          }
          let hit = (r >> 6) & 1, walked = (r >> 11) & 1, n = qRefs(r);
          ntlbHits += hit; eptWalks += walked; eptPscHits += (r >> 10) & 1; eptRefs += n;
          htable = qPage(r);
          if ((qRights(r) & EA_WRITE) == 0) noWrite |= 1 << level;
        }
        known = false;
        let epa = htable | offset;
        pte = readPhys64(epa);
        refs++;
        let s = carefulStep(c, path, level, pte, epa, rights);
        if ((s & STEP_FAULT) != 0) { st = guestFault(c, va, acc, s & STEP_VALUE, refs, pscLevel); break; }
        rights = s & STEP_VALUE;
        if ((s & STEP_LEAF) != 0) break;
        gtable = pte & addrMask;
        level--;
      }
      if (st != XLATE_OK) { c.exitReason = exitOf(st); c.exitIndex = i; break; }
      // rightsFault (walk.ts) with the permission byte of the op's access looked up once
      let f = pke ? rightsFault(c, acc, rights, <u32>(pte >> PKEY_SHIFT) & 15)
        : (((kind == K_STORE ? permWrite : permRead) >> ((rights & A_RIGHTS) >> 1)) & 1) != 0 ? PF_P : 0;
      if (f != 0) { c.exitReason = exitOf(guestFault(c, va, acc, f, refs, pscLevel)); c.exitIndex = i; break; }
      // The final gpa through the EPT, with the access's own kind.
      let gsize = level - 1;
      let pageMask = (<u64>1 << (12 + 9 * <u64>gsize)) - 1;
      let gpa = (pte & addrMask & ~pageMask) | (va & pageMask);
      let need = kind == K_STORE ? EA_WRITE : EA_READ;
      let r = quickEptIn(c, gpa, need, high, must, upper, mid, ntlb, epscOn, eptLevels, ad);
      if (r == Q_NONE) {
        let s2 = eptTranslate(c, gpa, need, true, va);
        if (s2 != EPT_OK) { c.exitReason = exitOf(exitFromEpt(c, va, s2, refs, pscLevel)); c.exitIndex = i; break; }
        r = packCareful(c);
      }
      let hit = (r >> 6) & 1, walked = (r >> 11) & 1, n = qRefs(r);
      ntlbHits += hit; eptWalks += walked; eptPscHits += (r >> 10) & 1; eptRefs += n;
      // The commit (nested.ts commitNested).
      let leafBits = PTE_A | (kind == K_STORE ? PTE_D : 0);
      if (!ad) {
        let s2 = adWritesAllowed(c, va, top, level, pscLevel, noWrite, leafBits, refs);
        if (s2 != EPT_OK) { c.exitReason = exitOf(s2); c.exitIndex = i; break; }
      }
      for (let l = top; l > level; l--) setFlag(c, path.entryPa(l), PTE_A);
      setFlag(c, path.entryPa(level), leafBits);
      walks++;
      guestRefs += refs;
      if (pscLevel == 2) pdeHits++; else if (pscLevel != 0) bump(c.counters, C_PSC_HIT_PDE + <i32>pscLevel - 2); else pscMisses++;
      if (pscOn && top > level) fillGuestPscs(c, va, top, level, rights0);
      // The combined page is the smaller of the guest and EPT pages.
      let csize = min(gsize, qSize(r));
      let cmask = (<u64>1 << (12 + 9 * <u64>csize)) - 1;
      if (csize == 0) walks4k++; else if (csize == 1) walks2m++; else walks1g++;
      let hpa = qHpa(r, gpa);
      pa = (qRights(r) & EA_READ) == 0 ? hpa : (hpa & ~cmask) | (va & cmask);
      resSize = cmask + 1;
      if (tlbOn && (qRights(r) & EA_READ) != 0) {
        // commitNested's TLB fills: D cached only if the EPT allows the write too;
        // fetches must re-walk when the EPT forbids execution.
        let leafVal = pte | leafBits;
        let cacheVal = (qRights(r) & EA_WRITE) != 0 && qD(r) != 0 ? leafVal : leafVal & ~PTE_D;
        let extra = (qRights(r) & EA_FETCH) == 0 ? A_EPT_NOX : 0;
        if (csize == 0) fillTlbs4k(c, va, hpa & ~cmask, path.entryPa(level), cacheVal, rights | extra);
        else fillTlbs(c, va, acc, csize, hpa & ~cmask, path.entryPa(level), cacheVal, rights, extra);
      }
    }
    c.resPa = pa;
    c.resSize = resSize;

    if (kind == K_TRANSLATE) { store<u64>(p, pa, 8); continue; }
    if (!physInRange(pa, <u64>size)) {
      c.exitAddr = pa;
      bump(c.counters, C_MMIO);
      c.exitReason = EXIT_MMIO;
      c.exitIndex = i;
      break;
    }
    let q = physPtr(pa);
    if (kind == K_STORE) {
      codeWrite(pa, <u64>size);
      storeN(q, load<u64>(p, 8), size);
      stores++;
    } else {
      store<u64>(p, loadN(q, size), 8);
      loads++;
    }
  }
  let cnt = c.counters;
  if (l1Misses != 0) {
    bump(cnt, C_L1_MISS, l1Misses);
    bump(cnt, C_L2_HIT_4K, l2Hits);
    bump(cnt, C_L2_MISS, l1Misses - l2Hits);
  }
  if (loads + stores != 0) {
    bump(cnt, C_ACCESSES, loads + stores);
    bump(cnt, C_LOADS, loads);
    bump(cnt, C_STORES, stores);
  }
  bump(cnt, C_WALKS, walks);
  bump(cnt, C_WALK_REFS, eptRefs + guestRefs);
  bump(cnt, C_GUEST_REFS, guestRefs);
  bump(cnt, C_PSC_MISS, pscMisses);
  bump(cnt, C_PSC_HIT_PDE, pdeHits);
  bump(cnt, C_WALK_4K, walks4k);
  bump(cnt, C_WALK_2M, walks2m);
  bump(cnt, C_WALK_1G, walks1g);
  bump(cnt, C_NTLB_HIT, ntlbHits);
  bump(cnt, C_NTLB_MISS, eptWalks * ntlbOn);
  bump(cnt, C_EPT_WALKS, eptWalks);
  bump(cnt, C_EPT_REFS, eptRefs);
  bump(cnt, C_EPT_PSC_HIT, eptPscHits);
  return i;
}

// The byte of cpu.ts's permission table for access acc (bit r: rights r forbid it).
@inline function permBits(c: Cpu, acc: u32): u32 {
  let a = accIndex(c, acc);
  return <u32>((a < 8 ? c.perm >> (<u64>a * 8) : c.perm2 >> (<u64>(a - 8) * 8)) & 0xFF);
}

