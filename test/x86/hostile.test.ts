// Hostile guest code: random bytes as code at CPL0 and CPL3, random IDT/GDT/TSS contents,
// random page tables, random answers to port I/O, under nested and shadow paging. The host
// must never throw and the Wasm never trap: every run ends in a guest exception delivered
// inside the guest, an exit, BUDGET or SHUTDOWN. A second VM runs a checksummed workload
// beside it; at the end every one of its bytes is right and the host's frame accounting
// is exact. Seeded: HOSTILE_SEED picks another seed, HOSTILE_ROUNDS the length.

import { describe, it, expect } from 'vitest';
import { CR0, CR4, EFER } from '../../src/index.js';
import { Hypervisor, type Vm, type VmMode } from '../../src/hypervisor/index.js';
import { Rng } from '../../src/util/rng.js';
import { guestTables } from '../helpers/guest.js';
import { asm, HAVE_AS } from './asm.js';

const SEED = Number(process.env.HOSTILE_SEED ?? 20261130);
const ROUNDS = Number(process.env.HOSTILE_ROUNDS ?? 150);
const MiB = 2 ** 20;
const FUZZ_BYTES = 4 * MiB;

const r64 = (rng: Rng) => (BigInt(rng.u32()) << 32n) | BigInt(rng.u32());

/** Fills the fuzz VM's memory with random bytes, some of it shaped like tables and code. */
function randomize(vm: Vm, rng: Rng): void {
  const mem = vm.memory;
  for (let p = 0n; p < BigInt(FUZZ_BYTES); p += 4096n) {
    if (p >= SANE && p < SANE + 0x10_0000n) continue; // the sane tables (see saneTables)
    if (rng.below(4) === 0) continue; // leave some pages untouched (unbacked until used)
    const page = new Uint8Array(4096);
    for (let i = 0; i < 4096; i += 4) new DataView(page.buffer).setUint32(i, rng.u32(), true);
    // Sprinkle plausible present page-table entries and gates.
    for (let k = 0; k < 16; k++) {
      const e = (BigInt(rng.below(FUZZ_BYTES * 2)) & ~0xfffn) | BigInt(rng.u32() & 0xfff) | 1n;
      new DataView(page.buffer).setBigUint64(rng.below(512) * 8, e, true);
    }
    mem.write(p, page);
  }
}

/** Valid tables in [SANE, SANE+1 MiB): identity map of 0..3 MiB (user pages), a GDT,
 * a TSS and an IDT whose gates point at random code, so rounds that use them run random
 * instructions long enough to exercise the ISA rather than triple-faulting at once. */
const SANE = 0x30_0000n;
function saneTables(vm: Vm, rng: Rng): bigint {
  const pt = guestTables(vm, SANE, SANE + 0x8_0000n);
  pt.mapRange(0n, 0n, 3 * MiB, 4096);
  const m = vm.memory, gdt = SANE + 0x8_0000n, tss = gdt + 0x100n, idt = gdt + 0x1000n;
  m.write64(gdt + 0x08n, 0x0020_9a00_0000_0000n); m.write64(gdt + 0x10n, 0x0000_9200_0000_0000n);
  m.write64(gdt + 0x20n, 0x0000_f200_0000_0000n); m.write64(gdt + 0x28n, 0x0020_fa00_0000_0000n);
  m.write64(gdt + 0x30n, 0x67n | ((tss & 0xff_ffffn) << 16n) | (0x89n << 40n));
  m.write64(tss + 4n, 0x2f_f000n); m.write64(tss + 0x24n, 0x2f_e000n);
  for (let v = 0; v < 256; v++) {
    const h = BigInt(rng.below(3 * MiB));
    const lo = (h & 0xffffn) | (8n << 16n) | (BigInt(rng.below(2)) << 32n) | (BigInt(0xe + rng.below(2)) << 40n) |
      (BigInt(rng.below(4)) << 45n) | (1n << 47n) | (((h >> 16n) & 0xffffn) << 48n);
    m.write64(idt + BigInt(v) * 16n, lo);
    m.write64(idt + BigInt(v) * 16n + 8n, 0n);
  }
  return pt.root;
}

