// The run loop's exits and their accounting: port I/O and HLT reach the caller and resume,
// exit counts by reason, the cost model (exit cost + hypervisor work on top of the core).
import { describe, it, expect } from 'vitest';
import { Hypervisor } from '../../../src/hypervisor/index.js';
import { guestTables, boot, runAll } from '../../helpers/guest.js';

const MiB = 2 ** 20;
const VA = 0x4000_0000n;
const DATA = 0x100_0000n;

async function setup(mode: 'nested' | 'shadow' | 'native', costs = {}) {
  const hv = await Hypervisor.create({ hostMemoryBytes: 64 * MiB, costs });
  const vm = hv.createVm({ memoryBytes: 32 * MiB, mode });
  const pt = guestTables(vm);
  pt.mapRange(VA, DATA, 16 * 4096);
  boot(vm.vcpus[0], pt.root);
  return { hv, vm, vcpu: vm.vcpus[0], b: hv.machine.createBatch(64) };
}

describe('exits', () => {
  it('returns OUT and IN with port, size, direction; an IN answer lands in the op', async () => {
    const { vcpu, b } = await setup('nested');
    b.out(0x5658, 0x1234n, 2).in(0x5659, 4).hlt().store(VA, 1n);
    expect(vcpu.run(b)).toEqual({ reason: 'IO', index: 0, port: 0x5658, size: 2, direction: 'out', value: 0x1234n });
    expect(vcpu.run(b, 1)).toMatchObject({ reason: 'IO', index: 1, port: 0x5659, size: 4, direction: 'in' });
    b.setValue(1, 0xcafe_f00dn);
    expect(vcpu.run(b, 2)).toEqual({ reason: 'HLT', index: 2 });
    expect(vcpu.run(b, 3)).toEqual({ reason: 'end' });
    expect(b.value(1)).toBe(0xcafe_f00dn);
    expect(vcpu.exits).toEqual({ IO: 2, HLT: 1, EPT_VIOLATION: 1 });
    expect(vcpu.stats).toMatchObject({ vmExits: 4, handled: 1, pagesBacked: 1 });
  });

  it('charges exits and page work on top of the core\'s cycles', async () => {
    const { vcpu, b } = await setup('nested', { exit: 1000, pageAlloc: 70, pageZero: 30 });
    for (let p = 0n; p < 8n; p++) b.store(VA + p * 4096n, p);
    b.out(0x80, 1n).hlt();
    const exits = runAll(vcpu, b);
    expect(exits.map((x) => x.reason)).toEqual(['IO', 'HLT']);
    expect(vcpu.stats.hvCycles).toBe(10 * 1000 + 8 * 100);
    expect(vcpu.cycles()).toBe(vcpu.cpu.cycles() + 10 * 1000 + 8 * 100);
    const c = vcpu.counters();
    expect(c).toMatchObject({ exit_EPT_VIOLATION: 8, exit_IO: 1, exit_HLT: 1, vmExits: 10, pagesBacked: 8 });
    expect(c.cycles).toBe(c.coreCycles + 10_800);
    vcpu.resetCounters();
    expect(vcpu.cycles()).toBe(0);
    expect(vcpu.exits).toEqual({});
  });

  it('uses ~1500 cycles per exit by default', async () => {
    const { vcpu, b } = await setup('nested');
    b.hlt();
    vcpu.run(b);
    expect(vcpu.stats.hvCycles).toBe(1500);
  });

  it('does not charge a guest page fault as a VM exit in nested mode, but does in shadow mode', async () => {
    for (const mode of ['nested', 'shadow'] as const) {
      const { vcpu, b } = await setup(mode, { exit: 1000, pageAlloc: 0, pageZero: 0, shadowFill: 0 });
      b.load(VA + 0x100_0000n); // unmapped in the guest's tables
      const x = vcpu.run(b);
      expect(x).toMatchObject({ reason: 'PF', index: 0, errorCode: 0, cr2: VA + 0x100_0000n });
      expect(vcpu.exits.PF).toBe(1);
      expect(vcpu.stats.vmExits).toBe(mode === 'shadow' ? 1 : 0);
    }
  });

  it('counts shadow exits (hidden faults, CR3 loads, INVLPG) and charges their work', async () => {
    const costs = { exit: 1000, pageAlloc: 0, pageZero: 0, shadowFill: 10, cr3Emulation: 1, ptWriteEmulation: 100 };
    const { vcpu, b } = await setup('shadow', costs);
    const cr3 = vcpu.guestRegisters().cr3;
    b.store(VA, 1n).movCr3(cr3).invlpg(VA).load(VA);
    expect(vcpu.run(b)).toEqual({ reason: 'end' });
    const sh = vcpu.shadow!.stats;
    expect(vcpu.exits.CR3).toBe(1);
    expect(vcpu.exits.INVLPG).toBe(1);
    expect(vcpu.exits.PF).toBe(sh.hiddenFaults + sh.emulated + sh.ptWritesEmulated);
    expect(vcpu.stats.vmExits).toBe(vcpu.exits.PF + 2);
    expect(vcpu.stats.hvCycles).toBe(vcpu.stats.vmExits * 1000 + sh.hiddenFaults * 10 + 2 * 1 + (sh.emulated + sh.ptWritesEmulated) * 100);
  });

  it('charges nothing to a native VM (no hypervisor involvement)', async () => {
    const hv = await Hypervisor.create({ hostMemoryBytes: 64 * MiB });
    const vm = hv.createVm({ memoryBytes: 32 * MiB, mode: 'native' });
    const pt = guestTables(vm);
    pt.map(VA, DATA);
    boot(vm.vcpus[0], pt.root);
    const b = hv.machine.createBatch(4).store(VA, 1n).hlt();
    expect(vm.vcpus[0].run(b)).toEqual({ reason: 'HLT', index: 1 });
    expect(vm.vcpus[0].stats.hvCycles).toBe(0);
    expect(vm.vcpus[0].cycles()).toBe(vm.vcpus[0].cpu.cycles());
  });

  it('keeps counters per vCPU', async () => {
    const hv = await Hypervisor.create({ hostMemoryBytes: 64 * MiB });
    const vm = hv.createVm({ memoryBytes: 32 * MiB, mode: 'nested', vcpus: 2 });
    const pt = guestTables(vm);
    pt.mapRange(VA, DATA, 4 * 4096);
    for (const v of vm.vcpus) boot(v, pt.root);
    expect(new Set(vm.vcpus.map((v) => v.vpid)).size).toBe(2);
    const b = hv.machine.createBatch(8).store(VA, 1n).hlt();
    vm.vcpus[0].run(b);
    vm.vcpus[1].run(b);  // the page is backed already: only the HLT
    expect(vm.vcpus[0].exits).toEqual({ EPT_VIOLATION: 1, HLT: 1 });
    expect(vm.vcpus[1].exits).toEqual({ HLT: 1 });
  });
});

