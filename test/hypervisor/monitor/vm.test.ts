// VMs on the hypervisor: first-touch backing in nested mode, exits for gpas outside the
// VM, out-of-frames, zeroing across VMs, large EPT pages, invalidation after p2m changes,
// native placement, shadow mode through the same run loop, teardown accounting.
import { describe, it, expect } from 'vitest';
import { PFEC, type Gfn, type Hfn } from '../../../src/index.js';
import { Hypervisor, HV_OWNER, P2M } from '../../../src/hypervisor/index.js';
import { guestTables, boot, runAll } from '../../helpers/guest.js';

const MiB = 2 ** 20;
const VA = 0x4000_0000n;       // guest-virtual base of the data mapping
const DATA = 0x100_0000n;      // its guest-physical base (16 MiB)

async function nestedVm(vmBytes = 32 * MiB, hostBytes = 64 * MiB) {
  const hv = await Hypervisor.create({ hostMemoryBytes: hostBytes });
  const vm = hv.createVm({ memoryBytes: vmBytes, mode: 'nested' });
  return { hv, vm, vcpu: vm.vcpus[0] };
}

describe('nested mode: demand backing', () => {
  it('backs exactly the pages the guest touches, one EPT violation each, zeroed', async () => {
    const { hv, vm, vcpu } = await nestedVm();
    const pt = guestTables(vm);
    pt.mapRange(VA, DATA, 4 * MiB);                  // 1024 pages mapped, none backed
    const tableFrames = vm.p2m.backed;               // the guest's page tables (host-written)
    expect(hv.frames.usedBy(vm.id)).toBe(tableFrames);
    boot(vcpu, pt.root);
    const pages = [3, 700, 5, 1023, 3, 0, 700, 512];
    const b = hv.machine.createBatch(64);
    for (const p of pages) b.load(VA + BigInt(p) * 4096n + 8n).store(VA + BigInt(p) * 4096n, BigInt(p) + 1n);
    expect(vcpu.run(b)).toEqual({ reason: 'end' });
    const touched = new Set(pages).size;
    expect(vcpu.stats.pagesBacked).toBe(touched);
    expect(vcpu.exits.EPT_VIOLATION).toBe(touched);
    expect(hv.frames.usedBy(vm.id)).toBe(tableFrames + touched);
    expect(vm.p2m.backed).toBe(tableFrames + touched);
    for (const p of pages) expect(vm.memory.read64(DATA + BigInt(p) * 4096n)).toBe(BigInt(p) + 1n);
    expect(pages.map((_, i) => b.value(2 * i))).toEqual(pages.map(() => 0n)); // fresh pages read as zero
    // Each backed gfn maps to a frame the VM owns, through an RWX 4 KiB EPT leaf.
    for (const p of new Set(pages)) {
      const gfn = Number((DATA >> 12n) + BigInt(p)) as Gfn;
      const e = vm.ept!.lookup(gfn)!;
      expect(e).toMatchObject({ hfn: vm.p2m.lookup(gfn), rights: 7n, size: 4096 });
      expect(hv.frames.ownerOf(e.hfn)).toBe(vm.id);
    }
  });

  it('backs both pages of an access that crosses a page boundary, then completes it', async () => {
    const { hv, vm, vcpu } = await nestedVm();
    const pt = guestTables(vm);
    pt.mapRange(VA, DATA, 2 * 4096);
    boot(vcpu, pt.root);
    const b = hv.machine.createBatch(2).store(VA + 0xffcn, 0x1122_3344_5566_7788n);
    expect(vcpu.run(b)).toEqual({ reason: 'end' });
    expect(vcpu.stats.pagesBacked).toBe(2);
    expect(vm.memory.read64(DATA + 0xffcn)).toBe(0x1122_3344_5566_7788n);
    expect(vm.memory.read(DATA + 0xffcn, 8)).toEqual(Uint8Array.of(0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11));
  });

  it('backs a guest page-table page on first touch by the walk (a paging-structure access)', async () => {
    const { hv, vm, vcpu } = await nestedVm();
    boot(vcpu, 0x5000n);                             // CR3 → a never-touched gfn: all zeroes
    const b = hv.machine.createBatch(4).load(VA);
    expect(vcpu.run(b)).toMatchObject({ reason: 'PF', index: 0, errorCode: 0, cr2: VA });
    expect(vcpu.stats.pagesBacked).toBe(1);
    expect(vm.p2m.lookup(5 as Gfn)).not.toBeNull();
    expect(vcpu.stats.vmExits).toBe(1);              // the EPT violation; the guest #PF is no VM exit
  });

  it('returns MMIO exits for gpas beyond the VM (data access and page-walk reference)', async () => {
    const { hv, vm, vcpu } = await nestedVm(16 * MiB);
    const pt = guestTables(vm);
    pt.map(VA, 0x200_0000n);                          // gpa 32 MiB: outside a 16 MiB VM
    boot(vcpu, pt.root);
    const b = hv.machine.createBatch(4).store(VA + 16n, 5n);
    expect(vcpu.run(b)).toMatchObject({ reason: 'MMIO', index: 0, gpa: 0x200_0010n, gva: VA + 16n, write: true, final: true });
    vm.memory.write64(pt.entryAddr(VA, 2), 0x400_0000n | 3n); // PDE → a "page table" at gpa 64 MiB
    vcpu.cpu.flushTlb();
    const x = vcpu.run(b.clear().load(VA));
    expect(x).toMatchObject({ reason: 'MMIO', gpa: 0x400_0000n, write: false, final: false });
    expect(hv.frames.usedBy(vm.id)).toBe(vm.p2m.backed);
  });

  it('reports OUT_OF_FRAMES, and resumes once frames are freed', async () => {
    const hv = await Hypervisor.create({ hostMemoryBytes: 2 * MiB, hypervisorBytes: 256 * 1024 });
    const big = hv.createVm({ memoryBytes: 8 * MiB, mode: 'nested' }); // overcommitted
    const hog = hv.createVm({ memoryBytes: 2 * MiB, mode: 'nested' });
    const pt = guestTables(big, 0x1000n, 0x10000n);
    pt.mapRange(VA, 0x10_0000n, 4 * MiB);
    const vcpu = big.vcpus[0];
    boot(vcpu, pt.root);
    hog.prefault(0n, 2n * 1024n * 1024n - 4096n * 100n); // leave the big VM only a few frames
    const b = hv.machine.createBatch(512);
    for (let p = 0n; p < 200n; p++) b.store(VA + p * 4096n, p);
    const x = vcpu.run(b);
    expect(x.reason).toBe('OUT_OF_FRAMES');
    if (x.reason !== 'OUT_OF_FRAMES') return;
    expect(hv.frames.counts().vmFree).toBe(0);
    expect(x.pool).toBe('vm');
    expect(x.gpa).toBe(0x10_0000n + BigInt(x.index) * 4096n);
    hv.destroyVm(hog);
    expect(vcpu.run(b, x.index)).toEqual({ reason: 'end' });
    for (let p = 0n; p < 200n; p += 37n) expect(big.memory.read64(0x10_0000n + p * 4096n)).toBe(p);
  });

  it('reports an empty hypervisor pool (no EPT table) and leaves the p2m unchanged', async () => {
    const hv = await Hypervisor.create({ hostMemoryBytes: 4 * MiB, hypervisorBytes: 4 * 4096 });
    const vm = hv.createVm({ memoryBytes: 64 * MiB, mode: 'nested' });
    const pt = guestTables(vm, 0x1000n, 0x10000n);  // EPT: root, PDPT, PD, PT = the whole pool
    pt.map(VA, 0x200_0000n);                        // data at gpa 32 MiB needs another EPT table
    expect(hv.counts().hypervisorFree).toBe(0);
    const vcpu = vm.vcpus[0];
    boot(vcpu, pt.root);
    const used = hv.frames.usedBy(vm.id);
    const x = vcpu.run(hv.machine.createBatch(2).store(VA, 1n));
    expect(x).toEqual({ reason: 'OUT_OF_FRAMES', index: 0, pool: 'hypervisor', gpa: 0x200_0000n });
    expect(vm.p2m.raw(0x2000 as Gfn)).toBe(0);       // rolled back: still unbacked
    expect(hv.frames.usedBy(vm.id)).toBe(used);
  });

  it('hands a destroyed VM\'s frames to the next VM zeroed; teardown returns every frame', async () => {
    const hv = await Hypervisor.create({ hostMemoryBytes: 16 * MiB });
    const before = hv.counts();
    const a = hv.createVm({ memoryBytes: 4 * MiB, mode: 'nested' });
    a.prefault(0n, 4n * BigInt(MiB));
    a.memory.fill(0n, 0xa5, 4 * MiB);
    const aFrames = new Set<number>();
    a.p2m.forEach((_g, w) => aFrames.add(w & 0xffffff), P2M.PRESENT, P2M.PRESENT);
    hv.destroyVm(a);
    expect(hv.counts()).toEqual(before);
    expect(() => a.vcpus[0].run(hv.machine.createBatch(1).hlt())).toThrow(/destroyed/);
    const b = hv.createVm({ memoryBytes: 4 * MiB, mode: 'nested' });
    b.prefault(0n, 4n * BigInt(MiB));
    let reused = 0;
    b.p2m.forEach((_g, w) => { if (aFrames.has(w & 0xffffff)) reused++; }, P2M.PRESENT, P2M.PRESENT);
    expect(reused).toBe(1024);
    expect(b.memory.read(0n, 4 * MiB).every((x) => x === 0)).toBe(true);
  });

  it('prefaults with 2 MiB EPT pages and coalesces contiguous 4 KiB backing', async () => {
    const { hv, vm, vcpu } = await nestedVm();
    expect(vm.prefault(0x40_0000n, 0x40_0000n, 0x200000)).toBe(2);
    expect(vm.ept!.lookup(0x4ab as Gfn)).toMatchObject({ size: 0x200000, level: 2 });
    expect(vm.ept!.lookup(0x600 as Gfn)).toMatchObject({ size: 0x200000 });
    // Guest access through the large EPT page causes no exit.
    const pt = guestTables(vm);
    pt.map(VA, 0x40_0000n, 0x200000);
    boot(vcpu, pt.root);
    const violations = vcpu.exits.EPT_VIOLATION ?? 0;
    expect(vcpu.run(hv.machine.createBatch(2).store(VA + 0x1234n, 9n).load(VA + 0x1234n))).toEqual({ reason: 'end' });
    expect(vcpu.exits.EPT_VIOLATION ?? 0).toBe(violations);
  });

  it('coalesces 4 KiB backing that happens to be contiguous and aligned into a 2 MiB EPT page', async () => {
    const { vm } = await nestedVm();
    vm.prefault(0x20_0000n, 0x20_0000n);            // a fresh pool hands out hfn 0, 1, 2, ...
    expect(vm.p2m.lookup(0x200 as Gfn)).toBe(0);
    expect(vm.ept!.lookup(0x200 as Gfn)!.size).toBe(4096);
    const tables = vm.stats.tableFrames;
    expect(vm.coalesce()).toBe(1);
    expect(vm.ept!.lookup(0x3ff as Gfn)).toMatchObject({ size: 0x200000, hfn: 0x1ff });
    expect(vm.stats.tableFrames).toBe(tables - 1);  // the page table went back
    vm.p2m.setState(0x234 as Gfn, P2M.WRITE_PROTECTED); // one page changes: the leaf splits again
    expect(vm.ept!.lookup(0x234 as Gfn)).toMatchObject({ size: 4096, rights: 5n });
    expect(vm.ept!.lookup(0x235 as Gfn)).toMatchObject({ size: 4096, rights: 7n, hfn: 0x35 });
  });

  it('invalidates after a p2m change: the guest sees the new (zeroed) frame, not a stale one', async () => {
    const { hv, vm, vcpu } = await nestedVm();
    const pt = guestTables(vm);
    pt.map(VA, DATA);
    boot(vcpu, pt.root);
    const b = hv.machine.createBatch(4).store(VA, 0x1234n).load(VA);
    expect(vcpu.run(b)).toEqual({ reason: 'end' });
    const gfn = Number(DATA >> 12n) as Gfn;
    const old = vm.p2m.unmap(gfn)!;               // the swapper's move, without its disk
    hv.frames.free(old as Hfn, vm.id);
    expect(vm.stats.invepts).toBe(1);
    const violations = vcpu.exits.EPT_VIOLATION;
    expect(vcpu.run(b.clear().load(VA))).toEqual({ reason: 'end' });
    expect(b.value(0)).toBe(0n);                   // a stale TLB entry would still read 0x1234
    expect(vcpu.exits.EPT_VIOLATION).toBe(violations + 1);
  });

  it('turns a write to a write-protected gfn into a WRITE_PROTECT exit (reads still work)', async () => {
    const { hv, vm, vcpu } = await nestedVm();
    const pt = guestTables(vm);
    pt.map(VA, DATA);
    vm.memory.write64(DATA, 77n);
    vm.p2m.setState(Number(DATA >> 12n) as Gfn, P2M.WRITE_PROTECTED);
    boot(vcpu, pt.root);
    const b = hv.machine.createBatch(4).load(VA).store(VA, 1n);
    expect(vcpu.run(b)).toMatchObject({ reason: 'WRITE_PROTECT', index: 1, gpa: DATA, gfn: Number(DATA >> 12n) });
    expect(b.value(0)).toBe(77n);
    vm.p2m.setState(Number(DATA >> 12n) as Gfn, 0, P2M.WRITE_PROTECTED);
    expect(vcpu.run(b, 1)).toEqual({ reason: 'end' });
    expect(vm.memory.read64(DATA)).toBe(1n);
  });
});

