// Runs one guest program under native, nested (EPT) and shadow paging, each on its own
// machine, acting as the guest kernel: guest page faults are recorded and skipped.
// Guest memory is gpa [0, GUEST_BYTES), at hpa 0 natively and at GUEST_BASE otherwise.
import {
  Machine, PageTableBuilder, FrameBump, CR0, CR4, EFER, eptp, type Cpu, type PhysicalMemory,
  type AccessBatch, type BatchExit,
} from '../../src/index.js';
import { ShadowMmu } from '../../src/hypervisor/shadow.js';
import { Ept } from './ept.js';

export const GUEST_BYTES = 0x400_0000n;      // 64 MiB of guest memory
export const GUEST_BASE = 0x800_0000n;       // its hpa under nested/shadow
const EPT_AREA = 0x1800_0000n;               // hypervisor frames (EPT, shadow tables): 384 MiB ..
export const DMAP = 0xffff_8880_0000_0000n;  // the guest kernel's direct map of its memory
export type Mode = 'native' | 'nested' | 'shadow';

export function guestView(mem: PhysicalMemory, base: bigint): PhysicalMemory {
  const h = (gpa: bigint) => gpa + base;
  return {
    read64: (a: bigint) => mem.read64(h(a)), write64: (a: bigint, v: bigint) => mem.write64(h(a), v),
    fill: (a: bigint, b: number, n: number) => mem.fill(h(a), b, n),
    read: (a: bigint, n: number) => mem.read(h(a), n),
  } as unknown as PhysicalMemory;
}

export interface GuestRun {
  faults: { index: number; errorCode: number; cr2: bigint }[];
  loads: bigint[];
  memory: Uint8Array;
  exits: Record<string, number>;
  cpu: Cpu;
  shadow?: ShadowMmu;
}

export interface GuestSetup {
  /** Builds the guest's page tables in guest memory; returns CR3 values (address spaces). */
  build(gmem: PhysicalMemory): bigint[];
  regs?: { cr0?: bigint; cr4?: bigint; efer?: bigint; cpl?: number };
  /** Fills the program into the batch; may refer to the CR3 values. */
  program(b: AccessBatch, roots: bigint[]): void;
  tlb?: boolean;
}

export async function runGuest(mode: Mode, setup: GuestSetup): Promise<GuestRun> {
  const m = await Machine.create({ memoryBytes: 512 * 2 ** 20 });
  const base = mode === 'native' ? 0n : GUEST_BASE;
  const gmem = guestView(m.memory, base);
  const roots = setup.build(gmem);
  const cpu = m.createCpu(setup.tlb === false ? { tlb: false } : {});
  const regs = {
    cr0: setup.regs?.cr0 ?? CR0.PG | CR0.WP, cr3: roots[0], cr4: setup.regs?.cr4 ?? CR4.PAE,
    efer: setup.regs?.efer ?? EFER.LME | EFER.NXE, cpl: setup.regs?.cpl ?? 0,
  };
  const frames = new FrameBump(m.memory, EPT_AREA, EPT_AREA + 0x800_0000n);
  let shadow: ShadowMmu | undefined;
  if (mode !== 'native') {
    const ept = new Ept(m.memory, frames);
    ept.map(0n, GUEST_BASE, GUEST_BYTES, 0x200000n);
    if (mode === 'nested') {
      cpu.setRegisters(regs);
      cpu.setVmcs({ mode: 'nested', eptp: eptp(ept.root, 4, false), vpid: 1 });
    } else {
      shadow = new ShadowMmu(m, cpu, {
        allocTableFrame: () => frames.alloc(), freeTableFrame: () => {},
        walkerEptp: eptp(ept.root, 4, false), backGpa: () => false,
      });
      shadow.setGuestRegisters(regs);
    }
  } else {
    cpu.setRegisters(regs);
  }
  const b = m.createBatch(1 << 14);
  setup.program(b, roots);
  const run: GuestRun = { faults: [], loads: [], memory: new Uint8Array(), exits: {}, cpu, shadow };
  let at = 0;
  for (let guard = 0; at < b.length; guard++) {
    if (guard > 100 * b.length + 1000) throw new Error(`${mode}: no progress at op ${at}`);
    const r = cpu.execute(b, at);
    const x: BatchExit = r.exit;
    run.exits[x.reason] = (run.exits[x.reason] ?? 0) + 1;
    if (x.reason === 'end') break;
    if (x.reason === 'PF' && !shadow) { run.faults.push({ index: x.index, errorCode: x.errorCode, cr2: x.cr2 }); at = x.index + 1; continue; }
    if (shadow && (x.reason === 'PF' || x.reason === 'CR3' || x.reason === 'INVLPG')) {
      const o = shadow.handle(x, b);
      if (o.action === 'retry') at = x.index;
      else if (o.action === 'guestFault') { run.faults.push({ index: x.index, errorCode: o.errorCode, cr2: o.cr2 }); at = x.index + 1; }
      else if (o.action === 'next') at = x.index + 1;
      else throw new Error(`gpa outside guest: ${o.gpa}`);
      continue;
    }
    throw new Error(`${mode}: unexpected exit ${JSON.stringify(x, (_, v) => typeof v === 'bigint' ? v.toString(16) : v)}`);
  }
  for (let i = 0; i < b.length; i++) if (b.op(i).kind === 'load') run.loads.push(b.value(i));
  run.memory = m.memory.read(base, Number(GUEST_BYTES));
  return run;
}

/** A 4-level address space: the direct map (2 MiB pages) plus whatever `more` maps. */
export function addressSpace(gmem: PhysicalMemory, frames: FrameBump, more: (pt: PageTableBuilder) => void): bigint {
  const pt = new PageTableBuilder(gmem, frames, 4);
  pt.mapRange(DMAP, 0n, Number(GUEST_BYTES), 0x200000, { user: false, global: false });
  more(pt);
  return pt.root;
}
