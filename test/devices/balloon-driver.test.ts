// The guest balloon driver (guests/kernel/balloon.ts) on a real vCPU against the strict
// host device: inflating frees exactly N host frames, deflating returns the gfns, guest
// data outside the balloon survives, touching a ballooned page is caught and reset.
import { describe, it, expect } from 'vitest';
import { BalloonDriver, RATE } from '../../guests/kernel/balloon.js';
import { vmPlatform } from '../../src/board/boot.js';
import { CAP, STATUS, classifyBalloonExit } from '../../src/devices/balloon.js';
import { P2M } from '../../src/hypervisor/index.js';
import type { Gfn } from '../../src/core/addr.js';
import { rig, TestAllocator, DIRECT, type Rig } from './setup.js';

const DATA = Array.from({ length: 16 }, (_, i) => 0x200 + i); // the guest's own data pages (not the allocator's)
const pattern = (g: number, i: number) => BigInt(g) * 0x1_0000n + BigInt(i);

async function setup(o: { mode?: 'nested' | 'shadow'; vmMiB?: number; hostCaps?: number; caps?: number } = {}) {
  const r = await rig({ mode: o.mode, vmMiB: o.vmMiB, dev: { hostCapabilities: o.hostCaps } });
  const alloc = new TestAllocator(r.vm.frameCount, DATA);
  const drv = new BalloonDriver({ platform: vmPlatform(r.hv, r.vm, r.bus, { backdoor: r.backdoor }), alloc, batch: r.hv.machine.createBatch(2048),
    directMap: (g) => DIRECT + (BigInt(g) << 12n), totalFrames: r.vm.frameCount, capabilities: o.caps ?? (CAP.BASIC_CMDS | CAP.BATCHED_CMDS) });
  return { ...r, alloc, drv };
}

/** Guest stores and loads through the vCPU (the guest kernel's own data). */
function guestWrite(r: Rig, gfns: number[]): void {
  const b = r.hv.machine.createBatch(gfns.length * 4);
  for (const g of gfns) for (let i = 0; i < 4; i++) b.store(DIRECT + (BigInt(g) << 12n) + BigInt(i * 1024), pattern(g, i));
  expect(r.vm.vcpus[0].run(b)).toEqual({ reason: 'end' });
}
function guestCheck(r: Rig, gfns: number[]): void {
  const b = r.hv.machine.createBatch(gfns.length * 4);
  for (const g of gfns) for (let i = 0; i < 4; i++) b.load(DIRECT + (BigInt(g) << 12n) + BigInt(i * 1024), 8);
  expect(r.vm.vcpus[0].run(b)).toEqual({ reason: 'end' });
  gfns.forEach((g, k) => { for (let i = 0; i < 4; i++) expect(b.value(k * 4 + i)).toBe(pattern(g, i)); });
}
const ballooned = (r: Rig) => r.vm.p2m.count(P2M.BALLOONED, P2M.BALLOONED);

