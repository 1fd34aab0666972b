// Every number the host shares with the core, in one table built from the core's own
// constants: exit reasons, translate results, cache indices, register indices, op kinds,
// op control bits, translation modes and layout sizes. The host reads it once when the
// module loads (src/core/abi.ts) and checks its own tables against it, so a number
// changed on one side only fails at load, not in a wrong result.
//
// Format: "key=value" pairs joined by ",", e.g. "exit.PF=1,cache.l2=5,op.load=0".

import {
  EXIT_PF, EXIT_GP, EXIT_UNSUPPORTED, EXIT_MMIO, EXIT_EPT_VIOLATION, EXIT_EPT_MISCONFIG, EXIT_IO, EXIT_HLT,
  EXIT_CR3, EXIT_INVLPG, XLATE_OK, XLATE_PF, XLATE_GP, XLATE_UNSUPPORTED, XLATE_EPT_VIOLATION, XLATE_EPT_MISCONFIG,
} from "./entry";
import {
  T_I4K, T_I2M, T_D4K, T_D2M, T_D1G, T_L2, T_PDE, T_PDPTE, T_PML4E, T_PML5E, T_NTLB, T_EPDE, NUM_TLBS,
  R_CR0, R_CR3, R_CR4, R_EFER, R_RFLAGS, R_PKRU, R_CPL, MODE_NATIVE, MODE_NESTED, MODE_SHADOW,
} from "./cpu";
import {
  OP_BYTES, K_LOAD, K_STORE, K_FETCH, K_TRANSLATE, K_OUT, K_IN, K_HLT, K_MOVCR3, K_INVLPG, CTL_IMPLICIT, CTL_USER,
} from "./access";
import { NUM_COUNTERS } from "./counters";
import { FILL_DONE, FILL_PENDING } from "./shadow-fill";

function kv(key: string, v: i64): string { return key + "=" + v.toString(); }

function build(): string {
  const p = new Array<string>();
  p.push(kv("exit.PF", EXIT_PF)); p.push(kv("exit.GP", EXIT_GP)); p.push(kv("exit.unsupported", EXIT_UNSUPPORTED));
  p.push(kv("exit.MMIO", EXIT_MMIO)); p.push(kv("exit.EPT_VIOLATION", EXIT_EPT_VIOLATION));
  p.push(kv("exit.EPT_MISCONFIG", EXIT_EPT_MISCONFIG)); p.push(kv("exit.IO", EXIT_IO)); p.push(kv("exit.HLT", EXIT_HLT));
  p.push(kv("exit.CR3", EXIT_CR3)); p.push(kv("exit.INVLPG", EXIT_INVLPG));
  p.push(kv("xlate.ok", XLATE_OK)); p.push(kv("xlate.PF", XLATE_PF)); p.push(kv("xlate.GP", XLATE_GP));
  p.push(kv("xlate.unsupported", XLATE_UNSUPPORTED)); p.push(kv("xlate.EPT_VIOLATION", XLATE_EPT_VIOLATION));
  p.push(kv("xlate.EPT_MISCONFIG", XLATE_EPT_MISCONFIG));
  p.push(kv("cache.l1i4k", T_I4K)); p.push(kv("cache.l1i2m", T_I2M)); p.push(kv("cache.l1d4k", T_D4K));
  p.push(kv("cache.l1d2m", T_D2M)); p.push(kv("cache.l1d1g", T_D1G)); p.push(kv("cache.l2", T_L2));
  p.push(kv("cache.pde", T_PDE)); p.push(kv("cache.pdpte", T_PDPTE)); p.push(kv("cache.pml4e", T_PML4E));
  p.push(kv("cache.pml5e", T_PML5E)); p.push(kv("cache.ntlb", T_NTLB));
  // The EPT paging-structure caches follow T_EPDE by EPT level 2..5.
  p.push(kv("cache.epde", T_EPDE)); p.push(kv("cache.epdpte", T_EPDE + 1));
  p.push(kv("cache.epml4e", T_EPDE + 2)); p.push(kv("cache.epml5e", T_EPDE + 3));
  p.push(kv("reg.cr0", R_CR0)); p.push(kv("reg.cr3", R_CR3)); p.push(kv("reg.cr4", R_CR4)); p.push(kv("reg.efer", R_EFER));
  p.push(kv("reg.rflags", R_RFLAGS)); p.push(kv("reg.pkru", R_PKRU)); p.push(kv("reg.cpl", R_CPL));
  p.push(kv("op.load", K_LOAD)); p.push(kv("op.store", K_STORE)); p.push(kv("op.fetch", K_FETCH));
  p.push(kv("op.translate", K_TRANSLATE)); p.push(kv("op.out", K_OUT)); p.push(kv("op.in", K_IN));
  p.push(kv("op.hlt", K_HLT)); p.push(kv("op.movCr3", K_MOVCR3)); p.push(kv("op.invlpg", K_INVLPG));
  p.push(kv("ctl.implicit", CTL_IMPLICIT)); p.push(kv("ctl.user", CTL_USER));
  p.push(kv("mode.native", MODE_NATIVE)); p.push(kv("mode.nested", MODE_NESTED)); p.push(kv("mode.shadow", MODE_SHADOW));
  p.push(kv("shadowFill.done", FILL_DONE)); p.push(kv("shadowFill.pending", FILL_PENDING));
  p.push(kv("layout.opBytes", <i64>OP_BYTES)); p.push(kv("layout.tlbs", NUM_TLBS)); p.push(kv("layout.counters", NUM_COUNTERS));
  return p.join(",");
}

export const ABI: string = build();
