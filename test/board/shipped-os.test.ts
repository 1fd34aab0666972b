// The shipped OS (guests/os/bin/memvisor-os.elf, or MEMVISOR_OS_ELF) on the board with the
// interpreting vCPU: its balloon driver inflates to the host's target, the doorbell
// interrupt pulls a pass forward when the target changes, touching a ballooned page is
// caught (popped, ERROR_RESET, the driver resets and re-inflates), and it powers off.
// Skipped, visibly, when the kernel binary is not in this checkout.
import { describe, it, expect } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Hypervisor } from '../../src/hypervisor/index.js';
import { OsMachine } from '../../src/board/os-machine.js';
import { interpretingCpu } from '../../src/board/cpu-adapter.js';

const ELF = process.env.MEMVISOR_OS_ELF ?? fileURLToPath(new URL('../../guests/os/bin/memvisor-os.elf', import.meta.url));
const present = existsSync(ELF);

describe.skipIf(!present)(`the shipped OS (${present ? ELF : 'not in this checkout: skipped'})`, () => {
  it.each(['nested', 'shadow'] as const)('under %s paging: balloons to the target, rings the doorbell, survives a touched ballooned page, powers off', async (mode) => {
    const hv = await Hypervisor.create({ hostMemoryBytes: 128 * 2 ** 20 });
    const m = new OsMachine({ hv, kernel: new Uint8Array(readFileSync(ELF)), memoryBytes: 64 * 2 ** 20, mode,
      cpu: interpretingCpu, load: { cmdline: 'shell' } });
    m.uart.pushInput('run sleeper:4\nwait\nballoon touch\nrun sleeper:2\nwait\npoweroff\n');
    m.balloon.setTarget(4096);
    expect(m.run({ seconds: 1.5 })).toMatchObject({ stop: 'timeout' });
    expect(m.balloon.size).toBe(4096);                          // one pass: 8 × 2 MiB pages
    expect(m.balloon.doorbell).toEqual({ context: 0, resource: 0x41 });
    m.balloon.setTarget(8192);                                  // rings: the guest's worker runs at once
    expect(m.counters().doorbellRings).toBe(1);
    const r = m.run({ seconds: 30 });
    expect(r).toMatchObject({ stop: 'power-off', status: 0 });
    expect(m.balloonTouches).toBe(1);
    expect(m.balloon.violations.map((v) => v.kind)).toEqual(['touched-ballooned']);
    const s = m.balloonStats.snapshot();
    expect(s).toMatchObject({ inflated: 16384, resets: 2 });   // 4096 + 4096, then 8192 again after the reset
    expect(s.statusCounts[7]).toBe(1);                          // the ERROR_RESET after the touch
    expect(m.uart.text()).toMatch(/doorbell:\s+1\n/);
    expect(m.uart.text()).toMatch(/sleeper: slept 2 s/);
  });
});
