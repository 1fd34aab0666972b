// memvisor's public API.
export { Machine, MAX_MEMORY_BYTES, type MachineOptions } from './core/machine.js';
export { PhysicalMemory } from './core/memory.js';
export { setCoreSource, type CoreSource } from './core/wasm.js';
export { readCache, readCaches, type CacheView, type CacheEntry, type CacheName } from './core/tlb-view.js';
export { explainWalk, type WalkExplanation, type WalkRef, type NestedRow, type WalkControls } from './core/walk-explain.js';
export { decodePte, decodeEptEntry, decodePfec, decodeEptQualification, type BitField } from './core/decode.js';
export { WalkLab, LAB_ADDRESSES, DEFAULT_LAB, type WalkLabOptions, type LabAddress } from './board/walk-lab.js';
export {
  Cpu, DEFAULT_TLB, type CpuOptions, type TlbConfig, type CacheGeometry, type Latencies,
  type Registers, type Access, type Translation, type Result, type BatchExit, type BatchResult,
  type StaleUse, type Vmcs, type TranslationMode,
} from './core/cpu.js';
export { AccessBatch, OpKind, OP_BYTES, type OpKindName, type OpOptions } from './core/batch.js';
export * from './core/bits.js';
export * from './core/addr.js';
export { PageTableBuilder, FrameBump, type MapFlags } from './core/pagetable.js';
export { parseScenario, type Scenario } from './scenario/schema.js';
export { runTranslation, type TranslationResult } from './experiment/translation.js';
export { offsets, fillBatch, PATTERNS, type Pattern, type PatternSpec } from './workload/patterns.js';
export { parseLackey, parseLackeyLine, traceCounts, TraceLineError, type TraceRecord, type TraceCounts } from './workload/lackey.js';
export { TraceReader, scanTrace, type TraceScan } from './workload/trace-file.js';
export { Rng } from './util/rng.js';
export * from './hypervisor/index.js';
export { PAGING_MODES, type PagingMode } from './core/paging-mode.js';
export { pagingFor, requirePageable, type Paging } from './hypervisor/monitor/paging.js';
export { ShadowMmu, type ShadowBacking, type ShadowStats, type ShadowOutcome } from './hypervisor/monitor/shadow.js';
export { compare, DEFAULT_WORKLOADS, type CompareRow, type Workload } from './experiment/compare.js';
export { PortBus, type PortDevice, type IoExit } from './devices/bus.js';
export { BackdoorPort } from './devices/backdoor.js';
export { BalloonDevice, classifyBalloonExit, type BalloonBackend, CMD as BALLOON_CMD, CAP as BALLOON_CAP, STATUS as BALLOON_STATUS } from './devices/balloon.js';
export { BalloonStats } from './devices/balloon-stats.js';
export { Scheduler, type Runnable, type SchedulerOptions } from './hypervisor/policy/scheduler.js';
export { FrameOps } from './core/hash.js';
export * from './report/index.js';
export {
  registerExperiment, defineExperiment, unregisterExperiment, getExperiment, listExperiments,
  setDefaultScenario, getDefaultScenario, parseExperimentScenario, scenarioConfig,
  type ExperimentDefinition, type RunContext, type ParsedScenario,
} from './experiment/registry.js';
export { runScenario, runExperiment, withSeed, RunAborted, type RunOptions } from './experiment/runner.js';
export { GuestVm, type GuestVmOptions } from './board/guest-vm.js';
export { bootKernel, vmPlatform, type BootKernelOptions, type BootedKernel } from './board/boot.js';
export { bootShared } from './board/shared.js';
export { createBalloonDevice } from './board/balloon.js';
export type { GuestPlatform, GuestVcpu, GuestPorts, BootMemory } from '../guests/platform.js';
// Guest kernels and workloads (guests/), for experiments written against the library.
export { Kernel, type Workload as GuestWorkload, type KernelOptions } from '../guests/kernel/kernel.js';
export { BalloonDriver } from '../guests/kernel/balloon.js';
export { Filler } from '../guests/filler.js';
export { IdleKernel } from '../guests/idle.js';
export { PageMix } from '../guests/page-mix.js';
export { PatternKernel } from '../guests/patterns.js';
export { PhasedToucher } from '../guests/phased-toucher.js';
export { SharedContent } from '../guests/shared.js';
export { Throughput } from '../guests/throughput.js';
export { Toucher } from '../guests/toucher.js';
export { TraceReplay } from '../guests/trace.js';
// Machine-code guests: the Limine loader, the board and its devices (src/board, src/devices).
export { parseElf, ElfError, type ElfImage, type LoadSegment } from './board/elf.js';
export { loadKernel, type BootInfo, type BootRegisters, type LoadOptions } from './board/loader.js';
export { HHDM_OFFSET, MEMMAP, REQUEST as LIMINE_REQUEST, LimineError, type MemmapEntry } from './board/limine.js';
export { OsMachine, type OsMachineOptions, type OsRunResult, type GuestCpu, type CpuExit as BoardExit, type Budget } from './board/os-machine.js';
export { interpretingCpu } from './board/cpu-adapter.js';
export { Uart16550, COM1 } from './devices/uart.js';
export { PowerDevice, type PowerOff } from './devices/power.js';
export { BackdoorInl, type GprFile } from './devices/backdoor-inl.js';
