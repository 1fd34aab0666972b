// Helpers for the swap tests: a VM (nested or shadow) whose guest maps all of its
// guest-physical memory at DIRECT with 2 MiB pages, a host swap, and batched guest word
// loads and stores through the vCPU.
import { Hypervisor, HostSwap, type Vm, type HostSwapOptions, type VcpuExit } from '../../../../src/hypervisor/index.js';
import { bootDirectMap, DIRECT } from '../../../helpers/guest.js';

export const MiB = 2 ** 20;
export { DIRECT };
export const PT_FIRST = 0x100, PT_END = 0x140; // gfns of the guest's page tables
export const DATA = 0x200;                     // first data gfn

export type SwapMode = 'nested' | 'shadow';
export const SWAP_MODES: SwapMode[] = ['nested', 'shadow'];

/** A VM with its guest tables built and its vCPU booted (nothing else backed). */
export function guestVm(hv: Hypervisor, mode: SwapMode, vmMiB = 4): Vm {
  const vm = hv.createVm({ memoryBytes: vmMiB * MiB, mode });
  bootDirectMap(vm, { ptFirst: PT_FIRST, ptEnd: PT_END });
  return vm;
}

export async function swapRig(mode: SwapMode, o: { vmMiB?: number; hostMiB?: number; swap?: HostSwapOptions } = {}) {
  const hv = await Hypervisor.create({ hostMemoryBytes: (o.hostMiB ?? 16) * MiB });
  const vm = guestVm(hv, mode, o.vmMiB ?? 4);
  const swap = new HostSwap(hv, o.swap);
  return { hv, vm, vcpu: vm.vcpus[0], swap };
}

/** The guest-virtual address of word `w` of gfn `g`. */
export const va = (g: number, w = 0): bigint => DIRECT + (BigInt(g) << 12n) + BigInt(w * 8);

/** A recognisable value for word w of gfn g in VM `tag`. */
export const pattern = (tag: number, g: number, w: number): bigint =>
  (BigInt(tag) << 56n) | (BigInt(g) << 20n) | BigInt(w) | 0x5a00_0000_0000n;

type Batch = ReturnType<Hypervisor['machine']['createBatch']>;
const batches = new WeakMap<Hypervisor, Batch>(); // one per machine: batches live in core memory

/** Runs the batch to its end on vm's vCPU, failing on any exit. */
export function runToEnd(hv: Hypervisor, vm: Vm, ops: (b: Batch) => void): bigint[] {
  let b = batches.get(hv);
  if (!b) batches.set(hv, b = hv.machine.createBatch(4096));
  ops(b.clear());
  const x: VcpuExit = vm.vcpus[0].run(b);
  if (x.reason !== 'end') throw new Error(`unexpected exit ${JSON.stringify(x, (_k, v) => typeof v === 'bigint' ? v.toString(16) : v)}`);
  return Array.from({ length: b.length }, (_, i) => b.value(i));
}

/** Guest stores of pattern(tag, g, w) to words [0, words) of each gfn. */
export function fillPages(hv: Hypervisor, vm: Vm, gfns: number[], tag = 1, words = 4): void {
  runToEnd(hv, vm, (b) => { for (const g of gfns) for (let w = 0; w < words; w++) b.store(va(g, w), pattern(tag, g, w)); });
}

/** Guest loads of words [0, words) of each gfn. */
export function readPages(hv: Hypervisor, vm: Vm, gfns: number[], words = 4): bigint[] {
  return runToEnd(hv, vm, (b) => { for (const g of gfns) for (let w = 0; w < words; w++) b.load(va(g, w)); });
}

export const range = (from: number, n: number): number[] => Array.from({ length: n }, (_, i) => from + i);
