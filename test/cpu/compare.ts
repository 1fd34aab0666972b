// Comparing where two runs of the same case ended: the host CPU (through the native
// helper) and the interpreter. What is compared:
//   - how the case stopped: at the end marker, or with a fault of which vector;
//   - RIP and all 16 GPRs, exactly;
//   - RFLAGS: DF and the arithmetic flags the SDM defines at the stopping point (the
//     generator tracks which flags each instruction leaves undefined; see gen.ts), and
//     IF, IOPL, NT, AC, ID. Not compared: RF (the host sets it in a fault frame), TF and
//     VM (never set), the reserved bits;
//   - the whole data region (scratch and stack), byte by byte;
//   - for #PF: CR2 and the error code's P/W/U/RSVD/I bits (P not on kernel-half addresses,
//     which Linux always reports as present); for #GP/#SS: the error code.

import { ARITH, RANDOM_FLAGS, GPR_NAMES, DATA_SIZE } from './layout.js';
import type { NativeResult } from './native/runner.js';

/** IF, IOPL, NT, AC, ID: a snippet's POPF may try to change them (CPL 3 rules decide). */
const SYSTEM_FLAGS = 0x200 | 0x3000 | 0x4000 | 0x40000 | 0x200000;

export interface Outcome {
  status: 'end' | 'fault' | 'crash' | 'exit';
  /** Fault vector, or for 'exit' a description in `detail`. */
  vector: number;
  errorCode: bigint;
  cr2: bigint;
  gpr: bigint[];
  rip: bigint;
  rflags: bigint;
  data: Uint8Array;
  detail?: string;
}

export function fromNative(r: NativeResult, image: Uint8Array): Outcome {
  const data = Uint8Array.from(image);
  for (const [off, v] of r.diff) data[off] = v;
  return { status: r.status, vector: r.vector, errorCode: r.errorCode, cr2: r.cr2, gpr: r.gpr, rip: r.rip, rflags: r.rflags, data, detail: r.status === 'crash' ? `child killed by signal ${r.vector}` : undefined };
}

const hex = (v: bigint) => '0x' + v.toString(16);
const how = (o: Outcome) => (o.status === 'fault' ? `fault #${o.vector}` : o.status === 'end' ? 'end' : `${o.status} ${o.detail ?? ''}`);

/** Differences between the host (`hw`) and the interpreter (`em`), given the flags undefined where hw stopped. */
export function differences(hw: Outcome, em: Outcome, undefinedFlags: number): string[] {
  const d: string[] = [];
  if (hw.status !== em.status || (hw.status === 'fault' && hw.vector !== em.vector)) d.push(`stop: hw ${how(hw)}, interp ${how(em)}`);
  if (hw.rip !== em.rip) d.push(`rip: hw ${hex(hw.rip)}, interp ${hex(em.rip)}`);
  for (let i = 0; i < 16; i++) if (hw.gpr[i] !== em.gpr[i]) d.push(`${GPR_NAMES[i]}: hw ${hex(hw.gpr[i])}, interp ${hex(em.gpr[i])}`);
  const mask = BigInt((RANDOM_FLAGS & ~(undefinedFlags & ARITH)) | SYSTEM_FLAGS);
  if ((hw.rflags ^ em.rflags) & mask) d.push(`rflags (mask ${hex(mask)}): hw ${hex(hw.rflags & mask)}, interp ${hex(em.rflags & mask)}`);
  const bytes: number[] = [];
  for (let i = 0; i < DATA_SIZE; i++) if (hw.data[i] !== em.data[i]) bytes.push(i);
  if (bytes.length) d.push(`memory: ${bytes.length} bytes differ, first at data+${hex(BigInt(bytes[0]))} (hw ${hw.data[bytes[0]]}, interp ${em.data[bytes[0]]})`);
  if (hw.status === 'fault' && em.status === 'fault' && hw.vector === em.vector) {
    if (hw.vector === 14 && hw.cr2 !== em.cr2) d.push(`cr2: hw ${hex(hw.cr2)}, interp ${hex(em.cr2)}`);
    // Linux reports every user #PF on a kernel-half address as a protection fault (P=1),
    // whatever the page tables say, so as not to reveal them: P is not compared there.
    const m = hw.vector !== 14 ? 0xffffn : hw.cr2 >= 0x7fff_ffff_f000n ? 0x1en : 0x1fn;
    if ((hw.vector === 14 || hw.vector === 13 || hw.vector === 12) && (hw.errorCode & m) !== (em.errorCode & m)) d.push(`error code: hw ${hex(hw.errorCode)}, interp ${hex(em.errorCode)}`);
  }
  return d;
}