function saneRegs(rng: Rng, root: bigint) {
  const cpl = rng.below(2) ? 3 : 0;
  return {
    cr0: CR0.PG | CR0.PE | CR0.WP, cr4: CR4.PAE, efer: EFER.LME | EFER.NXE | 1n, cr3: root, cpl,
    rip: BigInt(rng.below(3 * MiB)), rsp: BigInt(rng.below(3 * MiB)) & ~7n, rflags: BigInt(rng.u32() & 0x8d5) | 2n,
    rax: r64(rng), rbx: r64(rng), rcx: BigInt(rng.below(300)), rdx: r64(rng),
    rsi: BigInt(rng.below(3 * MiB)), rdi: BigInt(rng.below(3 * MiB)), rbp: BigInt(rng.below(3 * MiB)),
    cs: cpl === 3 ? 0x2bn : 0x8n, ss: cpl === 3 ? 0x23n : 0x10n,
    gdtrBase: SANE + 0x8_0000n, gdtrLimit: 0x3fn, idtrBase: SANE + 0x8_1000n, idtrLimit: 0xfffn,
    tr: 0x30n, trBase: SANE + 0x8_0100n, trLimit: 0x67n, lstar: BigInt(rng.below(3 * MiB)), star: (0x18n << 48n) | (8n << 32n),
  };
}

function randomRegs(rng: Rng) {
  const cpl = rng.below(2) ? 3 : 0;
  const low = () => BigInt(rng.below(FUZZ_BYTES * 2));
  const addr = () => (rng.below(8) === 0 ? r64(rng) : low());
  return {
    cr0: CR0.PG | CR0.PE | (rng.below(2) ? CR0.WP : 0n), cr4: CR4.PAE | (rng.below(2) ? CR4.SMEP : 0n),
    efer: EFER.LME | (rng.below(2) ? EFER.NXE : 0n) | 1n, cr3: low() & ~0xfffn, cpl,
    rip: addr(), rsp: addr(), rflags: BigInt(rng.u32() & 0x2cd5) | 2n,
    rax: r64(rng), rbx: r64(rng), rcx: BigInt(rng.below(64)), rdx: r64(rng), rsi: addr(), rdi: addr(),
    cs: BigInt(rng.below(0x40)), ss: BigInt(rng.below(0x40)),
    gdtrBase: addr(), gdtrLimit: BigInt(rng.below(0x1000)), idtrBase: addr(), idtrLimit: BigInt(rng.below(0x1000)),
    tr: BigInt(rng.below(0x40)), trBase: addr(), trLimit: BigInt(rng.below(0x200)),
    fsBase: addr(), gsBase: addr(), lstar: addr(), star: r64(rng),
  };
}

/** The well-behaved VM: sums a pattern it writes into 64 pages and reports it on port 0xe9. */
const GOOD_CODE = 0x20_0000n, GOOD_DATA = 0x40_0000n, GOOD_PAGES = 64;
function goodVm(hv: Hypervisor): Vm {
  const vm = hv.createVm({ memoryBytes: 16 * MiB, mode: 'nested' });
  const pt = guestTables(vm);
  pt.mapRange(0n, 0n, 8 * MiB, 4096, { user: false });
  vm.memory.write(GOOD_CODE, asm(`
    mov rsp, 0x300000
  0: mov rdi, ${GOOD_DATA}
    mov ecx, ${GOOD_PAGES * 512}
    xor ebx, ebx
  1: mov rax, rcx
    imul rax, rax, 0x1e3779b1
    mov [rdi + rcx * 8 - 8], rax
    add rbx, rax
    dec rcx
    jnz 1b
    mov ecx, ${GOOD_PAGES * 512}
    xor edx, edx
  2: add rdx, [rdi + rcx * 8 - 8]
    loop 2b
    mov eax, ebx
    out 0xe9, eax
    mov eax, edx
    out 0xe9, eax
    jmp 0b
  `, GOOD_CODE));
  vm.vcpus[0].setRegisters({ cr0: CR0.PG | CR0.PE | CR0.WP, cr3: pt.root, cr4: CR4.PAE, efer: EFER.LME | EFER.NXE, cpl: 0 });
  vm.vcpus[0].setRegisters({ rip: GOOD_CODE, cs: 8n, ss: 16n });
  return vm;
}

