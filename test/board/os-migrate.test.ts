// The shipped C kernel (memvisor-os) moved between two hosts while its programs run:
// it keeps running and printing on the new host and powers off normally, its console
// equals a run that never moved, its memory arrives byte for byte, the source host frees
// every frame, and the balloon device and APIC timer carry on (a target set after the
// move inflates through the new host; a sleeper started before it wakes after it).
import { describe, it, expect } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Hypervisor, P2M } from '../../src/hypervisor/index.js';
import { OsMachine } from '../../src/board/os-machine.js';
import { interpretingCpu } from '../../src/board/cpu-adapter.js';
import { image, diffPages } from '../hypervisor/migration/setup.js';

const ELF = process.env.MEMVISOR_OS_ELF ?? fileURLToPath(new URL('../../guests/os/bin/memvisor-os.elf', import.meta.url));
const present = existsSync(ELF);
const MiB = 2 ** 20;
const PROGRAMS = 'run=hello,toucher:2:3,sleeper:1,random:1:5000';
const tracking = { nested: 'ept-dirty', shadow: 'write-protect' } as const;

async function boot(mode: 'nested' | 'shadow', cmdline: string) {
  const [h1, h2] = [await Hypervisor.create({ hostMemoryBytes: 96 * MiB }), await Hypervisor.create({ hostMemoryBytes: 96 * MiB })];
  const out: number[] = [];
  const m = new OsMachine({ hv: h1, kernel: new Uint8Array(readFileSync(ELF)), memoryBytes: 64 * MiB, mode, cpu: interpretingCpu,
    load: { cmdline }, console: (b) => out.push(b) });
  return { h1, h2, m, text: () => Buffer.from(out).toString('latin1') };
}

describe.skipIf(!present)(`memvisor-os migrated between hosts (${present ? 'shipped ELF' : 'ELF not in this checkout: skipped'})`, () => {
  it.each(['nested', 'shadow'] as const)('keeps running and printing on the new host, as if it never moved (%s)', async (mode) => {
    const ref = await boot(mode, PROGRAMS);
    expect(ref.m.run({ seconds: 30 })).toMatchObject({ stop: 'power-off', status: 0 });

    const { h1, h2, m, text } = await boot(mode, PROGRAMS);
    m.run({ instructions: 1.5e6 });                        // mid-way through the toucher's passes
    const printedBefore = text().length;
    let before: Uint8Array = new Uint8Array();
    const r = m.migrateTo(h2, { tracking: tracking[mode], bandwidth: 20e6, maxRounds: 10, stopPages: 32,
      onSwitchover: (src) => { before = image(h1, src); } });
    expect(r.rounds.length).toBeGreaterThan(2);            // the guest dirtied pages during round 0
    expect(r.rounds[0].pagesDirtied).toBeGreaterThan(100);
    expect(diffPages(image(h2, m.vm), before)).toEqual([]);
    expect(m.hv).toBe(h2);
    expect(h1.list()).toEqual([]);
    expect(h1.counts().byVm).toEqual({});
    expect(h1.counts().free).toBe(h1.frames.total);       // every frame, the hypervisor's tables included
    expect(h2.frames.usedBy(m.vm.id)).toBe(m.vm.p2m.backed);

    const res = m.run({ seconds: 30 });
    expect(res).toMatchObject({ stop: 'power-off', status: 0 });
    expect(text().length).toBeGreaterThan(printedBefore);   // printed on the new host
    expect(text()).toMatch(/^toucher: 2 MiB pass 3 checksum 1d56068f0fed12fe ok$/m);
    expect(text()).toMatch(/^random: 1 MiB 5000 accesses \(2464 writes\) checksum 51427d00ddea9dfd ok$/m);
    expect(text()).toMatch(/^sleeper: slept 1 s$/m);
    expect(text()).toBe(ref.text());
    expect(m.counters().staleUses).toBe(0);
    // the guest's clock ran on through the downtime
    expect(res.seconds).toBeGreaterThanOrEqual(ref.m.stopped!.seconds);
  }, 120_000);

  it('the balloon and the APIC timer move with it (nested)', async () => {
    const { h2, m, text } = await boot('nested', 'run=sleeper:3');
    m.run({ seconds: 1.1 });
    m.balloon.setTarget(2048);                              // the doorbell: inflates at once
    m.run({ seconds: 1.4 });
    expect(m.balloon.size).toBe(2048);
    const r = m.migrateTo(h2, { tracking: 'ept-dirty', bandwidth: 50e6, stopPages: 16 });
    expect(r.rounds[0].byKind.ballooned).toBe(2048);
    expect(m.vm.p2m.count(P2M.BALLOONED, P2M.BALLOONED)).toBe(2048);
    m.balloon.setTarget(4096);                              // rings on the new host
    m.run({ seconds: 1.8 });
    expect(m.balloon.size).toBe(4096);
    expect(m.vm.p2m.count(P2M.BALLOONED, P2M.BALLOONED)).toBe(4096);
    expect(h2.frames.usedBy(m.vm.id)).toBe(m.vm.p2m.backed);
    expect(m.balloon.violationCount).toBe(0);
    m.balloon.setTarget(0);
    const res = m.run({ seconds: 30 });
    expect(res).toMatchObject({ stop: 'power-off', status: 0 });
    expect(text()).toMatch(/^sleeper: slept 3 s$/m);          // its timer armed on the old host fired on the new one
    expect(m.balloon.size).toBe(0);
    expect(m.vm.p2m.count(P2M.BALLOONED, P2M.BALLOONED)).toBe(0);
  }, 120_000);
});
