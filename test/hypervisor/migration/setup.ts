// Helpers for the migration tests: two hosts, the writer guest, and an exact image of a
// VM's guest-physical memory read without changing its state (swapped pages are read from
// the swap file, not swapped in).
import { Hypervisor, P2M, frameField, type Vm, type HostSwap } from '../../../src/hypervisor/index.js';
import { hpaOf, type Gfn, type Hfn } from '../../../src/core/addr.js';
import { bootWriterGuest, fillWriterGuest, Writer, type WriterLayout } from '../../../src/experiment/migration-guest.js';

export const MiB = 2 ** 20;
export const HZ = 2e9;

export async function twoHosts(hostMiB = 64): Promise<[Hypervisor, Hypervisor]> {
  return [await Hypervisor.create({ hostMemoryBytes: hostMiB * MiB }), await Hypervisor.create({ hostMemoryBytes: hostMiB * MiB })];
}

export function writerVm(hv: Hypervisor, mode: 'nested' | 'shadow', layout: WriterLayout, o: { mib?: number; rate?: number; seed?: number } = {}):
  { vm: Vm; writer: Writer } {
  const vm = hv.createVm({ memoryBytes: (o.mib ?? 8) * MiB, mode });
  bootWriterGuest(vm);
  fillWriterGuest(vm, layout);
  return { vm, writer: new Writer(hv, vm, layout.hotPages, o.rate ?? 20_000, o.seed ?? 7) };
}

/** Every byte of the VM's memory as the guest would read it, without swapping in or backing anything. */
export function image(hv: Hypervisor, vm: Vm, swap?: HostSwap): Uint8Array {
  const out = new Uint8Array(vm.frameCount * 4096);
  vm.p2m.forEach((g, w) => {
    if (w & P2M.PRESENT) out.set(hv.machine.memory.read(hpaOf(frameField(w) as Hfn), 4096), g * 4096);
    else if (w & P2M.SWAPPED) out.set(swap!.file.read(frameField(w)), g * 4096);
  });
  return out;
}

/** gfns whose pages differ between two images (empty = equal byte for byte). */
export function diffPages(a: Uint8Array, b: Uint8Array): number[] {
  const out: number[] = [];
  for (let g = 0; g * 4096 < a.length; g++) {
    for (let i = g * 4096; i < (g + 1) * 4096; i++) if (a[i] !== b[i]) { out.push(g); break; }
  }
  return out;
}

/** Present gfns whose frame is not all zeros. */
export function nonZeroPresent(hv: Hypervisor, vm: Vm): number {
  let n = 0;
  vm.p2m.forEach((_g, w) => {
    const b = hv.machine.memory.read(hpaOf(frameField(w) as Hfn), 4096);
    if (b.some((x) => x !== 0)) n++;
  }, P2M.PRESENT, P2M.PRESENT);
  return n;
}

export const gfn = (n: number) => n as Gfn;
