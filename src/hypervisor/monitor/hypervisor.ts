// The hypervisor: one host machine (host physical memory + the MMU core), its frame
// allocator, and the VMs it runs.

import { pagingFor } from './paging.js';
import { Machine } from '../../core/machine.js';
import { HostFrames, type FrameCounts } from './frames.js';
import { Vm, type VmOptions } from './vm.js';
import { DEFAULT_HV_COSTS, type HvCosts } from './types.js';

export interface HypervisorOptions {
  /** Host physical memory in bytes (a multiple of 4096, up to 3.5 GiB). */
  hostMemoryBytes: number | bigint;
  /**
   * Bytes at the top of host memory for the hypervisor's own structures (EPT and shadow
   * tables). Default: 1/16 of host memory, at least 256 KiB.
   */
  hypervisorBytes?: number;
  /** Cost-model defaults for every VM (a VM may override them). */
  costs?: Partial<HvCosts>;
  /** NUMA nodes the VM pool is split into (equal contiguous ranges; default 1). */
  numaNodes?: number;
}

const MAX_VPID = 0xffff;

const hypervisorObservers = new Set<(hv: Hypervisor) => void>();

/** Calls f with every Hypervisor created until the returned function is called (`--stats` uses it). */
export function observeHypervisors(f: (hv: Hypervisor) => void): () => void {
  hypervisorObservers.add(f);
  return () => { hypervisorObservers.delete(f); };
}

export class Hypervisor {
  readonly frames: HostFrames;
  readonly costs: HvCosts;
  private readonly vms = new Map<number, Vm>();
  private nextId = 1;
  private vpid = 0;

  private constructor(readonly machine: Machine, o: HypervisorOptions) {
    const total = Number(machine.memory.size / 4096);
    const hvBytes = o.hypervisorBytes ?? Math.max(256 * 1024, Math.floor(machine.memory.size / 16 / 4096) * 4096);
    if (!Number.isInteger(hvBytes) || hvBytes % 4096 !== 0 || hvBytes <= 0 || hvBytes >= machine.memory.size) {
      throw new RangeError(`hypervisorBytes must be a positive multiple of 4096 below host memory, got ${hvBytes}`);
    }
    // The machine was created for this hypervisor (create()), so its memory is all zeros.
    this.frames = new HostFrames(machine.memory, { totalFrames: total, hypervisorFrames: hvBytes / 4096, freshMemory: true, nodes: o.numaNodes });
    this.costs = { ...DEFAULT_HV_COSTS, ...o.costs };
  }

  static async create(o: HypervisorOptions): Promise<Hypervisor> {
    const hv = new Hypervisor(await Machine.create({ memoryBytes: o.hostMemoryBytes }), o);
    for (const f of hypervisorObservers) f(hv);
    return hv;
  }

  /**
   * A new VM. Nested and shadow VMs may overcommit host memory (frames are backed on first
   * touch). A native VM owns host frames [0, memoryBytes) and must be the only VM.
   */
  createVm(o: VmOptions): Vm {
    const live = this.list();
    if (pagingFor(o.mode).direct && live.length > 0) throw new Error('a native VM must be the only VM: it addresses host memory directly');
    if (live.some((v) => v.paging.direct)) throw new Error('a native VM is running: it could reach any other VM\'s frames');
    if (this.nextId >= 0xfffd) throw new RangeError('VM ids exhausted');
    const vm = new Vm({ machine: this.machine, frames: this.frames, costs: this.costs, nextVpid: () => this.nextVpid() },
      this.nextId, o.mode, o);
    this.vms.set(this.nextId++, vm);
    return vm;
  }

  /** Frees all of a VM's frames; its vCPUs must not run again. */
  destroyVm(vm: Vm): void {
    if (this.vms.get(vm.id) !== vm) throw new Error(`VM ${vm.id} is not running on this hypervisor`);
    vm.destroy();
    this.vms.delete(vm.id);
  }

  list(): Vm[] { return [...this.vms.values()]; }
  vm(id: number): Vm | undefined { return this.vms.get(id); }

  /** VPIDs tag each vCPU's TLB entries; 0 is the host's, so guests get 1..65535. */
  private nextVpid(): number {
    if (this.vpid >= MAX_VPID) throw new RangeError('VPIDs exhausted');
    return ++this.vpid;
  }

  counts(): FrameCounts { return this.frames.counts(); }
}
