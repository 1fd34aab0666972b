// Conformance: the Linux driver's hypercall sequence, replayed over the one-`inl`
// transport into the strict balloon device, draws no violation — reset with the doorbell
// clean-up before any START, START with 0x3E, the doorbell, GUEST_ID, GET_TARGET, batched
// 2 MiB inflation with refused pages split into 4 KiB ones, deflation, a host-requested
// reset, unload with START(0).
import { describe, it, expect } from 'vitest';
import { rig, TestAllocator, PT_END } from './setup.js';
import { BackdoorInl } from '../../src/devices/backdoor-inl.js';
import { CMD, STATUS, CAP, type BalloonDevice } from '../../src/devices/balloon.js';
import { P2M } from '../../src/hypervisor/monitor/p2m.js';
import type { Gfn } from '../../src/core/addr.js';
import type { Doorbell } from '../../src/devices/doorbell.js';
import { LinuxBalloonReplay, LINUX_CAPS } from './linux-replay.js';

const VM_MIB = 64, FRAMES = VM_MIB * 256;
const BATCH_PAGES = [0x1f0, 0x1f1];

async function setup() {
  const rings: Doorbell[] = [];
  const r = await rig({ vmMiB: VM_MIB, hostMiB: 128, dev: { hostCapabilities: LINUX_CAPS, onDoorbell: (d) => rings.push(d) } });
  // The host cannot take page-table frames: one in each of the 2 MiB pages 1..16 is pinned.
  for (let k = 1; k <= 16; k++) r.vm.p2m.setState((512 * k + 7) as Gfn, P2M.PAGE_TABLE);
  const inl = new BackdoorInl(r.dev);
  const alloc = new TestAllocator(FRAMES, BATCH_PAGES);
  const drv = new LinuxBalloonReplay(inl, r.vm.memory, alloc, FRAMES - PT_END, [...BATCH_PAGES]);
  return { ...r, rings, inl, alloc, drv };
}

const cmds = (drv: LinuxBalloonReplay, from = 0) => drv.calls.slice(from).map((c) => c.cmd);
const clean = (dev: BalloonDevice, inl: BackdoorInl) => {
  expect(dev.violations.map((v) => v.message)).toEqual([]);
  expect(dev.violationCount).toBe(0);
  expect(inl.misuses).toBe(0);
};