describe('native mode', () => {
  it('owns host frames [0, n) with gpa = hpa, and must be the only VM', async () => {
    const hv = await Hypervisor.create({ hostMemoryBytes: 32 * MiB });
    const vm = hv.createVm({ memoryBytes: 16 * MiB, mode: 'native' });
    expect(hv.frames.usedBy(vm.id)).toBe(4096);
    expect(vm.p2m.lookup(1234 as Gfn)).toBe(1234);
    expect(() => hv.createVm({ memoryBytes: MiB, mode: 'nested' })).toThrow(/native VM is running/);
    const pt = guestTables(vm);
    pt.map(VA, DATA);
    pt.map(VA + 0x1000n, 0x1_0000_0000n);           // beyond host memory
    boot(vm.vcpus[0], pt.root);
    const b = hv.machine.createBatch(4).store(VA + 8n, 42n).load(VA + 0x1000n);
    expect(vm.vcpus[0].run(b)).toMatchObject({ reason: 'MMIO', index: 1, gpa: 0x1_0000_0000n, write: false });
    expect(hv.machine.memory.read64(DATA + 8n)).toBe(42n); // hpa = gpa
    expect(vm.vcpus[0].stats.vmExits).toBe(0);
    hv.destroyVm(vm);
    expect(hv.counts().byVm).toEqual({});
    expect(() => hv.createVm({ memoryBytes: 31 * MiB, mode: 'native' })).toThrow(/not free/); // reaches the hypervisor region
  });

  it('cannot join other VMs', async () => {
    const hv = await Hypervisor.create({ hostMemoryBytes: 32 * MiB });
    hv.createVm({ memoryBytes: MiB, mode: 'nested' });
    expect(() => hv.createVm({ memoryBytes: MiB, mode: 'native' })).toThrow(/only VM/);
  });
});

