// Fuzz: random commands, registers, batch pages, host actions and guest touches thrown at
// the device. The host never throws, every answer is a protocol status, and the frame
// accounting stays exact (VM pool free + both VMs' frames conserved; the VM's frames =
// its backed gfns; ballooned gfns = the balloon size; the other VM is untouched).
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { assertAsyncProperty } from '../helpers/seeds.js';
import { STATUS, classifyBalloonExit } from '../../src/devices/balloon.js';
import { P2M } from '../../src/hypervisor/index.js';
import { rig, DIRECT } from './setup.js';

const STATUSES = new Set<number>(Object.values(STATUS));
const BATCH = 0x300;

const gfnArb = (frames: number) => fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: 0x380, max: 0x3ff }) },             // a small pool: collisions
  { weight: 2, arbitrary: fc.constantFrom(0x400, 0x600, 0x200, BATCH) },         // 2 MiB-aligned, the batch page
  { weight: 1, arbitrary: fc.integer({ min: 0, max: frames + 600 }) });

const entryArb = (frames: number) => fc.tuple(gfnArb(frames), fc.oneof({ weight: 9, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 0xfff }) }))
  .map(([g, low]) => (BigInt(g) << 12n) | BigInt(low));

const actionArb = (frames: number) => fc.oneof(
  { weight: 10, arbitrary: fc.record({ t: fc.constant('call' as const), cmd: fc.integer({ min: 0, max: 11 }), arg1: fc.oneof(gfnArb(frames).map(BigInt), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n })),
    arg2: fc.integer({ min: 0, max: 600 }), badMagic: fc.boolean().map((b) => b && Math.random() < 0.1) }) },
  { weight: 6, arbitrary: fc.record({ t: fc.constant('batch' as const), cmd: fc.integer({ min: 6, max: 9 }), entries: fc.array(entryArb(frames), { minLength: 0, maxLength: 12 }),
    page: fc.oneof({ weight: 9, arbitrary: fc.constant(BATCH) }, { weight: 1, arbitrary: gfnArb(frames) }) }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('start' as const), caps: fc.integer({ min: 0, max: 63 }) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('target' as const), n: fc.integer({ min: 0, max: frames }) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('host' as const), what: fc.constantFrom('reset', 'busy', 'unbusy', 'pop') }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('touch' as const), gfn: gfnArb(frames).map((g) => g % frames) }) });

describe('balloon device fuzz', () => {
  let maxSize = 0;
  const seen = new Set<number>();
  it('never throws, answers only protocol statuses, keeps accounting exact', async () => {
    await assertAsyncProperty(fc.asyncProperty(fc.array(actionArb(2048), { minLength: 1, maxLength: 60 }), async (actions) => {
      const r = await rig({ dev: {} });
      const other = await rig({ hv: r.hv });
      r.dev.setTarget(1500);
      const otherP2m = Array.from({ length: other.vm.frameCount }, (_, g) => other.vm.p2m.raw(g as never));
      const vmPool = () => r.hv.counts().vmFree + r.hv.frames.usedBy(r.vm.id) + r.hv.frames.usedBy(other.vm.id);
      const pool0 = vmPool();
      const b = r.hv.machine.createBatch(4);
      for (const a of actions) {
        let status: number | null = null;
        if (a.t === 'call') status = r.call(a.cmd, a.arg1, a.arg2, a.badMagic ? 0x12345678 : undefined).status;
        else if (a.t === 'start') status = r.call(0, a.caps).status;
        else if (a.t === 'batch') {
          // A batch page outside the VM is the device's to refuse: only pages inside have a p2m word.
          const inside = a.page < r.vm.frameCount;
          if (inside && !(r.vm.p2m.raw(a.page as never) & P2M.BALLOONED)) a.entries.forEach((e, i) => r.vm.memory.write64((BigInt(a.page) << 12n) + BigInt(i * 8), e));
          status = r.call(a.cmd, a.page, a.entries.length).status;
        } else if (a.t === 'target') r.dev.setTarget(a.n);
        else if (a.t === 'host') {
          if (a.what === 'reset') r.dev.requestReset(); else if (a.what === 'pop') r.dev.pop(); else r.dev.busy = a.what === 'busy';
        } else {
          b.clear().store(DIRECT + (BigInt(a.gfn) << 12n), 1n);
          // the store, or the guest's walk (the driver may have ballooned a page-table page)
          for (let x = r.vm.vcpus[0].run(b), n = 0; x.reason !== 'end'; n++) {
            // A guest that ballooned its own page tables gets them back zeroed: its walk faults.
            if (x.reason === 'PF' && r.dev.violations.some((v) => v.kind === 'touched-ballooned')) break;
            const c = classifyBalloonExit(r.dev, x);
            expect(c?.violation.kind, JSON.stringify(x, (_k, v) => typeof v === 'bigint' ? v.toString(16) : v)).toBe('touched-ballooned');
            expect(n).toBeLessThan(2);
            x = r.vm.vcpus[0].run(b, c!.resumeAt);
          }
        }
        if (status !== null) expect(STATUSES.has(status)).toBe(true);
        // accounting
        expect(vmPool()).toBe(pool0);
        expect(r.hv.frames.usedBy(r.vm.id)).toBe(r.vm.p2m.backed);
        const ballooned = r.vm.p2m.count(P2M.BALLOONED, P2M.BALLOONED);
        expect(ballooned).toBe(r.dev.size);
        expect(r.vm.p2m.backed + ballooned + r.vm.p2m.count(P2M.PRESENT | P2M.BALLOONED | P2M.SWAPPED, 0)).toBe(r.vm.frameCount);
        maxSize = Math.max(maxSize, r.dev.size);
        if (status !== null) seen.add(status);
      }
      for (const v of r.dev.violations) expect(STATUSES.has(v.status)).toBe(true);
      expect(r.stats.snapshot().errors).toBe(0);
      expect(Array.from({ length: other.vm.frameCount }, (_, g) => other.vm.p2m.raw(g as never))).toEqual(otherP2m);
      expect(other.dev.violationCount).toBe(0);
    }), { numRuns: 40, seed: 0x5670 });
    // the fuzz reached the interesting states, not only refusals
    expect(maxSize).toBeGreaterThanOrEqual(512);
    for (const st of [STATUS.SUCCESS, STATUS.ERROR_CMD_INVALID, STATUS.ERROR_PPN_INVALID, STATUS.ERROR_RESET, STATUS.SUCCESS_WITH_CAPABILITIES]) expect(seen).toContain(st);
  });
});
