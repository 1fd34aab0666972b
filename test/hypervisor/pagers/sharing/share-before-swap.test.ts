// ESX shares a page before paging it out (§4.3): with HostSwap.shareFirst wired to page
// sharing (the memory manager does it), a swap-out victim whose content matches a page
// already known to sharing is shared, not written, and its frame is freed all the same.
import { describe, it, expect } from 'vitest';
import { HostSwap, P2M } from '../../../../src/hypervisor/index.js';
import type { Gfn } from '../../../../src/core/addr.js';
import { host, vmOn, pattern, setPage, page, sharedGfns } from './setup.js';
import { SwapDaemon } from '../../../../src/hypervisor/pagers/swap-daemon.js';
import { Scheduler } from '../../../../src/hypervisor/policy/scheduler.js';

/**
 * Two VMs holding the same 32 pages; sharing has learnt a's (hints, as its scan would have);
 * a swap whose shareFirst hook asks sharing first, as the memory manager wires it.
 */
async function twoVmsWithCommonPages() {
  const { hv, sh } = await host({ scanRatePerVm: 0, scanRateTotal: 0 });
  const a = vmOn(hv, sh), b = vmOn(hv, sh);
  for (let i = 0; i < 32; i++) { setPage(a, 0x300 + i, pattern(i + 1)); setPage(b, 0x300 + i, pattern(i + 1)); }
  sh.shareNow(a, Array.from({ length: 32 }, (_, i) => 0x300 + i));
  const swap = new HostSwap(hv, { seed: 5, capacity: 4096 });
  swap.shareFirst = (vm, g) => sh.shareNow(vm, [g]) > 0;
  return { hv, sh, a, b, swap };
}

describe('share before swap', () => {
  it('frees matching victims by sharing them (no swap write); other victims are swapped', async () => {
    const { hv, sh, b, swap } = await twoVmsWithCommonPages();
    try {
      const before = hv.frames.usedBy(b.id);
      const freed = swap.swapOut(b, before); // every private page of b is a victim
      expect(freed).toBe(before);
      expect(hv.frames.usedBy(b.id)).toBe(0);
      // b's 32 common pages were shared, not written; the rest (zeroes included) went to swap or sharing.
      expect(swap.sharedInsteadOfSwapped).toBeGreaterThanOrEqual(32);
      expect(swap.stats(b).swapOuts).toBe(before - swap.sharedInsteadOfSwapped);
      expect(sharedGfns(b)).toBeGreaterThanOrEqual(32);
      for (let i = 0; i < 32; i++) {
        expect(b.p2m.raw((0x300 + i) as Gfn) & P2M.SHARED).toBe(P2M.SHARED);
        expect(page(b, 0x300 + i)).toEqual(pattern(i + 1));
      }
      // Without the hook, the same victims are all written.
      const c = vmOn(hv, sh);
      for (let i = 0; i < 8; i++) setPage(c, 0x300 + i, pattern(i + 1));
      swap.shareFirst = undefined;
      const n = hv.frames.usedBy(c.id);
      expect(swap.swapOut(c, n)).toBe(n);
      expect(swap.stats(c).swapOuts).toBe(n);
    } finally { swap.close(); }
  });

  it('the swap daemon shares matching victims too: they are freed without a write', async () => {
    const { hv, sh, b, swap } = await twoVmsWithCommonPages();
    try {
      const sched = new Scheduler({ hz: 2e9 });
      let freed = 0;
      const d = new SwapDaemon(swap, hv, sched, { onSwapped: (_vm, n) => { freed += n; } });
      const before = hv.frames.usedBy(b.id);
      d.setTarget(b, before);
      sched.runFor(1);
      expect(d.busy).toBe(false);
      expect(freed).toBe(before);
      expect(hv.frames.usedBy(b.id)).toBe(0);
      expect(d.stats.sharedInstead).toBeGreaterThanOrEqual(32);
      expect(d.stats.pagesWritten + d.stats.sharedInstead).toBe(before);
      expect(swap.file.stats.writes).toBe(d.stats.pagesWritten);
      for (let i = 0; i < 32; i++) expect(page(b, 0x300 + i)).toEqual(pattern(i + 1));
    } finally { swap.close(); }
  });
});
