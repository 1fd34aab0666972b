// The board of a TypeScript guest kernel: it builds the guest's platform from a VM (its
// vCPU, its memory as the bootloader writes it), the VM's port bus with the swap disk on
// it, and the host's exit handler, then boots the kernel on it. Guest code sees only the
// platform (guests/platform.ts); the hypervisor stays on this side.
//
//   bootKernel ─▶ PortBus ◀─ SwapDisk (DMA through vm.memory, stalls the vCPU)
//       │            ▲
//       └─▶ platform { vcpu, ports, memory, createBatch, hostExit } ─▶ Kernel.boot
//                    └─ port 0x5670 with a backdoor: the register file (backdoor-ports.ts)

import type { AccessBatch } from '../core/batch.js';
import { PortBus } from '../devices/bus.js';
import type { BackdoorInl } from '../devices/backdoor-inl.js';
import { portsWithBackdoor } from './backdoor-ports.js';
import { SwapDisk, SWAPDISK_PORTS } from '../devices/swapdisk.js';
import { SWAP_PORT } from '../devices/swapdisk-protocol.js';
import { OutOfFramesError } from '../hypervisor/monitor/frames.js';
import type { Hypervisor } from '../hypervisor/monitor/hypervisor.js';
import type { Vm } from '../hypervisor/monitor/vm.js';
import type { IoRemapper } from '../hypervisor/pagers/io-remap.js';
import { Kernel, type KernelOptions } from '../../guests/kernel/kernel.js';
import type { GuestExit, GuestPlatform } from '../../guests/platform.js';

export interface BootKernelOptions extends Omit<KernelOptions, 'platform'> {
  hv: Hypervisor;
  vm: Vm;
  /** The VM's port bus (a new one is made if absent); the swap disk is registered on it. */
  bus?: PortBus;
  vcpu?: number;
  swapPort?: number;
  /**
   * Swap by DMA (default true: a few IO exits per page and a modeled disk latency) or by
   * PIO (false: 2048 four-byte IO exits per page, as an ATA disk without bus-mastering).
   */
  swapDma?: boolean;
  /** Cycles one DMA page transfer waits (default 20000). */
  swapLatencyCycles?: number;
  /**
   * The swap disk is a 32-bit DMA device: transfers to high host frames bounce, and hot
   * pages are remapped low (hypervisor/pagers/io-remap.ts). Absent: every frame is reachable.
   */
  ioRemap?: IoRemapper;
  /** Asks the host to free frames when its pool runs dry during a swap-disk DMA; returns how many. */
  reclaimHost?: (need: number) => number;
  /** Exits only the hypervisor can resolve (WRITE_PROTECT, OUT_OF_FRAMES, ...): return the op to resume at. */
  onHostExit?: (x: GuestExit, b: AccessBatch | null) => number;
  /** The balloon backdoor: one `inl` on its port with the vCPU's register file. */
  backdoor?: BackdoorInl;
}

export interface BootedKernel {
  kernel: Kernel;
  vm: Vm;
  bus: PortBus;
  disk: SwapDisk;
  platform: GuestPlatform;
}

const isHostShortage = (e: unknown): boolean => e instanceof OutOfFramesError;

/** The platform a guest sees of vm: one of its vCPUs, its bus, its memory and the host's exit handler. */
export function vmPlatform(hv: Hypervisor, vm: Vm, bus: PortBus, o: { vcpu?: number; swapPort?: number; swapDma?: boolean;
  onHostExit?: BootKernelOptions['onHostExit']; backdoor?: BackdoorInl } = {}): GuestPlatform {
  const hostExit = o.onHostExit;
  const vcpu = vm.vcpus[o.vcpu ?? 0];
  return {
    vcpu,
    ports: o.backdoor ? portsWithBackdoor(bus, o.backdoor, vcpu) : bus,
    memory: vm.memory,
    get memoryBytes() { return vm.memoryBytes; },
    get frameCount() { return vm.frameCount; },
    // Vm.hotAdd is the event: the guest's handler runs at once, on its vCPU (an interrupt taken right away).
    onMemoryAdded: (h) => { vm.watchResize((old, now) => h(old, now - old)); },
    createBatch: (n) => hv.machine.createBatch(n),
    swapPort: o.swapPort,
    swapDma: o.swapDma,
    ...(hostExit ? { hostExit: (x: GuestExit, b: AccessBatch | null) => hostExit(x, b) } : {}),
  };
}

/** Plugs a swap disk into the VM's bus and boots a kernel on the VM's platform. */
export function bootKernel(o: BootKernelOptions): BootedKernel {
  const { hv, vm } = o;
  const bus = o.bus ?? new PortBus();
  const dma = o.swapDma ?? true;
  const vcpu = vm.vcpus[o.vcpu ?? 0];
  const disk = new SwapDisk(o.swapPort ?? SWAP_PORT, dma
    ? { dma: o.ioRemap ? o.ioRemap.view(vm, (c) => vcpu.stall(c)) : vm.memory, stall: (c) => vcpu.stall(c), latencyCycles: o.swapLatencyCycles,
      reclaim: () => o.reclaimHost?.(1) ?? 0, isHostShortage } : {});
  bus.register(disk.base, SWAPDISK_PORTS, disk);
  const platform = vmPlatform(hv, vm, bus, { vcpu: o.vcpu, swapPort: disk.base, swapDma: dma, onHostExit: o.onHostExit, backdoor: o.backdoor });
  const kernel = Kernel.boot({ ...o, platform });
  return { kernel, vm, bus, disk, platform };
}
