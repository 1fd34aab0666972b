// The interpreter's side of the differential test: a flat machine with the harness layout
// (layout.ts) mapped user-accessible at CPL 3, as Linux gives the native helper, and the
// exception bitmap set, so every fault exits with its vector instead of going through the IDT.
//
// An IDT is present only for INT n: Linux's gates 3, 4 and 0x80 have DPL 3 and all others
// DPL 0, so INT3 raises #BP and INT 0x21 #GP(0x21×8+2) in both worlds. The GDT is Linux's
// (x86-64 layout), so MOV to DS/ES/SS takes or refuses the same selectors.

import { Machine, PageTableBuilder, FrameBump, CR0, CR4, EFER, type Cpu } from '../../src/index.js';
import { CODE_BASE, DATA_BASE, DATA_SIZE, GS_BASE, GPR_NAMES, codeImage, CODE_SIZE } from './layout.js';
import type { Outcome } from './compare.js';

const CODE_PA = 0x10_0000n;
const DATA_PA = 0x10_4000n; // after the two code pages
const IDT_PA = 0x10_8000n;
const IDT_VA = 0x7000_0000n; // supervisor-only; no snippet goes near it
const GDT_PA = 0x10_9000n;
const GDT_VA = 0x7000_1000n;
const TABLES_PA = 0x20_0000n;
const CR0_AM = 1n << 18n; // Linux sets CR0.AM; with RFLAGS.AC = 0 it changes nothing
const DPL3_GATES = new Set([3, 4, 0x80]);

export interface Case { gpr: bigint[]; rflags: bigint; code: Uint8Array }

export class Interp {
  private constructor(private readonly m: Machine, private readonly cpu: Cpu, private readonly root: bigint) {}

  static async create(): Promise<Interp> {
    if (CODE_PA + BigInt(CODE_SIZE) > DATA_PA || DATA_PA + BigInt(DATA_SIZE) > IDT_PA) throw new Error('interpreter harness: physical regions overlap');
    const m = await Machine.create({ memoryBytes: 8 * 2 ** 20 });
    const pt = new PageTableBuilder(m.memory, new FrameBump(m.memory, TABLES_PA, TABLES_PA + 0x10_0000n));
    pt.mapRange(BigInt(CODE_BASE), CODE_PA, CODE_SIZE, 4096, { user: true, write: true });
    pt.mapRange(BigInt(DATA_BASE), DATA_PA, DATA_SIZE, 4096, { user: true, write: true, nx: true });
    pt.map(IDT_VA, IDT_PA, 4096, { user: false, write: false, nx: true });
    pt.map(GDT_VA, GDT_PA, 4096, { user: false, write: true, nx: true });
    writeIdt(m);
    writeGdt(m);
    const cpu = m.createCpu();
    cpu.setExceptionBitmap(0xffff_ffff);
    return new Interp(m, cpu, pt.root);
  }

  /** Runs one case from a fresh state and data image. */
  run(c: Case, image: Uint8Array, maxInstructions = 100_000): Outcome {
    this.m.memory.write(CODE_PA, codeImage(c.code));
    this.m.memory.write(DATA_PA, image);
    const regs: Record<string, bigint> = {};
    GPR_NAMES.forEach((n, i) => { regs[n] = c.gpr[i]; });
    this.cpu.setRegisters({
      ...regs, rip: BigInt(CODE_BASE), rflags: c.rflags, cpl: 3, cs: 0x33n, ss: 0x2bn, ds: 0n, es: 0n, fs: 0n, gs: 0n,
      fsBase: 0n, gsBase: BigInt(GS_BASE), idtrBase: IDT_VA, idtrLimit: 0xfffn, gdtrBase: GDT_VA, gdtrLimit: 0x7fn,
      cr0: CR0.PG | CR0.PE | CR0.WP | CR0_AM, cr3: this.root, cr4: CR4.PAE, efer: EFER.LME | EFER.NXE | 1n,
    });
    const exit = this.cpu.run({ maxInstructions });
    const r = this.cpu.getRegisters();
    const gpr = GPR_NAMES.map((n) => r[n]);
    const data = this.m.memory.read(DATA_PA, DATA_SIZE);
    const base = { gpr, rip: r.rip, rflags: r.rflags, data, errorCode: 0n, cr2: 0n };
    if (exit.reason !== 'EXCEPTION') return { ...base, status: 'exit', vector: -1, detail: exit.reason };
    const end = exit.vector === 6 && r.rip === BigInt(CODE_BASE + c.code.length);
    return { ...base, status: end ? 'end' : 'fault', vector: exit.vector, errorCode: BigInt(exit.errorCode ?? 0), cr2: exit.cr2 ?? 0n };
  }
}

/**
 * Linux's x86-64 GDT (arch/x86/include/asm/segment.h), limit 0x7F; 8-byte descriptors
 *   limit 15:0 | base 23:0 | access (P DPL S type) | G D/B L AVL limit 19:16 | base 31:24
 * 0x08 kernel code32, 0x10 kernel code64, 0x18 kernel data, 0x23 user code32, 0x2B user
 * data, 0x33 user code64, 0x40 TSS (16 bytes, busy); the rest (LDT, TLS, CPU/node) empty.
 */
function writeGdt(m: Machine): void {
  const d = [0n, 0x00cf9b000000ffffn, 0x00af9b000000ffffn, 0x00cf93000000ffffn, 0x00cffb000000ffffn,
    0x00cff3000000ffffn, 0x00affb000000ffffn, 0n, 0x00008b0000000067n, 0n];
  const gdt = new Uint8Array(128);
  const v = new DataView(gdt.buffer);
  d.forEach((x, i) => v.setBigUint64(i * 8, x, true));
  m.memory.write(GDT_PA, gdt);
}

/**
 * 64-bit interrupt gates, 16 bytes each:
 *   0–1 offset 15:0 | 2–3 selector | 4 IST | 5 P DPL(2) 0 type(4)=0xE | 6–7 offset 31:16 | 8–11 offset 63:32 | 12–15 0
 */
function writeIdt(m: Machine): void {
  const idt = new Uint8Array(4096);
  for (let v = 0; v < 256; v++) {
    const g = idt.subarray(v * 16, v * 16 + 16);
    g[2] = 0x10; // kernel code selector (never reached: every vector exits first)
    g[5] = 0x8e | (DPL3_GATES.has(v) ? 0x60 : 0);
  }
  m.memory.write(IDT_PA, idt);
}
