// A machine: one core instance = one host physical memory, with any number of vCPUs.

import { checkAbi } from './abi.js';
import { loadCore, type Core } from './wasm.js';
import { PhysicalMemory } from './memory.js';
import { Cpu, type CpuOptions } from './cpu.js';
import { AccessBatch } from './batch.js';

export interface MachineOptions {
  /** Host physical memory in bytes: a multiple of 4096, up to 3.5 GiB. */
  memoryBytes: number | bigint;
}

export const MAX_MEMORY_BYTES = 3.5 * 2 ** 30;

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

  static async create(opts: MachineOptions): Promise<Machine> {
    const bytes = Number(opts?.memoryBytes);
    if (!Number.isInteger(bytes) || bytes < 4096 || bytes % 4096 !== 0 || bytes > MAX_MEMORY_BYTES) {
      throw new RangeError(
        `memoryBytes must be a multiple of 4096 between 4096 and ${MAX_MEMORY_BYTES}, got ${opts?.memoryBytes}`);
    }
    const core = await loadCore();
    if (!core.init(BigInt(bytes))) {
      throw new RangeError(`cannot allocate ${bytes} bytes of host memory (Wasm memory could not grow)`);
    }
    return new Machine(core);
  }

  createCpu(opts: CpuOptions = {}): Cpu {
    return new Cpu(this.core, this.counterNames, opts);
  }

  /** A reusable buffer of memory operations for Cpu.execute. */
  createBatch(capacity: number): AccessBatch {
    return new AccessBatch(this.core, capacity);
  }
}
