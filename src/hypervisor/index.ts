// The hypervisor layer's public surface.
export { Hypervisor, type HypervisorOptions } from './monitor/hypervisor.js';
export { Vm, type VmOptions, type VmStats, type VmPager } from './monitor/vm.js';
export { Vcpu, type VcpuStats } from './monitor/vcpu.js';
export { HostFrames, OutOfFramesError, FREE, HV_OWNER, SHARED_OWNER, type FrameCounts, type Owner } from './monitor/frames.js';
export { P2m, P2M, HFN_MASK, frameField, stateBits, isUnbacked, needsResolve, type P2mListener } from './monitor/p2m.js';
export { Ept, RWX, eptRights, syncEntry, attachToP2m, type EptMapping, type TableFrames } from './monitor/ept.js';
export { GuestMemory } from './monitor/gmem.js';
export { DEFAULT_HV_COSTS, type HvCosts, type VcpuExit, type VcpuExitReason, type VmMode } from './monitor/types.js';
export { HostSwap, isSwappable, DEFAULT_SWAP_IN_CYCLES, DEFAULT_SWAP_SLOTS, SwapFile, SwapFullError, SwapChecksumError, SwapIoError, nodeSwapIo, slotChecksum, SLOT_BYTES, MAX_SLOTS, type HostSwapOptions, type SwapStats, type SwapHost, type GuestPageOutHook, type SwapFileOptions, type SwapFileStats, type SwapIo } from './pagers/swap.js';
export {
  DEFAULT_TAU, FRAMES_PER_MIB, floorOf, ceilingOf, allocationProblems, validateAllocation, conventionalShares, admit, flatten,
  idleCost, rho, computeTargets, type VmAllocation, type HostCapacity, type Admission, type PoolVm, type PoolSpec,
  type PoolChild, type PoolGroup, type FlatPools, type TargetVm, type TargetOptions, type Targets,
} from './policy/policy.js';
export { ActiveSampler, type SamplerOptions, type PeriodResult, type SamplerEstimates } from './pagers/sampling.js';
export {
  DEFAULT_THRESHOLDS, FREE_STATES, validateThresholds, nextState, stateFor, FreeMemoryStates, thresholdFrames, vmBudget,
  planReclaim, type FreeState, type FreeThresholds, type ReclaimVm, type VmAction, type ReclaimPlan, type PlanOptions,
} from './policy/reclaim.js';
export { PageSharing, DEFAULT_SHARING_COSTS, type SharingOptions, type SharingStats, type SharingCosts, type SharingHost } from './pagers/sharing.js';
export { VmBalloonBackend } from './pagers/balloon-backend.js';
export { MemoryManager, type BalloonTarget, type ManagedVm, type ManagerOptions, type VmRecord, type HostRecord } from './policy/manager.js';
export { migrate, type MigrationOptions, type MigrationResult, type RoundStats } from './migration/migrate.js';
export { DirtyTracker, DirtyBitmap, DEFAULT_DIRTY_COSTS, type DirtyTracking, type DirtyCosts, type DirtyStats } from './migration/dirty.js';
export { PAGE_KINDS, recordBytes, type PageKind, type KindCounts } from './migration/wire.js';