// Guards (issue 9, "every field of every exit in all three modes"): a shadow vCPU turned
// a refused in-VM gpa (a ballooned frame, a guest page table in one) into WRITE_PROTECT,
// where a nested vCPU reports EPT_VIOLATION with the qualification and the p2m word.
describe('a refused in-VM gpa gives the same exit under shadow and nested paging', () => {
  for (const what of ['data page', 'guest page table'] as const) {
    it(`ballooned ${what}`, async () => {
      const out: unknown[] = [];
      for (const mode of ['nested', 'shadow'] as const) {
        const { hv, vm, vcpu, b } = await setup(mode);
        const gmem = vm.memory.asPhysicalMemory();
        // A second guest address space whose PT lives in gfn 0x1f0: balloon that frame, or the data frame.
        const pt = guestTables(vm, 0x1ed000n, 0x1f1000n);
        pt.map(VA, DATA, 4096);
        const ptGpa = pt.entryAddr(VA, 1) & ~0xfffn;
        const gfn = Number((what === 'data page' ? DATA : ptGpa) >> 12n);
        void gmem.read64(BigInt(gfn) << 12n);
        const h = vm.p2m.unmap(gfn as never, 0x1000_0000 /* P2M.BALLOONED */);
        if (h !== null) hv.frames.free(h, vm.id);
        vcpu.setRegisters({ cr3: pt.root });
        b.clear().load(VA + 0x18n, 8);
        out.push(vcpu.run(b));
      }
      const q = (what === 'data page' ? 1 | (1 << 8) : 3) | (1 << 7); // read (+write: nested A/D on), GLA valid, final for data
      const gpa = what === 'data page' ? DATA + 0x18n : 0x1f0000n + ((VA >> 12n) & 511n) * 8n;
      const nested = { reason: 'EPT_VIOLATION', index: 0, gpa, gva: VA + 0x18n, qualification: q, p2m: 0x1000_0000 };
      expect(out[0]).toEqual(nested);
      // The shadow MMU's walker runs without EPT A/D: its paging-structure access is a read.
      expect(out[1]).toEqual(what === 'data page' ? nested : { ...nested, qualification: 1 | (1 << 7) });
    });
  }
});
