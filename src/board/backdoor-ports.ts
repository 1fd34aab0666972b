// The guest's port I/O with the balloon backdoor's real transport: one `inl (%dx)` on port
// 0x5670 whose arguments and results travel in the general registers (backdoor-inl.ts).
// A batch op carries no registers, so the IN op's IO exit is completed here with the
// register file of the vCPU that issued it, as a hypervisor completes an IO exit from the
// VMCS's guest state:
//
//   guest: setGprs({ rax: magic, rcx: cmd, rbx: arg1, rsi: arg2, rdx: 0x5670 }); IN 0x5670 (4)
//   here:  BackdoorInl.handle(exit, vcpu.gprs()) → EAX into the op's value and RAX (zero-
//          extended, as `in eax` does), RBX / RCX into the vCPU; one IO exit per hypercall.
//
// Every other port goes to the PortBus unchanged.

import type { AccessBatch } from '../core/batch.js';
import type { GeneralRegisters } from '../core/cpu.js';
import type { PortBus, IoExit } from '../devices/bus.js';
import type { BackdoorInl } from '../devices/backdoor-inl.js';

/** What the backdoor needs of the vCPU that exited. */
export interface RegisterFile {
  gprs(): GeneralRegisters;
  setGprs(r: Partial<GeneralRegisters>): void;
}

/** The bus, with the backdoor's port answered from and into `vcpu`'s registers. */
export function portsWithBackdoor(bus: PortBus, backdoor: BackdoorInl, vcpu: RegisterFile): { dispatch(x: IoExit, b: AccessBatch): void } {
  return {
    dispatch(x: IoExit, b: AccessBatch): void {
      if (!backdoor.claims(x)) { bus.dispatch(x, b); return; }
      const out = backdoor.handle(x, vcpu.gprs());
      if (Object.keys(out).length) vcpu.setGprs(out);
      if (x.direction === 'in') b.setValue(x.index, (out.rax ?? 0n) & ((1n << BigInt(8 * x.size)) - 1n));
    },
  };
}
