// Helpers for the page-sharing tests: VMs with a guest direct map and a booted vCPU,
// page patterns, guest loads/stores through the vCPU, and exact frame accounting.
import { expect } from 'vitest';
import { Hypervisor, PageSharing, P2M, SHARED_OWNER, type Vm, type SharingOptions } from '../../../../src/hypervisor/index.js';
import { bootDirectMap, DIRECT } from '../../../helpers/guest.js';

export const MiB = 2 ** 20;
export { DIRECT };
export const PT_BASE = 0x10_0000n, PT_END = 0x20_0000n;

export async function host(o: SharingOptions = {}, hostMiB = 64): Promise<{ hv: Hypervisor; sh: PageSharing }> {
  const hv = await Hypervisor.create({ hostMemoryBytes: hostMiB * MiB });
  return { hv, sh: new PageSharing(hv, o) };
}

/** A VM registered with sharing; `guest` builds the direct map and boots vCPU 0 (page tables in [PT_BASE, PT_END)). */
export function vmOn(hv: Hypervisor, sh: PageSharing, o: { mode?: 'nested' | 'shadow'; mib?: number; guest?: boolean } = {}): Vm {
  const vm = hv.createVm({ memoryBytes: (o.mib ?? 4) * MiB, mode: o.mode ?? 'nested' });
  sh.addVm(vm);
  if (o.guest) bootGuest(vm);
  return vm;
}

export function bootGuest(vm: Vm): void {
  bootDirectMap(vm, { ptFirst: Number(PT_BASE >> 12n), ptEnd: Number(PT_END >> 12n) });
}

/** 4 KiB of pattern p (0 = zeros). */
export function pattern(p: number): Uint8Array {
  const b = new Uint8Array(4096);
  if (p !== 0) for (let i = 0; i < 4096; i++) b[i] = (i * p + (p >> 8) + p) & 0xff;
  return b;
}

export function setPage(vm: Vm, gfn: number, bytes: Uint8Array): void { vm.memory.write(BigInt(gfn) << 12n, bytes); }
export function page(vm: Vm, gfn: number): Uint8Array { return vm.memory.read(BigInt(gfn) << 12n, 4096); }

/** A guest store of 8 bytes at gpa through vCPU 0 (must complete). */
export function guestStore(hv: Hypervisor, vm: Vm, gpa: bigint, v: bigint): void {
  const b = batchOf(hv).clear().store(DIRECT + gpa, v);
  expect(vm.vcpus[0].run(b)).toEqual({ reason: 'end' });
}

/** A guest load of 8 bytes at gpa through vCPU 0. */
export function guestLoad(hv: Hypervisor, vm: Vm, gpa: bigint): bigint {
  const b = batchOf(hv).clear().load(DIRECT + gpa);
  expect(vm.vcpus[0].run(b)).toEqual({ reason: 'end' });
  return b.value(0);
}

const batches = new WeakMap<Hypervisor, ReturnType<Hypervisor['machine']['createBatch']>>();
function batchOf(hv: Hypervisor) {
  let b = batches.get(hv);
  if (!b) { b = hv.machine.createBatch(4); batches.set(hv, b); }
  return b;
}

/** Private backed gfns of a VM (present, not shared). */
export const privateFrames = (vm: Vm): number => vm.p2m.count(P2M.PRESENT | P2M.SHARED, P2M.PRESENT);
export const sharedGfns = (vm: Vm): number => vm.p2m.count(P2M.PRESENT | P2M.SHARED, P2M.PRESENT | P2M.SHARED);

/** Host frame accounting is exact: each VM owns its private frames, sharing owns the distinct shared frames. */
export function expectExactAccounting(hv: Hypervisor, sh: PageSharing, vms: Vm[]): void {
  sh.checkInvariants();
  for (const vm of vms) if (!vm.isDestroyed) expect(hv.frames.usedBy(vm.id)).toBe(privateFrames(vm));
  expect(hv.frames.usedBy(SHARED_OWNER)).toBe(sh.stats.pagesShared);
  const live = vms.filter((v) => !v.isDestroyed);
  const c = hv.counts();
  const vmPool = hv.frames.hypervisorStart;
  expect(vmPool - c.vmFree).toBe(live.reduce((n, v) => n + privateFrames(v), 0) + sh.stats.pagesShared);
  const refs = sh.sharedFrames().reduce((n, f) => n + f.refs, 0);
  expect(refs).toBe(live.reduce((n, v) => n + sharedGfns(v), 0));
  expect(sh.stats.pagesSharing).toBe(refs - sh.stats.pagesShared);
}

/** Byte equality, fast (vitest's deep equality walks 4096 elements slowly); names the first difference. */
export function expectBytes(actual: Uint8Array, want: Uint8Array, what = 'bytes'): void {
  if (Buffer.from(actual.buffer, actual.byteOffset, actual.length).equals(Buffer.from(want.buffer, want.byteOffset, want.length))) return;
  let i = 0;
  while (i < Math.min(actual.length, want.length) && actual[i] === want[i]) i++;
  expect.fail(`${what} differ at offset ${i} of ${actual.length}/${want.length}: got ${actual[i]}, want ${want[i]}`);
}