describe.each(['nested', 'shadow'] as const)('balloon driver (%s)', (mode) => {
  it('speaks the real transport: one IN on 0x5670 per hypercall, arguments and results in the vCPU registers', async () => {
    const r = await setup({ mode, vmMiB: 8 });
    const vcpu = r.vm.vcpus[0];
    vcpu.setGprs({ rdi: 0x1234n });
    const io0 = vcpu.exits.IO ?? 0;
    r.dev.setTarget(600);
    r.drv.tick();
    expect(r.drv.stats.hypercalls).toBe(5);            // START, GUEST_ID, GET_TARGET, 2 batched LOCKs (512 + 88)
    expect(r.backdoor.calls).toBe(5);
    expect((vcpu.exits.IO ?? 0) - io0).toBe(5);        // one IO exit each, no register window
    expect(r.backdoor.misuses).toBe(0);
    // The last call was BATCHED_LOCK of 88 entries: its registers as the driver loaded them,
    // RAX = SUCCESS and RBX = the target written back, RDI untouched.
    expect(vcpu.gprs()).toEqual({ rax: BigInt(STATUS.SUCCESS), rbx: 600n, rcx: 6n, rdx: 0x5670n, rsi: 88n, rdi: 0x1234n });
    expect(r.dev.size).toBe(600);
  });

  it('inflating to N frees exactly N host frames; deflating returns them; guest data survives', async () => {
    const r = await setup({ mode });
    guestWrite(r, DATA);
    const free0 = r.hv.counts().vmFree, used0 = r.hv.frames.usedBy(r.vm.id), avail0 = r.alloc.available;
    r.dev.setTarget(1000);
    r.drv.tick();
    expect(r.drv.size).toBe(1000);
    expect(r.dev.size).toBe(1000);
    expect(ballooned(r)).toBe(1000);
    expect(r.hv.counts().vmFree - free0).toBe(1000);
    expect(used0 - r.hv.frames.usedBy(r.vm.id)).toBe(1000);
    expect(r.drv.ballooned().every((g) => r.dev.isLocked(g))).toBe(true);
    expect(r.drv.stats).toMatchObject({ inflated: 1000, refused: 0, resets: 1, hypercalls: 5 }); // START, GUEST_ID, GET_TARGET, 2 batches
    expect(r.dev.guestId).toBe(1);
    guestCheck(r, DATA);
    r.drv.tick();                                   // at target: nothing to do
    expect(r.drv.stats.hypercalls).toBe(6);
    r.dev.setTarget(0);
    r.drv.tick();
    expect(r.drv.size).toBe(0);
    expect(r.dev.size).toBe(0);
    expect(ballooned(r)).toBe(0);
    expect(r.alloc.available).toBe(avail0 - 1);     // all back but the batch page
    guestCheck(r, DATA);
    // the returned gfns are unbacked: touching them backs fresh zeroed frames, giving the host frames back to the VM
    const all = Array.from({ length: r.vm.frameCount - 0x200 }, (_, i) => 0x200 + i);
    const b = r.hv.machine.createBatch(all.length);
    for (const g of all) b.load(DIRECT + (BigInt(g) << 12n), 8);
    expect(r.vm.vcpus[0].run(b)).toEqual({ reason: 'end' });
    expect(r.hv.frames.usedBy(r.vm.id)).toBe(used0);
    expect(r.dev.violationCount).toBe(0);
  });

  it('a guest touching a ballooned page is caught; the driver resets and re-inflates', async () => {
    const r = await setup({ mode });
    r.dev.setTarget(300);
    r.drv.tick();
    const victim = r.drv.ballooned()[7];
    const b = r.hv.machine.createBatch(2);
    b.store(DIRECT + (BigInt(victim) << 12n) + 16n, 0xbadn);
    const x = r.vm.vcpus[0].run(b);
    const c = classifyBalloonExit(r.dev, x);
    expect(c?.violation).toMatchObject({ kind: 'touched-ballooned', gfn: victim });
    expect(c?.violation.message).toMatch(/without deflating it first/);
    expect(r.vm.vcpus[0].run(b, c!.resumeAt)).toEqual({ reason: 'end' });
    expect(r.dev.size).toBe(0);                     // the host popped the balloon
    r.drv.tick();                                   // GET_TARGET → ERROR_RESET
    expect(r.drv.resetRequired).toBe(true);
    expect(r.drv.stats.lastStatus).toBe(STATUS.ERROR_RESET);
    r.drv.tick();                                   // pop, START, GUEST_ID, GET_TARGET, inflate
    expect(r.drv.stats.resets).toBe(2);
    expect(r.drv.size).toBe(300);
    expect(r.dev.size).toBe(300);
    expect(ballooned(r)).toBe(300);
    expect(r.alloc.available + r.drv.size + 1).toBe(r.vm.frameCount - 0x200 - DATA.length);
  });
});

