// The interpreter side of the CPU benchmark: the loops of bench/cpu-loops.ts run by the
// x86-64 interpreter (Cpu.run) from the same addresses as natively (bench/native.ts), at
// CPL 3 with 4 KiB pages, default TLBs. Reports guest instructions per second (median).

import { Machine, PageTableBuilder, FrameBump, CR0, CR4, EFER } from '../src/index.js';
import { CPU_LOOPS, LOOP_CODE_BASE, LOOP_DATA_BASE, WALK_BYTES, type CpuLoop } from './cpu-loops.js';

export interface InterpLoopRate { name: CpuLoop['name']; instructions: number; seconds: number; instructionsPerSec: number }

const CODE_PA = 0x10_0000n;
const TABLES_PA = 0x20_0000n; // 64 MiB of 4 KiB pages need ~33 page-table frames
const DATA_PA = 0x100_0000n;
/** Iterations per run: ~0.1–0.5 s each at the target speed. */
const ITERATIONS: Record<CpuLoop['name'], number> = { registerLoop: 5_000_000, tlbHitMemoryLoop: 5_000_000, tlbMissMemoryLoop: 1_000_000 };

export async function interpreterLoopRates(reps = 5, scale = 1): Promise<InterpLoopRate[]> {
  const m = await Machine.create({ memoryBytes: Number(DATA_PA) + WALK_BYTES + 2 ** 20 });
  const pt = new PageTableBuilder(m.memory, new FrameBump(m.memory, TABLES_PA, DATA_PA));
  pt.mapRange(BigInt(LOOP_CODE_BASE), CODE_PA, 4096, 4096, { user: true });
  pt.mapRange(BigInt(LOOP_DATA_BASE), DATA_PA, WALK_BYTES, 4096, { user: true, nx: true, accessed: true, dirty: true });
  const out: InterpLoopRate[] = [];
  for (const loop of CPU_LOOPS) {
    const code = new Uint8Array(4096).fill(0xcc);
    code.set(loop.code);
    code.set([0x0f, 0x0b], loop.code.length); // ud2 ends the run (an EXCEPTION exit)
    m.memory.write(CODE_PA, code);
    const cpu = m.createCpu();
    cpu.setExceptionBitmap(0xffff_ffff);
    const iterations = Math.max(1, Math.round(ITERATIONS[loop.name] * scale));
    const once = (): number => {
      cpu.setRegisters({
        ...loop.registers(iterations), rip: BigInt(LOOP_CODE_BASE), rflags: 0x202n, cpl: 3, cs: 0x33n, ss: 0x2bn,
        cr0: CR0.PG | CR0.PE | CR0.WP, cr3: pt.root, cr4: CR4.PAE, efer: EFER.LME | EFER.NXE | 1n,
      });
      const t0 = process.hrtime.bigint();
      const exit = cpu.run({ maxInstructions: iterations * loop.instructionsPerIteration + 10 });
      const s = Number(process.hrtime.bigint() - t0) / 1e9;
      if (exit.reason !== 'EXCEPTION' || exit.vector !== 6) throw new Error(`interpreter ${loop.name} stopped with ${JSON.stringify(exit)}`);
      return s;
    };
    once(); // warm-up: lets V8 tier the Wasm up, fills the TLBs
    const times = Array.from({ length: reps }, once).sort((a, b) => a - b);
    const seconds = times[reps >> 1];
    const instructions = iterations * loop.instructionsPerIteration;
    out.push({ name: loop.name, instructions, seconds, instructionsPerSec: instructions / seconds });
  }
  return out;
}
