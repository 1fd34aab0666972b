// The interpreting x86-64 vCPU as the board's GuestCpu (os-machine.ts).
// Placeholder until the CPU (branch cpu) is merged: booting needs it.
import type { Vm } from '../hypervisor/vm.js';
import type { GuestCpu } from './os-machine.js';

export function interpretingCpu(_vm: Vm): GuestCpu {
  throw new Error('this build has no instruction-executing vCPU yet (the x86-64 interpreter is not merged): memvisor boot cannot run a kernel');
}
