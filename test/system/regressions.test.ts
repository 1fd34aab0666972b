// Regressions found while building the whole-system fuzz: a p2m change that must split a
// 2 MiB EPT leaf while the hypervisor pool has no frame for the new table. P2m.write used to
// store the new word before its listeners ran, so when the EPT sync listener threw
// OutOfFramesError('hypervisor') the p2m and the EPT disagreed: the p2m said ballooned /
// trapped while the EPT still mapped the frame (a balloon LOCK answered ERROR_BUSY yet left
// the gfn BALLOONED and its frame leaked; the sampler left a trap that could never fire).
// Fixed: P2m.write restores the entry when a listener throws; the sampler drops a sample it
// cannot trap.
//
// Invariant checked: after the operation (whatever it answered), the EPT maps exactly the
// present, untrapped gfns the p2m says, and the VM owns exactly its present frames.
import { describe, it, expect } from 'vitest';
import { Hypervisor, HV_OWNER, P2M, ActiveSampler, frameField, type Vm } from '../../src/hypervisor/index.js';
import { CMD, CAP, STATUS, BALLOON_MAGIC } from '../../src/devices/balloon.js';
import { createBalloonDevice } from '../../src/board/balloon.js';
import { PAGE_2M } from '../../src/core/bits.js';
import type { Gfn } from '../../src/core/addr.js';

const MiB = 2 ** 20;

/** A nested VM whose first 2 MiB are one EPT leaf, on a host whose hypervisor pool is then used up. */
async function largeLeafNoTables(): Promise<{ hv: Hypervisor; vm: Vm }> {
  const hv = await Hypervisor.create({ hostMemoryBytes: 8 * MiB, hypervisorBytes: 256 * 1024 });
  const vm = hv.createVm({ memoryBytes: 4 * MiB, mode: 'nested' });
  expect(vm.prefault(0n, 2n * BigInt(MiB), PAGE_2M)).toBe(1);
  while (hv.frames.tryAlloc(HV_OWNER) !== null); // other VMs' tables took the rest
  return { hv, vm };
}

/** The EPT agrees with the p2m for gfns [0, 512), and the VM owns exactly its present frames. */
function expectEptMatchesP2m(hv: Hypervisor, vm: Vm): void {
  for (let g = 0; g < 512; g++) {
    const w = vm.p2m.raw(g as Gfn), m = vm.ept!.lookup(g as Gfn);
    const mapped = (w & (P2M.PRESENT | P2M.TRAPPED)) === P2M.PRESENT;
    expect(m !== null && m.hfn === frameField(w), `gfn ${g}: p2m 0x${w.toString(16)}, EPT ${m ? `maps hfn ${m.hfn}` : 'maps nothing'}`).toBe(mapped);
  }
  expect(hv.frames.usedBy(vm.id)).toBe(vm.p2m.backed);
}

describe('p2m changes that need an EPT split the hypervisor pool cannot provide', () => {
  it('a balloon LOCK inside a 2 MiB EPT leaf either balloons the page or changes nothing', async () => {
    const { hv, vm } = await largeLeafNoTables();
    const dev = createBalloonDevice(vm, hv.frames);
    dev.setTarget(16);
    const call = (cmd: number, arg: number) => dev.call({ eax: BALLOON_MAGIC, rbx: BigInt(arg), ecx: cmd, esi: 0, edi: 0 }).eax;
    expect(call(CMD.START, CAP.BASIC_CMDS)).toBe(STATUS.SUCCESS_WITH_CAPABILITIES);
    const status = call(CMD.LOCK, 5);
    expect(vm.p2m.count(P2M.BALLOONED, P2M.BALLOONED)).toBe(status === STATUS.SUCCESS ? 1 : 0);
    expect(dev.size).toBe(status === STATUS.SUCCESS ? 1 : 0);
    expectEptMatchesP2m(hv, vm);
  });

  it('a sampling trap inside a 2 MiB EPT leaf is armed (mapping gone) or not set at all', async () => {
    const { hv, vm } = await largeLeafNoTables();
    const sampler = new ActiveSampler({ samples: 4 });
    sampler.attach(vm, 0);
    expectEptMatchesP2m(hv, vm);
    expect(sampler.trapped(vm).length).toBe(vm.p2m.count(P2M.TRAPPED, P2M.TRAPPED));
    expect(sampler.estimates(vm).current.sampled).toBe(sampler.trapped(vm).length);
  });
});