describe('balloon device: the Linux driver conformance replay', () => {
  it('reset, inflate with refused 2 MiB pages split to 4 KiB, doorbell, deflate, host reset, unload: no violation', async () => {
    const { dev, inl, drv, rings, hv, vm } = await setup();
    dev.setTarget(12_000);
    expect(rings).toEqual([]); // no doorbell yet: nothing rings

    drv.tick();
    // Reset: DOORBELL_SET(~0, ~0) before any START, START(0x3E) granted in full, the doorbell, GUEST_ID, then GET_TARGET.
    expect(drv.calls.slice(0, 5).map((c) => [c.cmd, c.rax])).toEqual([
      [CMD.VMCI_DOORBELL_SET, 0], [CMD.START, STATUS.SUCCESS_WITH_CAPABILITIES], [CMD.VMCI_DOORBELL_SET, 0],
      [CMD.GUEST_ID, 0], [CMD.GET_TARGET, 0]]);
    expect(drv.calls[0].rbx).toBe(0xffff_ffff_ffff_ffffn);
    expect(drv.caps).toBe(LINUX_CAPS);
    expect(dev.doorbell).toEqual({ context: 0, resource: 0x40 });
    // The first 2 MiB batch: ⌈12000/512⌉ = 24 pages, the 16 with a page-table frame refused (PINNED), PFNs kept.
    const first = drv.calls[5];
    expect([first.cmd, first.rsi, first.rax, first.pfnsKept]).toEqual([CMD.BATCHED_2M_LOCK, 24n, 0, true]);
    expect(first.statuses!.filter((s) => s === STATUS.ERROR_PPN_PINNED)).toHaveLength(16);
    expect(first.statuses!.filter((s) => s === 0)).toHaveLength(8);
    // 16 refusals: the refused 2 MiB pages are split and reused as 4 KiB pages (BATCHED_LOCK of 512).
    expect(drv.calls[6]).toMatchObject({ cmd: CMD.BATCHED_LOCK, rsi: 512n, rax: 0, pfnsKept: true });
    expect(drv.calls[6].statuses!.filter((s) => s !== 0)).toEqual([STATUS.ERROR_PPN_PINNED]);
    expect(cmds(drv, 6).every((c) => c === CMD.BATCHED_LOCK)).toBe(true);
    expect(drv.size).toBe(dev.size);
    expect(12_000 - drv.size).toBeGreaterThanOrEqual(0);
    expect(12_000 - drv.size).toBeLessThan(16); // only the 4 KiB refusals short (≤ 15 pinned frames)
    expect(hv.frames.usedBy(vm.id)).toBeLessThanOrEqual(FRAMES - dev.size);
    clean(dev, inl);

    // The host lowers the target: the doorbell rings once (an interrupt at vector 0x40 on the board).
    dev.setTarget(2_000);
    dev.setTarget(2_000);
    expect(rings).toEqual([{ context: 0, resource: 0x40 }]);
    let at = drv.calls.length;
    drv.tick();
    const deflate = drv.calls.slice(at + 1);
    expect(new Set(deflate.map((c) => c.cmd))).toEqual(new Set([CMD.BATCHED_UNLOCK, CMD.BATCHED_2M_UNLOCK]));
    expect(deflate.every((c) => c.rax === 0 && c.statuses!.every((s) => s === 0) && c.pfnsKept)).toBe(true);
    const order = deflate.map((c) => c.cmd).join(',');
    expect(order).toMatch(/^(7,)+(9,?)+$/); // the 4 KiB list first, then 2 MiB pages
    expect(drv.size).toBe(dev.size);
    expect(drv.size).toBeLessThanOrEqual(2_000 + 511);
    clean(dev, inl);

    // A host-requested reset: GET_TARGET answers 7; the next pass clears the doorbell (never answered 7), STARTs again.
    dev.requestReset();
    at = drv.calls.length;
    drv.tick();
    expect(drv.calls.slice(at).map((c) => [c.cmd, c.rax])).toEqual([[CMD.GET_TARGET, STATUS.ERROR_RESET]]);
    at = drv.calls.length;
    drv.tick();
    expect(cmds(drv, at).slice(0, 5)).toEqual([CMD.VMCI_DOORBELL_SET, CMD.START, CMD.VMCI_DOORBELL_SET, CMD.GUEST_ID, CMD.GET_TARGET]);
    expect(drv.calls.slice(at).every((c) => c.rax !== STATUS.ERROR_RESET)).toBe(true);
    expect(drv.calls[at + 1].rbx).toBe(BigInt(LINUX_CAPS));
    expect(drv.size).toBe(dev.size);
    expect(drv.size).toBeGreaterThan(0);
    clean(dev, inl);

    // Unload: DOORBELL_SET(~0, ~0), START(0); the host forgets the balloon without UNLOCKs.
    at = drv.calls.length;
    drv.unload();
    expect(drv.calls.slice(at).map((c) => [c.cmd, c.rax])).toEqual([[CMD.VMCI_DOORBELL_SET, 0], [CMD.START, STATUS.SUCCESS_WITH_CAPABILITIES]]);
    expect(dev.size).toBe(0);
    expect(dev.doorbell).toBeNull();
    clean(dev, inl);
    dev.setTarget(100);
    expect(rings).toHaveLength(1); // no doorbell after unload
  });

  it('the inl transport: zero-extended outputs, RDX/RSI/RDI untouched, 64-bit RBX in and out', async () => {
    const { dev, inl } = await setup();
    const regs = { rax: 0xffff_ffff_0000_0000n | 0x456c6d6fn, rbx: BigInt(LINUX_CAPS), rcx: 0xdead_0000_0000_0000n, rdx: 0x5670n, rsi: 0n, rdi: 7n };
    const out = inl.handle({ port: 0x5670, size: 4, direction: 'in' }, regs);
    expect(out).toEqual({ rax: 0x0300_0000n, rcx: BigInt(LINUX_CAPS) });
    dev.setTarget(1234);
    const get = (limit: bigint) => inl.handle({ port: 0x5670, size: 4, direction: 'in' }, { ...regs, rcx: BigInt(CMD.GET_TARGET), rbx: limit });
    expect(get(BigInt(FRAMES - 1))).toEqual({ rax: 0n, rbx: 1234n });
    expect(dev.violationCount).toBe(0);
    // RBX reaches the device with all 64 bits: 2^33 + 5 frames is not truncated to 5.
    expect(get((1n << 33n) + 5n)).toEqual({ rax: BigInt(STATUS.ERROR_CMD_INVALID) });
    expect(dev.violations.map((v) => v.message)).toEqual([expect.stringMatching(/limit 8589934597 frames/)]);
    expect(inl.calls).toBe(3);
  });

  it('misuse of the port (OUT, narrow IN) is recorded and reads all ones in its size', async () => {
    const { inl, dev } = await setup();
    const regs = { rax: 0x1122_3344n, rbx: 0n, rcx: 0n, rdx: 0x5670n, rsi: 0n, rdi: 0n };
    expect(inl.handle({ port: 0x5670, size: 1, direction: 'in' }, regs)).toEqual({ rax: 0x1122_33ffn });
    expect(inl.handle({ port: 0x5670, size: 4, direction: 'out' }, regs)).toEqual({});
    expect(inl.misuses).toBe(2);
    expect(inl.calls).toBe(0);
    expect(inl.misuseLog[0].message).toMatch(/one 32-bit IN/);
    expect(dev.violationCount).toBe(0);
  });

  it('the strict device still reports what it reported: a doorbell SET before START, or without SIGNALLED_WAKEUP', async () => {
    const { dev, drv } = await setup();
    expect(drv.hypercall(CMD.VMCI_DOORBELL_SET, 0n, 0x40n).rax).toBe(STATUS.ERROR_RESET);
    expect(dev.violations.map((v) => v.kind)).toEqual(['before-start']);
    drv.hypercall(CMD.START, BigInt(CAP.BASIC_CMDS | CAP.BATCHED_CMDS), 0n);
    expect(drv.hypercall(CMD.VMCI_DOORBELL_SET, 0n, 0x40n).rax).toBe(STATUS.ERROR_CMD_INVALID);
    expect(drv.hypercall(CMD.VMCI_DOORBELL_SET, 0xffff_ffffn, 0xffff_ffffn).rax).toBe(0); // the clear form, zero-extended u32s
    expect(dev.violations.map((v) => v.kind)).toEqual(['before-start', 'not-negotiated']);
  });
});
