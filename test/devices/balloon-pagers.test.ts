// Ballooning a shared or a host-swapped page: the host gives up what it held for the gfn
// (a shared frame's reference, a swap slot) instead of refusing the page.
import { describe, it, expect } from 'vitest';
import { CMD, CAP, STATUS } from '../../src/devices/balloon.js';
import { P2M, SHARED_OWNER } from '../../src/hypervisor/index.js';
import { PageSharing } from '../../src/hypervisor/pagers/sharing.js';
import { HostSwap } from '../../src/hypervisor/pagers/swap.js';
import type { Gfn } from '../../src/core/addr.js';
import { rig } from './setup.js';

async function setup() {
  const r = await rig({ vmMiB: 4 });
  r.dev.setTarget(64);
  expect(r.call(CMD.START, BigInt(CAP.BASIC_CMDS)).status).toBe(STATUS.SUCCESS_WITH_CAPABILITIES);
  return r;
}

describe('balloon LOCK of pages other pagers hold', () => {
  it('a shared page drops its reference (the frame is freed with the last one)', async () => {
    const r = await setup();
    const sharing = new PageSharing(r.hv);
    sharing.addVm(r.vm);
    const page = new Uint8Array(4096).fill(7);
    for (const g of [0x300, 0x301]) r.vm.memory.write(BigInt(g) << 12n, page);
    expect(sharing.shareNow(r.vm, [0x300, 0x301])).toBe(2);
    expect(r.hv.frames.usedBy(SHARED_OWNER)).toBeGreaterThanOrEqual(1);
    const used = r.hv.frames.usedBy(r.vm.id), shared = r.hv.frames.usedBy(SHARED_OWNER);
    expect(r.call(CMD.LOCK, 0x300).status).toBe(STATUS.SUCCESS);
    expect(r.vm.p2m.state(0x300 as Gfn) & P2M.BALLOONED).toBeTruthy();
    expect(r.hv.frames.usedBy(SHARED_OWNER)).toBe(shared); // 0x301 still holds it
    expect(r.call(CMD.LOCK, 0x301).status).toBe(STATUS.SUCCESS);
    expect(r.hv.frames.usedBy(SHARED_OWNER)).toBe(shared - 1); // the last reference freed the frame
    expect(r.hv.frames.usedBy(r.vm.id)).toBe(used);
    sharing.checkInvariants();
    expect(sharing.stats.pagesShared).toBe(shared - 1);
  });

  it('a swapped page frees its slot, and after UNLOCK reads zeros', async () => {
    const r = await setup();
    const swap = new HostSwap(r.hv, { capacity: 64 });
    try {
      r.vm.memory.write(0x310n << 12n, new Uint8Array(4096).fill(9));
      swap.swapOutGfn(r.vm, 0x310 as Gfn);
      expect(swap.file.inUse).toBe(1);
      expect(r.call(CMD.LOCK, 0x310).status).toBe(STATUS.SUCCESS);
      expect(swap.file.inUse).toBe(0);
      expect(swap.stats(r.vm).slotsInUse).toBe(0);
      expect(r.call(CMD.UNLOCK, 0x310).status).toBe(STATUS.SUCCESS);
      expect(r.vm.memory.read(0x310n << 12n, 4096).every((b) => b === 0)).toBe(true);
    } finally { swap.close(); }
  });
});
