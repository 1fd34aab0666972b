// The fixed virtual layout shared by the native helper and the interpreter side of the
// differential test: both map the same pages at the same addresses, so a snippet's bytes,
// its RIP-relative displacements and every pointer it computes mean the same thing.
//
//   0x1000_0000  two code pages (RWX natively; user, executable in the interpreter)
//                snippet | 0F 0B (ud2, the end marker) | CC CC … (int3 to the end); an
//                instruction may straddle the two pages, or run off the end of the second
//   0x2000_0000  scratch, two pages (memory operands, string ops; an access may straddle)
//   0x2000_2000  private stack page, RSP starts at 0x2000_2800
//   0x2000_3000  nothing mapped: the deliberate #PF target
//   GS base      0x1234_5000 (FS keeps the host's TLS base natively, so FS is used only
//                as a prefix on instructions without a memory operand)

export const CODE_BASE = 0x1000_0000;
export const CODE_SIZE = 0x2000;
export const DATA_BASE = 0x2000_0000;
export const SCRATCH_SIZE = 0x2000;
export const STACK_BASE = DATA_BASE + SCRATCH_SIZE;
export const STACK_SIZE = 0x1000;
export const DATA_SIZE = SCRATCH_SIZE + STACK_SIZE;
export const RSP0 = STACK_BASE + 0x800;
export const UNMAPPED = DATA_BASE + DATA_SIZE;
export const GS_BASE = 0x1234_5000;

/** The end marker the helper and the interpreter both put right after a snippet. */
export const END_MARKER = [0x0f, 0x0b];
/** Filler for the rest of the code page. */
export const CODE_FILL = 0xcc;

/** The code page image for a snippet, as both sides build it. */
export function codeImage(code: Uint8Array): Uint8Array {
  const page = new Uint8Array(CODE_SIZE).fill(CODE_FILL);
  page.set(code);
  if (code.length + END_MARKER.length <= CODE_SIZE) page.set(END_MARKER, code.length); // a full page runs off its end
  return page;
}

// RFLAGS bits.
export const CF = 1 << 0, PF = 1 << 2, AF = 1 << 4, ZF = 1 << 6, SF = 1 << 7;
export const TF = 1 << 8, IF = 1 << 9, DF = 1 << 10, OF = 1 << 11;
/** The six arithmetic flags. */
export const ARITH = CF | PF | AF | ZF | SF | OF;
/** The flags a case starts with at random; the rest of RFLAGS is fixed (bit 1, IF). */
export const RANDOM_FLAGS = ARITH | DF;
export const FIXED_FLAGS = 0x2 | IF;

export const GPR_NAMES = ['rax', 'rcx', 'rdx', 'rbx', 'rsp', 'rbp', 'rsi', 'rdi',
  'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15'] as const;
export const RCX_N = 1, RSP = 4, RBP = 5;
