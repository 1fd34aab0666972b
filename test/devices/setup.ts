// Helpers for the device tests: a nested VM with a direct map, a balloon device on its
// port bus, and a tiny pinned-frame allocator for the guest balloon driver.
import { Hypervisor, type Vm } from '../../src/hypervisor/index.js';
import { PortBus } from '../../src/devices/bus.js';
import { BackdoorInl } from '../../src/devices/backdoor-inl.js';
import { BalloonDevice, BALLOON_MAGIC, type BalloonDeviceOptions } from '../../src/devices/balloon.js';
import { createBalloonDevice } from '../../src/board/balloon.js';
import { BalloonStats } from '../../src/devices/balloon-stats.js';
import type { PinnedAllocator } from '../../guests/kernel/balloon.js';
import { bootDirectMap, DIRECT } from '../helpers/guest.js';

export const MiB = 2 ** 20;
export { DIRECT };
export const PT_FIRST = 0x100, PT_END = 0x200; // gfns of the guest's page tables

export interface Rig {
  hv: Hypervisor; vm: Vm; bus: PortBus; backdoor: BackdoorInl; dev: BalloonDevice; stats: BalloonStats;
  /** A host-side backdoor call: one `inl` on port 0x5670 with this register file (what a guest driver's IN does). */
  call(cmd: number, arg1?: bigint | number, arg2?: number, magic?: number): { status: number; rbx: bigint; ecx: number };
}

export async function rig(o: { vmMiB?: number; hostMiB?: number; mode?: 'nested' | 'shadow'; prefault?: boolean;
  dev?: BalloonDeviceOptions; clock?: () => number; hv?: Hypervisor } = {}): Promise<Rig> {
  const hv = o.hv ?? await Hypervisor.create({ hostMemoryBytes: (o.hostMiB ?? 64) * MiB });
  const vm = hv.createVm({ memoryBytes: (o.vmMiB ?? 8) * MiB, mode: o.mode ?? 'nested' });
  bootDirectMap(vm, { ptFirst: PT_FIRST, ptEnd: PT_END });
  if (o.prefault ?? true) vm.prefault(0n, vm.memoryBytes);
  let dev!: BalloonDevice;
  const stats = new BalloonStats({ get target() { return dev.target; }, get size() { return dev.size; } }, o.clock);
  dev = createBalloonDevice(vm, hv.frames, { events: stats, ...o.dev });
  const backdoor = new BackdoorInl(dev);
  const bus = new PortBus();
  // Registers keep their values across calls, as a CPU's do.
  const regs = { rax: 0n, rbx: 0n, rcx: 0n, rdx: 0n, rsi: 0n, rdi: 0n };
  const call = (cmd: number, arg1: bigint | number = 0n, arg2 = 0, magic = BALLOON_MAGIC) => {
    Object.assign(regs, { rax: BigInt(magic), rcx: BigInt(cmd), rbx: BigInt.asUintN(64, BigInt(arg1)), rsi: BigInt(arg2), rdx: BigInt(backdoor.port) });
    Object.assign(regs, backdoor.handle({ port: backdoor.port, size: 4, direction: 'in' }, regs));
    return { status: Number(regs.rax), rbx: regs.rbx, ecx: Number(regs.rcx & 0xffff_ffffn) };
  };
  return { hv, vm, bus, backdoor, dev, stats, call };
}

/** Pinned frames from [PT_END, frames) minus `reserved`; 2 MiB runs from wholly free aligned ranges. */
export class TestAllocator implements PinnedAllocator {
  private readonly free4k = new Set<number>();
  allocs = 0; frees = 0;
  constructor(readonly frames: number, reserved: Iterable<number> = [], private limit = Infinity) {
    const r = new Set(reserved);
    for (let g = frames - 1; g >= PT_END; g--) if (!r.has(g)) this.free4k.add(g);
  }
  get available(): number { return this.free4k.size; }
  setLimit(n: number): void { this.limit = n; }
  allocPinned(): number | null {
    if (this.allocs - this.frees >= this.limit) return null;
    const it = this.free4k.values().next();
    if (it.done) return null;
    this.free4k.delete(it.value); this.allocs++;
    return it.value;
  }
  free(g: number): void {
    if (this.free4k.has(g) || g < PT_END || g >= this.frames) throw new Error(`allocator: bad free of gfn ${g}`);
    this.free4k.add(g); this.frees++;
  }
  allocPinned2M(): number | null {
    if (this.allocs - this.frees + 512 > this.limit) return null;
    for (let base = Math.ceil(PT_END / 512) * 512; base + 512 <= this.frames; base += 512) {
      let ok = true;
      for (let i = 0; i < 512 && ok; i++) ok = this.free4k.has(base + i);
      if (!ok) continue;
      for (let i = 0; i < 512; i++) this.free4k.delete(base + i);
      this.allocs += 512;
      return base;
    }
    return null;
  }
  free2M(g: number): void { for (let i = 0; i < 512; i++) this.free(g + i); }
}
