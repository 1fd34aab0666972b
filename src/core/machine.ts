// A machine: one core instance = one host physical memory, with any number of vCPUs.

import { checkAbi } from './abi.js';
import { loadCore, type Core } from './wasm.js';
import { PhysicalMemory } from './memory.js';
import { Cpu, type CpuOptions } from './cpu.js';
import { AccessBatch } from './batch.js';
import { fmtSize } from '../util/bytes.js';

export interface MachineOptions {
  /** Host physical memory in bytes: a multiple of 4096, up to 3.5 GiB. */
  memoryBytes: number | bigint;
}

export const MAX_MEMORY_BYTES = 3.5 * 2 ** 30;

const machineObservers = new Set<(m: Machine) => void>();

/** Calls f with every Machine created until the returned function is called (`--stats` uses it). */
export function observeMachines(f: (m: Machine) => void): () => void {
  machineObservers.add(f);
  return () => { machineObservers.delete(f); };
}

/** Why a host memory size cannot be used, or undefined if it can (scenario validation asks too). */
export function memoryProblem(bytes: unknown): string | undefined {
  const n = Number(bytes);
  if (Number.isInteger(n) && n >= 4096 && n % 4096 === 0 && n <= MAX_MEMORY_BYTES) return undefined;
  const got = Number.isFinite(n) ? `${n} B (${fmtSize(n)})` : String(bytes);
  return `memoryBytes must be a multiple of 4 KiB between 4 KiB and ${fmtSize(MAX_MEMORY_BYTES)} (the Wasm core's 4 GiB ` +
    `address space, less room for its own structures); got ${got}`;
}

export class Machine {
  readonly memory: PhysicalMemory;
  readonly counterNames: readonly string[];
  private constructor(readonly core: Core) {
    this.memory = new PhysicalMemory(core, core.physBaseAddr(), Number(core.physSize()));
    const p = core.counterNamesPtr();
    const s = new Uint16Array(core.memory.buffer, p, core.counterNamesLen());
    this.counterNames = String.fromCharCode(...s).split(',');
    checkAbi(core, this.counterNames.length); // every shared number equals the core's
  }

  private readonly cpuList: Cpu[] = [];

  static async create(opts: MachineOptions): Promise<Machine> {
    const bytes = Number(opts?.memoryBytes);
    if (!Number.isInteger(bytes) || bytes < 4096 || bytes % 4096 !== 0 || bytes > MAX_MEMORY_BYTES) {
      throw new RangeError(memoryProblem(opts?.memoryBytes));
    }
    const core = await loadCore();
    if (!core.init(BigInt(bytes))) {
      throw new RangeError(`cannot allocate ${bytes} bytes (${fmtSize(bytes)}) of host memory (Wasm memory could not grow)`);
    }
    const m = new Machine(core);
    for (const f of machineObservers) f(m);
    return m;
  }

  createCpu(opts: CpuOptions = {}): Cpu {
    const cpu = new Cpu(this.core, this.counterNames, opts);
    this.cpuList.push(cpu);
    return cpu;
  }

  /** Every Cpu made on this machine, in creation order (for statistics dumps). */
  cpus(): readonly Cpu[] { return this.cpuList; }

  /** A reusable buffer of memory operations for Cpu.execute. */
  createBatch(capacity: number): AccessBatch {
    return new AccessBatch(this.core, capacity);
  }
}
