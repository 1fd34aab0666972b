// Shared setup for guest tests: a hypervisor, one VM in the given mode, a booted kernel.
import { Hypervisor, type VmMode } from '../../src/hypervisor/index.js';
import type { CpuOptions } from '../../src/core/cpu.js';
import type { Kernel } from '../../guests/kernel/kernel.js';
import { bootKernel as boot, type BootKernelOptions } from '../../src/board/boot.js';

export const MODES: VmMode[] = ['native', 'shadow', 'nested'];
const MiB = 2 ** 20;

export async function bootKernel(mode: VmMode, memMiB = 8, o: Partial<Omit<BootKernelOptions, 'hv' | 'vm'>> = {}, cpu: CpuOptions = {}) {
  const hv = await Hypervisor.create({ hostMemoryBytes: (memMiB + 24) * MiB });
  const vm = hv.createVm({ memoryBytes: memMiB * MiB, mode, cpu });
  const { kernel: k, disk } = boot({ hv, vm, hz: 1e6, ...o });
  return { hv, vm, k, disk };
}

/** FNV-1a over the guest's non-page-table frames (A/D bits may differ between modes only in tables). */
export function dataHash(k: Kernel): string {
  let h = 0x811c9dc5;
  for (let g = 0; g < k.platform.frameCount; g++) {
    if (k.frames.state[g] === 3 /* TABLE */) continue;
    const d = k.platform.memory.read(BigInt(g) << 12n, 4096);
    for (let i = 0; i < d.length; i++) h = Math.imul(h ^ d[i], 0x01000193);
  }
  return (h >>> 0).toString(16);
}
