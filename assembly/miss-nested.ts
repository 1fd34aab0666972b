// The batch engine's miss path for nested paging without TLBs (every translation is a
// 2D walk): consecutive loads, stores and translates run here in one loop, each with the
// quick 2D walk (nested.ts walkNestedQuick), instead of one general-path step each
// (access.ts step → translate → walk). The access counters stay in locals until the
// loop ends.
//
// It does what the general path does for such an op — clock, walk (which gives exactly
// walkNested's results: nested-quick.ts), exits, the access itself and its counters —
// and leaves to the general path any op it does not handle (fetches, user/implicit
// ops, page-crossing or non-canonical accesses, the non-memory kinds). A walk that
// exits (guest #PF, EPT violation or misconfiguration) or an access outside memory ends
// the batch here with the exit set, as step would.
// Checked against the general path by test/core/nested/fastpath2d.property.test.ts.

import { ACC_USER, ACC_WRITE, EXIT_MMIO, EXIT_PF, EXIT_GP, EXIT_EPT_VIOLATION, EXIT_EPT_MISCONFIG,
  EXIT_UNSUPPORTED, XLATE_OK, XLATE_PF, XLATE_GP, XLATE_EPT_VIOLATION, XLATE_EPT_MISCONFIG } from "./entry";
import { physInRange, physPtr } from "./mem";
import { Cpu, canonical } from "./cpu";
import { walkNestedQuick } from "./nested";
import { codeWrite } from "./x86/icache";
import { bump, C_ACCESSES, C_LOADS, C_STORES, C_MMIO } from "./counters";
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
// (nested), levels (4/5), checker (off), fast paths (on) and that no TLB is configured.
export function missRunNested(c: Cpu, ops: usize, i: u32, count: u32): u32 {
  let user = c.cpl == 3 ? ACC_USER : 0;
  let loads: u64 = 0, stores: u64 = 0;
  for (; i < count; i++) {
    let p = ops + <usize>i * OP_BYTES;
    let va = load<u64>(p);
    let ctl = load<u32>(p, 16);
    let kind = ctl & 15, size = (ctl >> 4) & 15;
    if ((ctl & (CTL_USER | CTL_IMPLICIT)) != 0 || (kind != K_LOAD && kind != K_STORE && kind != K_TRANSLATE)) break;
    if ((va & 0xFFF) + <u64>size > 4096 || !canonical(c, va)) break;
    c.clock++;
    let st = walkNestedQuick(c, va, (kind == K_STORE ? ACC_WRITE : 0) | user);
    if (st != XLATE_OK) { c.exitReason = exitOf(st); c.exitIndex = i; break; }
    let pa = c.resPa;
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
  if (loads + stores != 0) {
    let cnt = c.counters;
    bump(cnt, C_ACCESSES, loads + stores);
    bump(cnt, C_LOADS, loads);
    bump(cnt, C_STORES, stores);
  }
  return i;
}