function expectedSum(): number {
  let s = 0n;
  for (let i = 1n; i <= BigInt(GOOD_PAGES * 512); i++) s += (i * 0x1e3779b1n) & ((1n << 64n) - 1n);
  return Number(s & 0xffff_ffffn);
}

describe.skipIf(!HAVE_AS)('hostile guest code', () => {
  for (const mode of ['nested', 'shadow'] as VmMode[]) {
    it(`random code, tables and I/O under ${mode} paging: only exits, guest exceptions or SHUTDOWN; the neighbour is intact`, async () => {
      const rng = new Rng(SEED + (mode === 'shadow' ? 1 : 0));
      const hv = await Hypervisor.create({ hostMemoryBytes: 64 * MiB });
      const good = goodVm(hv);
      const bad = hv.createVm({ memoryBytes: FUZZ_BYTES, mode });
      const saneRoot = saneTables(bad, rng);
      const outcomes: Record<string, number> = {};
      const sums: number[] = [];
      const want = expectedSum();
      for (let round = 0; round < ROUNDS; round++) {
        if (round % 25 === 0) randomize(bad, rng);
        if (round % 50 === 49) saneTables(bad, rng); // new gate targets (the guest may have written over them)
        const v = bad.vcpus[0];
        v.setRegisters(rng.below(3) ? saneRegs(rng, saneRoot) : randomRegs(rng));
        v.cpu.setExceptionBitmap(0);
        for (let k = 0; k < 8; k++) {
          const x = v.run({ maxInstructions: 500 });
          outcomes[x.reason] = (outcomes[x.reason] ?? 0) + 1;
          expect(['IO', 'HLT', 'MMIO', 'SHUTDOWN', 'BUDGET', 'EPT_VIOLATION', 'EPT_MISCONFIG', 'OUT_OF_FRAMES', 'unsupported'])
            .toContain(x.reason);
          if (x.reason === 'IO' && x.direction === 'in') v.cpu.setIoData(r64(rng));
          if (x.reason === 'SHUTDOWN' || x.reason === 'MMIO' || x.reason === 'HLT' || x.reason === 'unsupported') {
            v.setRegisters(saneRegs(rng, saneRoot));
          }
          if (x.reason === 'HLT' && rng.below(2)) v.cpu.injectInterrupt(16 + rng.below(240));
        }
        // The neighbour runs a slice every round.
        for (let k = 0; k < 4; k++) {
          const x = good.vcpus[0].run({ maxInstructions: 40_000 });
          if (x.reason === 'IO') sums.push(Number(x.value));
          else expect(x.reason).toBe('BUDGET');
        }
      }
      // The neighbour's results and memory are exact.
      expect(sums.length).toBeGreaterThan(4);
      for (const s of sums) expect(s).toBe(want);
      for (let i = 1; i <= GOOD_PAGES * 512; i += 97) {
        expect(good.memory.read64(GOOD_DATA + BigInt(i - 1) * 8n)).toBe(BigInt.asUintN(64, BigInt(i) * 0x1e3779b1n));
      }
      // Frame accounting: every frame is free or owned, and the fuzzed VM's all come back.
      const before = hv.counts();
      expect(before.free + before.hypervisor + Object.values(before.byVm).reduce((a, b) => a + b, 0)).toBe(before.total);
      hv.destroyVm(bad);
      const after = hv.counts();
      expect(Object.keys(after.byVm)).toEqual([String(good.id)]);
      expect(after.byVm[good.id]).toBe(before.byVm[good.id]);
      expect(after.free + after.hypervisor + after.byVm[good.id]).toBe(after.total);
      // Something of everything happened.
      expect(Object.keys(outcomes).length).toBeGreaterThanOrEqual(3);
    }, 120_000);
  }
});
