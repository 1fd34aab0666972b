// The toy-OS panel's board: a machine-code kernel (Limine protocol ELF) on the library's
// OsMachine (src/board/os-machine.ts) with the interpreting vCPU, as `memvisor boot` runs it.
import { Hypervisor } from '../../src/hypervisor/monitor/hypervisor.js';
import { OsMachine } from '../../src/board/os-machine.js';
import { interpretingCpu } from '../../src/board/cpu-adapter.js';
import type { OsConsoleBoard } from './os.js';

const MiB = 2 ** 20;

export async function createOsBoard(name: string, kernel: Uint8Array, memoryBytes = 64 * MiB): Promise<OsConsoleBoard> {
  const hv = await Hypervisor.create({ hostMemoryBytes: memoryBytes + 32 * MiB });
  let out = '';
  let ended = false;
  const m = new OsMachine({ hv, kernel, memoryBytes, mode: 'nested', cpu: interpretingCpu, coherenceChecker: false,
    load: { cmdline: 'console=ttyS0 shell' }, console: (b) => { out += String.fromCharCode(b); } });
  return {
    name, pages: memoryBytes / 4096,
    step(seconds) {
      if (!m.stopped) m.run({ seconds: m.seconds + seconds, instructions: m.counters().instructions + 5e6 });
      let s = out;
      out = '';
      const stop = m.stopped;
      if (stop && !ended) {
        ended = true;
        s += `\n[guest stopped: ${stop.stop}${stop.status !== null ? `, status ${stop.status}` : ''}]\n`;
      }
      return s;
    },
    type(line) { m.uart.pushInput(line); },
    setBalloonTarget(pages) { m.balloon.setTarget(pages); },
    counters() {
      const c = m.counters();
      return { 'virtual s': Math.round(m.seconds * 100) / 100, instructions: c.instructions ?? 0, 'balloon target': c.balloonTarget,
        'balloon size': c.balloonSize, 'host frames': m.hostFrames, 'console bytes': c.consoleBytes, 'TLB misses (L2)': c.l2Miss ?? 0 };
    },
  };
}
