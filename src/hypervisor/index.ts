// The hypervisor layer's public surface.
export { Hypervisor, type HypervisorOptions } from './hypervisor.js';
export { Vm, type VmOptions, type VmStats, type VmPager } from './vm.js';
export { Vcpu, type VcpuStats } from './vcpu.js';
export { HostFrames, OutOfFramesError, FREE, HV_OWNER, type FrameCounts, type Owner } from './frames.js';
export { P2m, P2M, HFN_MASK, frameField, stateBits, isUnbacked, needsResolve, type P2mListener } from './p2m.js';
export { Ept, RWX, eptRights, syncEntry, attachToP2m, type EptMapping, type TableFrames } from './ept.js';
export { GuestMemory } from './gmem.js';
export { DEFAULT_HV_COSTS, type HvCosts, type VcpuExit, type VcpuExitReason, type VmMode } from './types.js';
