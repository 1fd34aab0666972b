// The VMware balloon backdoor as the Linux driver really calls it: ONE `inl (%dx)` with
// DX = 0x5670 (vmw_balloon.c `__vmballoon_cmd`; fact sheet §1.1). The CPU's IO exit hands
// the register file to this handler, which calls the balloon device and returns the
// registers to write back before the guest resumes:
//
//   in:  RAX magic 0x456c6d6f   RCX command   RBX arg 1 (64-bit)   RSI arg 2   RDX port
//   out: RAX status (zero-extended, as `in eax` does)   RBX result (the target, 64-bit;
//        only when the command produces one)   RCX capabilities (START only)
//   RDX and RSI are "clobbered" for the driver but left as they were; RDI, RBP, R8–R15 and
//   RSP are never touched.
//
// Anything else reaching the port (an OUT, an IN of size 1 or 2) is a misuse: counted and
// recorded; an IN of that kind reads all ones in its size (RAX's other bits kept, as the
// CPU merges AL/AX). Both guest drivers use this transport: the C kernel's (os-machine.ts
// hands it the interpreter's registers) and the TypeScript kernels' (batch ops; the
// board hands it the vCPU's registers, src/board/backdoor-ports.ts). The legacy 7-port
// register window (backdoor.ts) is separate and unused by the boards.

import type { BackdoorHandler } from './backdoor.js';

export const BACKDOOR_INL_PORT = 0x5670;

/** The general registers an IO exit carries (the ones the backdoor reads or writes). */
export interface GprFile { rax: bigint; rbx: bigint; rcx: bigint; rdx: bigint; rsi: bigint; rdi: bigint }

export interface IoAccess { port: number; size: number; direction: 'in' | 'out' }

export interface InlMisuse { size: number; direction: 'in' | 'out'; message: string }

const U32 = 0xffff_ffffn;
const MAX_MISUSES = 256;

export class BackdoorInl {
  readonly name = 'vmware-backdoor-inl';
  /** Hypercalls executed. */
  calls = 0;
  misuses = 0;
  readonly misuseLog: InlMisuse[] = [];

  constructor(private readonly handler: BackdoorHandler, readonly port = BACKDOOR_INL_PORT) {}

  claims(io: IoAccess): boolean { return io.port === this.port; }

  /** Performs the access; returns the registers to write back (nothing for an OUT). */
  handle(io: IoAccess, r: Readonly<GprFile>): Partial<GprFile> {
    if (io.direction !== 'in' || io.size !== 4) {
      this.misuse(io, `${io.direction.toUpperCase()} of size ${io.size} on port 0x${this.port.toString(16)}: ` +
        'the balloon backdoor is one 32-bit IN (inl %dx)');
      if (io.direction === 'out') return {};
      const mask = (1n << BigInt(8 * io.size)) - 1n;
      return { rax: (r.rax & ~mask) | mask };
    }
    this.calls++;
    const res = this.handler.call({
      eax: Number(r.rax & U32), rbx: BigInt.asUintN(64, r.rbx), ecx: Number(r.rcx & U32),
      esi: Number(r.rsi & U32), edi: Number(r.rdi & U32),
    });
    const out: Partial<GprFile> = { rax: BigInt(res.eax >>> 0) };
    if (res.rbx !== undefined) out.rbx = BigInt.asUintN(64, res.rbx);
    if (res.ecx !== undefined) out.rcx = BigInt(res.ecx >>> 0);
    return out;
  }

  private misuse(io: IoAccess, message: string): void {
    this.misuses++;
    if (this.misuseLog.length < MAX_MISUSES) this.misuseLog.push({ size: io.size, direction: io.direction, message });
  }
}