describe('balloon driver: protocol variants, rate limits, refusals', () => {
  it('a basic-only host: one LOCK / UNLOCK per page, no batch page', async () => {
    const r = await setup({ hostCaps: CAP.BASIC_CMDS });
    r.dev.setTarget(40);
    r.drv.tick();
    expect(r.drv.capabilities).toBe(CAP.BASIC_CMDS);
    expect(r.drv.stats.hypercalls).toBe(3 + 40);
    expect(ballooned(r)).toBe(40);
    r.dev.setTarget(0);
    r.drv.tick();
    expect(r.drv.stats.hypercalls).toBe(3 + 40 + 1 + 40);
    expect(ballooned(r)).toBe(0);
    expect(r.alloc.available).toBe(r.vm.frameCount - 0x200 - DATA.length);
  });

  it('2 MiB pages when negotiated, falling back to 4 KiB when no aligned run is left', async () => {
    const r = await setup({ caps: CAP.BASIC_CMDS | CAP.BATCHED_CMDS | CAP.BATCHED_2M_CMDS });
    const free0 = r.hv.counts().vmFree;
    r.dev.setTarget(1024);
    r.drv.tick();
    expect(r.drv.capabilities & CAP.BATCHED_2M_CMDS).toBeTruthy();
    expect(r.drv.size).toBe(1024);
    expect(r.dev.size).toBe(1024);
    expect(r.dev.isLocked(1024) && r.dev.isLocked(1535)).toBe(true); // the only free aligned run
    expect(r.hv.counts().vmFree - free0).toBe(1024);
    r.dev.setTarget(0);
    r.drv.tick();
    expect(r.dev.size).toBe(0);
    expect(r.alloc.available).toBe(r.vm.frameCount - 0x200 - DATA.length - 1);
  });

  it('deflate slack of 512 frames, rate-limited deflate', async () => {
    const r = await setup();
    r.dev.setTarget(1000);
    r.drv.tick();
    r.dev.setTarget(900);
    r.drv.tick();
    expect(r.drv.size).toBe(1000);                  // size − target < 512: no deflate
    r.dev.setTarget(0);
    r.drv.rateFree = 600;
    r.drv.tick();
    expect(r.drv.size).toBe(400);
    expect(r.drv.rateFree).toBe(600 + RATE.FREE_INC);
  });

  it('an allocation failure slows inflation: rateAlloc halves for SLOW_CYCLES cycles', async () => {
    const r = await setup({ vmMiB: 16 });
    r.alloc.setLimit(101);                          // the batch page + 100 frames
    r.dev.setTarget(3500);
    r.drv.tick();
    expect(r.drv.size).toBe(100);
    expect(r.drv).toMatchObject({ rateAlloc: RATE.ALLOC_MAX / 2, slowCycles: RATE.SLOW_CYCLES });
    r.alloc.setLimit(Infinity);
    r.drv.tick();
    expect(r.drv.size).toBe(100 + 1024);
    expect(r.drv.rateAlloc).toBe(1024 + RATE.ALLOC_INC); // a clean cycle that reached the rate raises it
    r.drv.tick(); r.drv.tick();
    expect(r.drv.size).toBe(100 + 1024 + 1040 + 1056);  // still slow: capped at rateAlloc
    expect(r.drv.slowCycles).toBe(1);
    r.drv.tick();                                         // slow cycles over: the rest at once
    expect(r.drv.size).toBe(3500);
  });

  it('refused pages are set aside, freed at the end of the cycle; 16 refusals stop the cycle', async () => {
    const r = await setup();
    const pinned: number[] = [];
    for (let g = r.vm.frameCount - 2; pinned.length < 20; g--) { r.vm.p2m.setState(g as Gfn, P2M.PAGE_TABLE); pinned.push(g); }
    r.dev.setTarget(100);
    r.drv.tick();
    expect(r.drv.stats.refused).toBe(20);
    expect(r.drv.size).toBe(80);
    expect(pinned.some((g) => r.dev.isLocked(g))).toBe(false);
    expect(r.alloc.available + r.drv.size + 1).toBe(r.vm.frameCount - 0x200 - DATA.length);
    r.drv.tick();
    expect(r.drv.size).toBe(100);
  });

  it('unload sends START(0) before popping, so later touches are not violations', async () => {
    const r = await setup();
    r.dev.setTarget(64);
    r.drv.tick();
    const pages = r.drv.ballooned();
    r.drv.unload();
    expect(r.dev.size).toBe(0);
    expect(r.dev.capabilities).toBe(0);
    guestWrite(r, pages.slice(0, 8));
    guestCheck(r, pages.slice(0, 8));
    expect(r.dev.violationCount).toBe(0);
  });
});
