// x86-64 paging-structure entry formats (SDM Vol. 3A §4.5, tables 4-14..4-19).
//
// Glossary used across assembly/ and src/:
//   va/gva  virtual (linear) address     pa/gpa  (guest-)physical address
//   hpa     host-physical address        gfn/hfn guest/host frame number (addr >> 12)
//   pte     any paging-structure entry   spte    shadow entry (issue 3)
//   level   1 = PT, 2 = PD, 3 = PDPT, 4 = PML4, 5 = PML5
//
// Present entry, every level (M = MAXPHYADDR):
//
//   63  62..59  58..52   51..M    M-1..12        11..9  8   7   6   5   4    3    2   1   0
//  ┌──┬───────┬────────┬────────┬──────────────┬──────┬───┬───┬───┬───┬────┬────┬───┬───┬───┐
//  │XD│ PKEY  │ ignored│reserved│ address      │ign.  │ G │PS │ D │ A │PCD │PWT │U/S│R/W│ P │
//  └──┴───────┴────────┴────────┴──────────────┴──────┴───┴───┴───┴───┴────┴────┴───┴───┴───┘
//   XD is reserved when EFER.NXE=0. PKEY, G and D mean something only in a leaf.
//   PS: must be 0 in PML5E/PML4E (reserved); 1 in a PDPTE = 1 GiB leaf, in a PDE = 2 MiB leaf.
//   In a PTE bit 7 is PAT. In a large leaf bit 12 is PAT and the frame starts at bit 21/30;
//   bits 20:13 (2 MiB) or 29:13 (1 GiB) are reserved.
//   P=0: every other bit is ignored (free for software).

export const PTE_P: u64 = 1 << 0;
export const PTE_W: u64 = 1 << 1;
export const PTE_U: u64 = 1 << 2;
export const PTE_PWT: u64 = 1 << 3;
export const PTE_PCD: u64 = 1 << 4;
export const PTE_A: u64 = 1 << 5;
export const PTE_D: u64 = 1 << 6;
export const PTE_PS: u64 = 1 << 7;
export const PTE_G: u64 = 1 << 8;
export const PTE_XD: u64 = 1 << 63;
export const PKEY_SHIFT: u64 = 59;

export const RSVD_1G: u64 = 0x3FFFE000; // bits 29:13 of a 1 GiB leaf
export const RSVD_2M: u64 = 0x001FE000; // bits 20:13 of a 2 MiB leaf

// Page-fault error code bits (SDM §4.7).
export const PF_P: u32 = 1 << 0;
export const PF_W: u32 = 1 << 1;
export const PF_U: u32 = 1 << 2;
export const PF_RSVD: u32 = 1 << 3;
export const PF_ID: u32 = 1 << 4;
export const PF_PK: u32 = 1 << 5;

// An access descriptor (`acc`) uses the error-code bit positions for W, U and I/D so
// that the error code can be built by masking; IMPLICIT marks an implicit supervisor
// access (descriptor-table and similar references), which SMAP never exempts.
export const ACC_WRITE: u32 = PF_W;
export const ACC_USER: u32 = PF_U;
export const ACC_FETCH: u32 = PF_ID;
export const ACC_IMPLICIT: u32 = 1 << 8;

// Control-register bits.
export const CR0_WP: u64 = 1 << 16;
export const CR0_AM: u64 = 1 << 18;
export const CR0_PG: u64 = 1 << 31;
export const CR3_NOFLUSH: u64 = 1 << 63;
export const CR4_PAE: u64 = 1 << 5;
export const CR4_PGE: u64 = 1 << 7;
export const CR4_LA57: u64 = 1 << 12;
export const CR4_PCIDE: u64 = 1 << 17;
export const CR4_SMEP: u64 = 1 << 20;
export const CR4_SMAP: u64 = 1 << 21;
export const CR4_PKE: u64 = 1 << 22;
export const EFER_LME: u64 = 1 << 8;
export const EFER_LMA: u64 = 1 << 10;
export const EFER_NXE: u64 = 1 << 11;
export const RFLAGS_AC: u64 = 1 << 18;

// Result of a translation or of an access batch.
export const XLATE_OK: u32 = 0;
export const XLATE_PF: u32 = 1;
export const XLATE_GP: u32 = 2;
export const XLATE_UNSUPPORTED: u32 = 3; // legacy 32-bit/PAE paging: not modeled
export const XLATE_EPT_VIOLATION: u32 = 4;
export const XLATE_EPT_MISCONFIG: u32 = 5;
export const EXIT_NONE: u32 = 0;
export const EXIT_PF: u32 = 1;
export const EXIT_GP: u32 = 2;
export const EXIT_UNSUPPORTED: u32 = 3;
export const EXIT_MMIO: u32 = 4; // physical address outside host memory
export const EXIT_EPT_VIOLATION: u32 = 5;
export const EXIT_EPT_MISCONFIG: u32 = 6;
export const EXIT_IO: u32 = 7;
export const EXIT_HLT: u32 = 8;
export const EXIT_CR3: u32 = 9;    // shadow mode: guest MOV to CR3
export const EXIT_INVLPG: u32 = 10; // shadow mode: guest INVLPG

// Shift of the va bits that select an entry at `level` (1..5).
@inline export function levelShift(level: u32): u64 {
  return <u64>(3 + 9 * level);
}