describe('shadow mode through the hypervisor', () => {
  it('runs on shadow tables from hypervisor frames, backs on demand, reflects guest faults', async () => {
    const hv = await Hypervisor.create({ hostMemoryBytes: 64 * MiB });
    const vm = hv.createVm({ memoryBytes: 32 * MiB, mode: 'shadow' });
    const vcpu = vm.vcpus[0];
    const pt = guestTables(vm);
    pt.mapRange(VA, DATA, 64 * 4096);
    pt.map(VA + 0x100_0000n, DATA, 4096, { write: false });
    boot(vcpu, pt.root);
    expect(vcpu.guestRegisters().cr3).toBe(pt.root);
    expect(vcpu.cpu.getRegisters().cr3).not.toBe(pt.root);  // the shadow root, an hpa
    expect(hv.frames.ownerOf(Number(vcpu.cpu.getRegisters().cr3 >> 12n) as Hfn)).toBe(HV_OWNER);
    const b = hv.machine.createBatch(64);
    for (let p = 0n; p < 10n; p++) b.store(VA + p * 4096n, p + 100n);
    b.load(VA + 0x100_0000n).store(VA + 0x100_0000n, 1n).load(VA + 3n * 4096n);
    const exits = runAll(vcpu, b);
    expect(exits).toEqual([{ reason: 'PF', index: 11, errorCode: PFEC.P | PFEC.W, cr2: VA + 0x100_0000n }]);
    expect(b.value(10)).toBe(100n);
    expect(b.value(12)).toBe(103n);
    expect(vcpu.stats.pagesBacked).toBe(10);
    expect(vm.stats.tableFrames).toBeGreaterThan(0);
    // Guest page-table pages are marked in the p2m for the shadow MMU.
    expect(vm.p2m.state(Number(pt.root >> 12n) as Gfn) & P2M.PAGE_TABLE).toBe(P2M.PAGE_TABLE);
    expect(hv.frames.usedBy(HV_OWNER)).toBe(vm.stats.tableFrames); // EPT (walker) + shadow tables
    hv.destroyVm(vm);
    expect(hv.frames.usedBy(HV_OWNER)).toBe(0);
    expect(hv.counts().byVm).toEqual({});
  });

  it('zaps shadows when the host writes a guest page table (the guest then sees the new entry)', async () => {
    const hv = await Hypervisor.create({ hostMemoryBytes: 64 * MiB });
    const vm = hv.createVm({ memoryBytes: 32 * MiB, mode: 'shadow' });
    const vcpu = vm.vcpus[0];
    const pt = guestTables(vm);
    pt.map(VA, DATA);
    vm.memory.write64(DATA + 0x5000n, 55n);
    boot(vcpu, pt.root);
    const b = hv.machine.createBatch(4).load(VA);
    runAll(vcpu, b);
    pt.map(VA, DATA + 0x5000n);                    // host-side edit of the guest PTE
    vcpu.cpu.flushTlb();                           // as a guest INVLPG would
    runAll(vcpu, b.clear().load(VA));
    expect(b.value(0)).toBe(55n);
    expect(vm.stats.shadowZaps).toBe(1);
  });

  it('allows one vCPU per shadow VM', async () => {
    const hv = await Hypervisor.create({ hostMemoryBytes: 16 * MiB });
    expect(() => hv.createVm({ memoryBytes: MiB, mode: 'shadow', vcpus: 2 })).toThrow(/one vCPU/);
  });
});
