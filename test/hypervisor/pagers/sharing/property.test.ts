// Property: whatever mix of host writes, guest stores and loads (through the vCPU, nested
// and shadow), scans and copy-on-write breaks runs on three VMs, every VM's memory equals a
// plain reference copy and host frame accounting is exact (frames used = private backed +
// distinct shared frames); destroying a VM at the end leaves the others intact.
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { assertAsyncProperty } from '../../../helpers/seeds.js';
import { SHARED_OWNER, type Vm } from '../../../../src/hypervisor/index.js';
import { host, vmOn, pattern, guestStore, guestLoad, expectExactAccounting, expectBytes, MiB } from './setup.js';

const DATA = 12;                            // data pages per VM: gfns 0..11
const MODES = ['nested', 'nested', 'shadow'] as const;
const VALUES = [0n, 0x0101010101010101n, 0xdead_beefn, 0x8000_0000_0000_0001n];

type Op =
  | { k: 'fill'; vm: number; page: number; pat: number }
  | { k: 'copy'; vm: number; page: number; from: number; fromPage: number }
  | { k: 'host8' | 'guest8'; vm: number; page: number; off: number; val: number }
  | { k: 'load'; vm: number; page: number; off: number }
  | { k: 'scan'; secs: number };

const vmI = fc.integer({ min: 0, max: 2 }), pageI = fc.integer({ min: 0, max: DATA - 1 }), offI = fc.integer({ min: 0, max: 511 });
const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ k: fc.constant('fill' as const), vm: vmI, page: pageI, pat: fc.integer({ min: 0, max: 3 }) }),
  fc.record({ k: fc.constant('copy' as const), vm: vmI, page: pageI, from: vmI, fromPage: pageI }),
  fc.record({ k: fc.constantFrom('host8' as const, 'guest8' as const), vm: vmI, page: pageI, off: offI, val: fc.integer({ min: 0, max: VALUES.length - 1 }) }),
  fc.record({ k: fc.constant('load' as const), vm: vmI, page: pageI, off: offI }),
  fc.record({ k: fc.constant('scan' as const), secs: fc.constantFrom(0.3, 1, 2) }),
);

describe('page sharing against a reference copy of each VM\'s memory', () => {
  it('contents and host frame accounting stay exact', async () => {
    const seen = { shared: 0, cowBreaks: 0, cowReuses: 0, zero: 0, guestCow: 0 };
    await assertAsyncProperty(fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 30 }), fc.integer({ min: 1, max: 1000 }),
      fc.integer({ min: 0, max: 2 }), async (ops, seed, victim) => {
        const { hv, sh } = await host({ seed, scanRatePerVm: 24, scanRateTotal: 60, batch: 7 }, 48);
        const vms: Vm[] = MODES.map((mode) => vmOn(hv, sh, { mode, mib: 4, guest: true }));
        const ref = vms.map(() => new Uint8Array(DATA * 4096));
        const check = (live: number[]) => {
          for (const i of live) expectBytes(vms[i].memory.read(0n, DATA * 4096), ref[i], `VM ${i} memory`);
          expectExactAccounting(hv, sh, vms);
        };
        for (const op of ops) {
          if (op.k === 'scan') sh.scan(op.secs);
          else if (op.k === 'fill') {
            vms[op.vm].memory.write(BigInt(op.page) << 12n, pattern(op.pat));
            ref[op.vm].set(pattern(op.pat), op.page * 4096);
          } else if (op.k === 'copy') {
            const bytes = ref[op.from].slice(op.fromPage * 4096, op.fromPage * 4096 + 4096);
            vms[op.vm].memory.write(BigInt(op.page) << 12n, bytes);
            ref[op.vm].set(bytes, op.page * 4096);
          } else {
            const gpa = BigInt(op.page * 4096 + op.off * 8);
            const view = new DataView(ref[op.vm].buffer);
            if (op.k === 'load') expect(guestLoad(hv, vms[op.vm], gpa)).toBe(view.getBigUint64(Number(gpa), true));
            else {
              const v = VALUES[op.val];
              if (op.k === 'guest8') {
                const c = sh.stats.cowBreaks;
                guestStore(hv, vms[op.vm], gpa, v);
                seen.guestCow += sh.stats.cowBreaks - c;
              }
              else vms[op.vm].memory.write64(gpa, v);
              view.setBigUint64(Number(gpa), v, true);
            }
          }
          check([0, 1, 2]);
        }
        const st = sh.stats;
        seen.shared += st.pagesSharing; seen.cowBreaks += st.cowBreaks; seen.cowReuses += st.cowReuses;
        seen.zero += st.zeroShared;
        hv.destroyVm(vms[victim]);
        const live = [0, 1, 2].filter((i) => i !== victim);
        check(live);
        for (const i of live) hv.destroyVm(vms[i]);
        expect(hv.frames.usedBy(SHARED_OWNER)).toBe(0);
        expect(hv.counts().byVm).toEqual({});
        expect(hv.counts().hypervisor).toBe(0);
      }), {
      // A fixed seed: the coverage check below must not depend on the day's random draw
      // (with a random seed, 25 runs now and then missed one kind of event and failed).
      // SHARING_SEED / SHARING_RUNS explore further.
      seed: Number(process.env.SHARING_SEED ?? 0x5ea5_1129), numRuns: Number(process.env.SHARING_RUNS ?? 25),
    });
    // The runs did share pages and break sharing, the zero page and last-sharer reuse included.
    expect(Math.min(seen.shared, seen.cowBreaks, seen.cowReuses, seen.zero, seen.guestCow)).toBeGreaterThan(0);
  });

  it('a mostly identical workload really shares (the property above is not vacuous)', async () => {
    const { hv, sh } = await host({ scanRatePerVm: 24, scanRateTotal: 60 }, 48);
    const vms = MODES.map((mode) => vmOn(hv, sh, { mode, mib: 4, guest: true }));
    for (const vm of vms) for (let p = 0; p < DATA; p++) vm.memory.write(BigInt(p) << 12n, pattern(p % 4));
    for (let i = 0; i < 10; i++) sh.scan(1);
    // 36 data pages with 4 contents, plus nested guests' identical page tables.
    expect(sh.stats.pagesShared).toBeGreaterThanOrEqual(4);
    expect(sh.stats.pagesSharing).toBeGreaterThanOrEqual(32);
    expectExactAccounting(hv, sh, vms);
  });
});
