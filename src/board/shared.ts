// Several identical guest machines for content-based page sharing: the same kernel image
// (imageSeed) and the SharedContent workload (guests/shared.ts) in n VMs of one hypervisor.

import type { Hypervisor } from '../hypervisor/monitor/hypervisor.js';
import type { VmMode } from '../hypervisor/monitor/types.js';
import type { Kernel } from '../../guests/kernel/kernel.js';
import { SharedContent, type SharedOptions } from '../../guests/shared.js';
import { bootKernel, type BootKernelOptions } from './boot.js';

/** n identical kernels on one hypervisor (nested or shadow: only those modes allow several VMs). */
export function bootShared(hv: Hypervisor, n: number, mode: Exclude<VmMode, 'native'>, memoryBytes: number,
  o: Partial<Omit<BootKernelOptions, 'hv' | 'vm'>> & Partial<SharedOptions> = {}): { kernels: Kernel[]; workloads: SharedContent[] } {
  const kernels: Kernel[] = [], workloads: SharedContent[] = [];
  for (let i = 0; i < n; i++) {
    const vm = hv.createVm({ memoryBytes, mode });
    const k = bootKernel({ hv, vm, imageSeed: 0x5ea5, ...o }).kernel;
    const w = new SharedContent({ ...o, instance: i });
    k.start(w);
    kernels.push(k); workloads.push(w);
  }
  return { kernels, workloads };
}
