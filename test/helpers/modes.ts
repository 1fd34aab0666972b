// Runs one guest program under native, nested (EPT) or shadow paging (src/experiment/
// modes.ts), acting as the guest kernel: guest page faults are recorded and skipped.
import { PageTableBuilder, type FrameBump, type PhysicalMemory, type AccessBatch, type Cpu } from '../../src/index.js';
import { GuestMachine, type Mode, type GuestRegs } from '../../src/experiment/modes.js';
import type { ShadowMmu } from '../../src/hypervisor/monitor/shadow.js';

export type { Mode };
export const GUEST_BYTES = 0x400_0000n;      // 64 MiB of guest memory
export const DMAP = 0xffff_8880_0000_0000n;  // the guest kernel's direct map of its memory

export interface GuestRun {
  faults: { index: number; errorCode: number; cr2: bigint }[];
  loads: bigint[];
  memory: Uint8Array;
  cpu: Cpu;
  shadow?: ShadowMmu;
  gm: GuestMachine;
}

export interface GuestSetup {
  /** Builds the guest's page tables in guest memory; returns CR3 values (address spaces). */
  build(gmem: PhysicalMemory): bigint[];
  regs?: GuestRegs;
  program(b: AccessBatch, roots: bigint[]): void;
}

export async function runGuest(mode: Mode, setup: GuestSetup): Promise<GuestRun> {
  const gm = await GuestMachine.create(mode, { guestBytes: GUEST_BYTES, hostPage: 0x200000 });
  const roots = setup.build(gm.gmem);
  gm.start(roots[0], setup.regs);
  const b = gm.m.createBatch(1 << 14);
  setup.program(b, roots);
  const run: GuestRun = { faults: [], loads: [], memory: new Uint8Array(), cpu: gm.cpu, gm, shadow: undefined };
  gm.run(b, (x) => { run.faults.push({ index: x.index, errorCode: x.errorCode, cr2: x.cr2 }); return x.index + 1; });
  run.shadow = gm.shadow;
  for (let i = 0; i < b.length; i++) if (b.op(i).kind === 'load') run.loads.push(b.value(i));
  run.memory = gm.gmem.read(0n, Number(GUEST_BYTES));
  return run;
}

/** A 4-level address space: the direct map (2 MiB pages) plus whatever `more` maps. */
export function addressSpace(gmem: PhysicalMemory, frames: FrameBump, more: (pt: PageTableBuilder) => void): bigint {
  const pt = new PageTableBuilder(gmem, frames, 4);
  pt.mapRange(DMAP, 0n, Number(GUEST_BYTES), 0x200000, { user: false });
  more(pt);
  return pt.root;
}
