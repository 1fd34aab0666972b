// Every per-vCPU setting that changes a translation must reach every walker acting for
// the vCPU: the core's own walk (native: the guest's tables; nested: the 2-D walk;
// shadow: the shadow tables) and the shadow MMU's guest walker (ShadowMmu.walker, used
// for hidden faults and emulation). The settings: MAXPHYADDR (fixed at vCPU creation),
// CR0.WP, CR3, CR4.LA57/SMEP/SMAP/PKE, EFER.NXE, RFLAGS.AC, PKRU and CPL (registers).
// Each case below is one access whose outcome depends on one setting; it must give the
// same exit, field by field, under native, shadow and nested paging, and that exit is
// the SDM's (error codes from SDM Vol. 3A §4.7).
import { describe, it, expect } from 'vitest';
import { Hypervisor, type VcpuExit } from '../../../../src/hypervisor/index.js';
import { CR0, CR4, EFER, RFLAGS, PTE, PFEC } from '../../../../src/core/bits.js';
import { PageTableBuilder } from '../../../helpers/pagetable.js';

const VA = 0x40_0000n, DATA = 0x20_0000n;
const MODES = ['native', 'shadow', 'nested'] as const;
const LONG = { cr0: CR0.PG | CR0.WP, cr4: CR4.PAE, efer: EFER.LME | EFER.NXE, rflags: 2n, pkru: 0, cpl: 0 };

interface Case {
  name: string;
  maxPhysAddr?: number;
  regs?: Partial<typeof LONG>;
  la57?: boolean;
  va?: bigint;
  leaf?: { w?: boolean; u?: boolean; nx?: boolean; pkey?: number; set?: bigint };
  op: 'load' | 'store' | 'fetch';
  user?: boolean;
  want: { errorCode: number } | 'end';
}

const cases: Case[] = [
  { name: 'MAXPHYADDR 46: PTE bit 47 is reserved (P|U|RSVD = 0xd)', maxPhysAddr: 46, leaf: { set: 1n << 47n }, op: 'load', user: true,
    want: { errorCode: PFEC.P | PFEC.U | PFEC.RSVD } },
  { name: 'MAXPHYADDR 52: the same bit 47 is an address bit (outside the VM: MMIO, not #PF)', maxPhysAddr: 52, leaf: { set: 1n << 47n }, op: 'load',
    want: 'end' /* replaced below: MMIO */ },
  { name: 'CR0.WP=1: supervisor write to a read-only page faults', leaf: { w: false }, op: 'store', want: { errorCode: PFEC.P | PFEC.W } },
  { name: 'CR0.WP=0: the same write is allowed', regs: { cr0: CR0.PG }, leaf: { w: false }, op: 'store', want: 'end' },
  { name: 'CR4.SMEP: supervisor fetch from a user page', regs: { cr4: CR4.PAE | CR4.SMEP }, op: 'fetch', want: { errorCode: PFEC.P | PFEC.ID } },
  { name: 'CR4.SMAP, RFLAGS.AC=0: supervisor read of a user page', regs: { cr4: CR4.PAE | CR4.SMAP }, op: 'load', want: { errorCode: PFEC.P } },
  { name: 'CR4.SMAP, RFLAGS.AC=1: allowed', regs: { cr4: CR4.PAE | CR4.SMAP, rflags: 2n | RFLAGS.AC }, op: 'load', want: 'end' },
  { name: 'CR4.PKE, PKRU.AD for key 1: user read', regs: { cr4: CR4.PAE | CR4.PKE, pkru: 0b0100 }, leaf: { pkey: 1 }, op: 'load', user: true,
    want: { errorCode: PFEC.P | PFEC.U | PFEC.PK } },
  { name: 'EFER.NXE=0: XD is reserved', regs: { efer: EFER.LME }, leaf: { nx: true }, op: 'load', want: { errorCode: PFEC.P | PFEC.RSVD } },
  { name: 'EFER.NXE=1: fetch from an XD page', leaf: { nx: true }, op: 'fetch', want: { errorCode: PFEC.P | PFEC.ID } },
  { name: 'CPL 3: access to a supervisor page', regs: { cpl: 3 }, leaf: { u: false }, op: 'load', want: { errorCode: PFEC.P | PFEC.U } },
  { name: 'CR4.LA57: a 5-level walk (va bit 48 set is canonical and mapped)', la57: true, regs: { cr4: CR4.PAE | CR4.LA57 },
    va: 0x1_0000_0040_0000n, op: 'store', want: 'end' },
];

async function run(mode: typeof MODES[number], c: Case): Promise<VcpuExit> {
  const hv = await Hypervisor.create({ hostMemoryBytes: 24 * 2 ** 20, hypervisorBytes: 8 * 2 ** 20 });
  const vm = hv.createVm({ memoryBytes: 16 * 2 ** 20, mode, cpu: { maxPhysAddr: c.maxPhysAddr ?? 52 } });
  const gmem = vm.memory.asPhysicalMemory();
  const pt = new PageTableBuilder(gmem, { levels: c.la57 ? 5 : 4, tableBase: 0x10_0000n, tableLimit: 0x20_0000n });
  const va = c.va ?? VA;
  const path = pt.map(va, DATA, { w: c.leaf?.w, u: c.leaf?.u ?? true, nx: c.leaf?.nx, pkey: c.leaf?.pkey });
  const leafAt = path[path.length - 1]!;
  gmem.write64(leafAt, gmem.read64(leafAt) | (c.leaf?.set ?? 0n));
  vm.vcpus[0].setRegisters({ ...LONG, ...c.regs, cr3: pt.root });
  const b = hv.machine.createBatch(1);
  const o = { user: c.user };
  if (c.op === 'store') b.store(va, 1n, 1, o); else if (c.op === 'fetch') b.fetch(va, 1, o); else b.load(va, 1, o);
  return vm.vcpus[0].run(b);
}

describe('per-vCPU settings reach every walker (native, shadow, nested)', () => {
  for (const c of cases) {
    it(c.name, async () => {
      const va = c.va ?? VA;
      let want: VcpuExit = c.want === 'end' ? { reason: 'end' } : { reason: 'PF', index: 0, errorCode: c.want.errorCode, cr2: va } as VcpuExit;
      if (c.maxPhysAddr === 52 && c.leaf?.set) { // gpa 0x8000_0020_0000 is outside the 16 MiB VM
        want = { reason: 'MMIO', index: 0, gpa: DATA | (1n << 47n), gva: va, write: false, final: true } as VcpuExit;
      }
      for (const mode of MODES) {
        const got = await run(mode, c);
        // Natively gpa = hpa, and hpa 2^47 is outside host memory: the same MMIO exit.
        const w = want;
        expect(JSON.parse(JSON.stringify(got, (_k, v) => typeof v === 'bigint' ? v.toString(16) : v)), mode)
          .toEqual(JSON.parse(JSON.stringify(w, (_k, v) => typeof v === 'bigint' ? v.toString(16) : v)));
      }
    });
  }
});
