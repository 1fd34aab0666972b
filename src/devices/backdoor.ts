// LEGACY MODE, registered by no board: the balloon backdoor as a 7-port register window.
// It served the batch-op (TypeScript) guests while their IO ops carried no general
// registers; today every driver (the C kernel's and guests/kernel/balloon.ts) uses the real
// transport, one `inl (%dx)` with the register file (backdoor-inl.ts; for batch ops the
// board completes the IO exit with the vCPU's registers, src/board/backdoor-ports.ts).
// It stays for hosts that cannot hand a device the register file; it calls the same
// BalloonDevice. A board registers one or the other on port 0x5670, never both.
//
// The VMware balloon backdoor (hypercall) port, 0x5670, on the port-I/O bus.
//
// The real vmw_balloon driver loads EAX = magic 0x456c6d6f, ECX = command, EBX = arg 1,
// ESI = arg 2, EDX = 0x5670 and executes one `inl (%dx)`; the host answers EAX = status,
// EBX = result (the target, for the "with target" commands) and, for START, ECX = the
// granted capabilities. Our batch ops carry no general registers, so the registers travel
// through a small register window of 32-bit ports next to the call port:
//
//   port     OUT (size 4)                         IN (size 4)
//  ┌────────┬────────────────────────────────────┬────────────────────────────────────┐
//  │ 0x5670 │ (refused: recorded as a misuse)     │ EXECUTE: the real `inl`; → EAX     │
//  │ 0x5671 │ EAX ← magic                         │ EAX (status of the last call)      │
//  │ 0x5672 │ EBX ← arg 1, bits 31..0 (zeroes the │ EBX bits 31..0 (target / result)   │
//  │        │       high half, as `mov ebx` does) │                                    │
//  │ 0x5673 │ ECX ← command number                │ ECX (capabilities after START)     │
//  │ 0x5674 │ ESI ← arg 2 (entry count)           │ ESI                                │
//  │ 0x5675 │ EDI ← (unused by the balloon)       │ EDI                                │
//  │ 0x5676 │ RBX bits 63..32 (after 0x5672)      │ RBX bits 63..32 (64-bit target)    │
//  └────────┴────────────────────────────────────┴────────────────────────────────────┘
//
// A call is therefore: OUT EAX, OUT ECX, OUT EBX (and ESI; and RBX-high for a value of
// 2^32 or more), IN 0x5670 (→ status), then IN 0x5672 / 0x5673 / 0x5676 for the results.
// EDX is implied: the IN targets 0x5670, which is what `inl (%dx)` with DX = 0x5670 does,
// so EDX has no window port. Registers keep their values across calls (like a real CPU's);
// the outputs overwrite EAX, EBX and ECX only when the handler produces them.
//
// Anything that is not a 4-byte access is a misuse: it is counted and recorded, an IN of
// that kind reads as all ones (the bus masks it to its size), and nothing throws. Faithful
// to the Linux driver apart from the transport: the command numbers, arguments, status
// codes and result registers are exactly the driver's (see balloon.ts).

import type { PortDevice } from './bus.js';

import { BACKDOOR_PORT, BACKDOOR_PORTS, REG } from './backdoor-protocol.js';

export { BACKDOOR_PORT, BACKDOOR_PORTS, REG };

/** The registers a call sees and returns (rbx is 64-bit: the 64_BIT_TARGET capability). */
export interface BackdoorRegs { eax: number; rbx: bigint; ecx: number; esi: number; edi: number }

/** The outputs of one call: EAX always; RBX / ECX when the command produces them. */
export interface BackdoorResult { eax: number; rbx?: bigint; ecx?: number }

/** What the backdoor calls on EXECUTE. It must not throw (a device contains its errors). */
export interface BackdoorHandler { call(regs: Readonly<BackdoorRegs>): BackdoorResult }

export interface BackdoorMisuse { port: number; size: number; direction: 'in' | 'out'; message: string }

const U32 = 0xffff_ffffn;
const MAX_MISUSES = 256;

export class BackdoorPort implements PortDevice {
  readonly name = 'vmware-backdoor';
  readonly regs: BackdoorRegs = { eax: 0, rbx: 0n, ecx: 0, esi: 0, edi: 0 };
  /** Calls executed (INs from 0x5670 of size 4). */
  calls = 0;
  /** Misused accesses (wrong size, OUT to the call port); the first MAX_MISUSES are kept. */
  misuses = 0;
  readonly misuseLog: BackdoorMisuse[] = [];

  constructor(private readonly handler: BackdoorHandler, readonly base = BACKDOOR_PORT) {}

  private misuse(port: number, size: number, direction: 'in' | 'out', message: string): void {
    this.misuses++;
    if (this.misuseLog.length < MAX_MISUSES) this.misuseLog.push({ port, size, direction, message });
  }

  in(port: number, size: number): bigint {
    const r = port - this.base;
    if (size !== 4) {
      this.misuse(port, size, 'in', `IN of size ${size} from backdoor port 0x${port.toString(16)}: the window is 32-bit (inl)`);
      return U32;
    }
    switch (r) {
      case REG.EXECUTE: return BigInt(this.execute());
      case REG.EAX: return BigInt(this.regs.eax >>> 0);
      case REG.EBX: return this.regs.rbx & U32;
      case REG.ECX: return BigInt(this.regs.ecx >>> 0);
      case REG.ESI: return BigInt(this.regs.esi >>> 0);
      case REG.EDI: return BigInt(this.regs.edi >>> 0);
      case REG.EBX_HIGH: return this.regs.rbx >> 32n;
      default: this.misuse(port, size, 'in', `IN from 0x${port.toString(16)}: not a backdoor register`); return U32;
    }
  }

  out(port: number, size: number, value: bigint): void {
    const r = port - this.base;
    const v = Number(value & U32);
    if (size !== 4) {
      this.misuse(port, size, 'out', `OUT of size ${size} to backdoor port 0x${port.toString(16)}: the window is 32-bit (outl)`);
      return;
    }
    switch (r) {
      case REG.EAX: this.regs.eax = v; return;
      case REG.EBX: this.regs.rbx = BigInt(v); return; // a 32-bit register write zero-extends
      case REG.ECX: this.regs.ecx = v; return;
      case REG.ESI: this.regs.esi = v; return;
      case REG.EDI: this.regs.edi = v; return;
      case REG.EBX_HIGH: this.regs.rbx = (BigInt(v) << 32n) | (this.regs.rbx & U32); return;
      default: this.misuse(port, size, 'out', `OUT to 0x${port.toString(16)}: the call port is executed by IN (inl), not written`);
    }
  }

  /** The `inl`: hands the registers to the handler and latches its outputs. */
  private execute(): number {
    this.calls++;
    const res = this.handler.call({ ...this.regs });
    this.regs.eax = res.eax >>> 0;
    if (res.rbx !== undefined) this.regs.rbx = BigInt.asUintN(64, res.rbx);
    if (res.ecx !== undefined) this.regs.ecx = res.ecx >>> 0;
    return this.regs.eax;
  }
}
