// The strict host balloon device: every command, every status code, batching, 2 MiB pages,
// the reset sequence, violations and isolation.
import { describe, it, expect } from 'vitest';
import { CMD, CAP, STATUS, FRAMES_2M, classifyBalloonExit } from '../../src/devices/balloon.js';
import { P2M, isUnbacked } from '../../src/hypervisor/index.js';
import type { Gfn } from '../../src/core/addr.js';
import { rig, DIRECT, type Rig } from './setup.js';

const ALL = CAP.BASIC_CMDS | CAP.BATCHED_CMDS | CAP.BATCHED_2M_CMDS;
const BATCH = 0x300; // gfn of the batch page in these tests

async function started(caps = ALL, target = 1024, o: Parameters<typeof rig>[0] = {}): Promise<Rig> {
  const r = await rig(o);
  r.dev.setTarget(target);
  expect(r.call(CMD.START, caps).status).toBe(STATUS.SUCCESS_WITH_CAPABILITIES);
  return r;
}

function batch(r: Rig, cmd: number, entries: bigint[], page = BATCH) {
  const bytes = new Uint8Array(entries.length * 8);
  const dv = new DataView(bytes.buffer);
  entries.forEach((e, i) => dv.setBigUint64(i * 8, e, true));
  r.vm.memory.write(BigInt(page) << 12n, bytes);
  const res = r.call(cmd, page, entries.length);
  const st = entries.map((_, i) => Number(r.vm.memory.read64((BigInt(page) << 12n) + BigInt(i * 8)) & 0x1fn));
  return { ...res, st };
}
const e = (gfn: number) => BigInt(gfn) << 12n;
const kinds = (r: Rig) => r.dev.violations.map((v) => v.kind);

describe('balloon device: START, GET_TARGET, GUEST_ID', () => {
  it('START returns SUCCESS_WITH_CAPABILITIES and the intersection in ECX', async () => {
    const r = await rig({ dev: { hostCapabilities: CAP.BASIC_CMDS | CAP.BATCHED_CMDS } });
    const s = r.call(CMD.START, ALL | CAP.SIGNALLED_WAKEUP_CMD | CAP.TARGET_64 | 1);
    expect(s).toMatchObject({ status: 0x0300_0000, ecx: CAP.BASIC_CMDS | CAP.BATCHED_CMDS });
    expect(r.call(CMD.START, 0).ecx).toBe(0);
    expect(r.dev.capabilities).toBe(0);
  });

  it('GET_TARGET returns the host target in EBX; a bad limit is refused', async () => {
    const r = await started(ALL, 0);
    r.dev.setTarget(777);
    expect(r.call(CMD.GET_TARGET, r.vm.frameCount)).toMatchObject({ status: STATUS.SUCCESS, rbx: 777n });
    expect(r.call(CMD.GET_TARGET, r.vm.frameCount + 1).status).toBe(STATUS.ERROR_CMD_INVALID);
    expect(kinds(r)).toEqual(['bad-limit']);
    expect(() => r.dev.setTarget(r.vm.frameCount + 1)).toThrow(RangeError);
  });

  it('GUEST_ID records the guest type and returns no target', async () => {
    const r = await started();
    const res = r.call(CMD.GUEST_ID, 1);
    expect(res.status).toBe(STATUS.SUCCESS);
    expect(res.rbx).toBe(1n);
    expect(r.dev.guestId).toBe(1);
  });

  it('bad magic, unknown commands, commands before START, commands not negotiated', async () => {
    const r = await rig();
    expect(r.call(CMD.GET_TARGET, 100).status).toBe(STATUS.ERROR_RESET);
    expect(r.call(CMD.LOCK, 0x400).status).toBe(STATUS.ERROR_RESET);
    expect(r.call(CMD.START, ALL, 0, 0x564d5868).status).toBe(STATUS.ERROR_CMD_INVALID);
    r.call(CMD.START, CAP.BATCHED_CMDS);
    expect(r.call(5).status).toBe(STATUS.ERROR_CMD_INVALID);
    expect(r.call(11).status).toBe(STATUS.ERROR_CMD_INVALID);
    expect(r.call(CMD.LOCK, 0x400).status).toBe(STATUS.ERROR_CMD_INVALID);
    expect(r.call(CMD.BATCHED_2M_LOCK, BATCH, 1).status).toBe(STATUS.ERROR_CMD_INVALID);
    expect(r.call(CMD.VMCI_DOORBELL_SET, 1, 2).status).toBe(STATUS.ERROR_CMD_INVALID);
    expect(kinds(r)).toEqual(['before-start', 'before-start', 'bad-magic', 'unknown-command', 'unknown-command',
      'not-negotiated', 'not-negotiated', 'not-negotiated']);
    expect(r.dev.violations[0].message).toMatch(/target before START/);
    expect(r.dev.violations[5].message).toMatch(/lock needs capability 0x2/);
  });

  it('VMCI_DOORBELL_SET when the host offers signalled wakeup', async () => {
    const r = await rig({ dev: { hostCapabilities: ALL | CAP.SIGNALLED_WAKEUP_CMD } });
    expect(r.call(CMD.START, ALL | CAP.SIGNALLED_WAKEUP_CMD).ecx).toBe(ALL | CAP.SIGNALLED_WAKEUP_CMD);
    expect(r.call(CMD.VMCI_DOORBELL_SET, 3, 4).status).toBe(STATUS.SUCCESS);
    expect(r.dev.doorbell).toEqual({ context: 3, resource: 4 });
  });
});

describe('balloon device: LOCK / UNLOCK', () => {
  it('LOCK takes the gfn out of the p2m, frees its host frame, returns the target', async () => {
    const r = await started(ALL, 50);
    const free0 = r.hv.counts().vmFree, used0 = r.hv.frames.usedBy(r.vm.id);
    expect(r.call(CMD.LOCK, 0x400)).toMatchObject({ status: STATUS.SUCCESS, rbx: 50n });
    expect(r.vm.p2m.raw(0x400 as Gfn)).toBe(P2M.BALLOONED);
    expect(r.hv.counts().vmFree).toBe(free0 + 1);
    expect(r.hv.frames.usedBy(r.vm.id)).toBe(used0 - 1);
    expect(r.dev.size).toBe(1);
    expect(r.dev.isLocked(0x400)).toBe(true);
  });

  it('UNLOCK returns the gfn unbacked: zero-filled on next touch', async () => {
    const r = await started();
    r.vm.memory.write64(0x400n << 12n, 0xdeadn);
    r.call(CMD.LOCK, 0x400);
    expect(r.call(CMD.UNLOCK, 0x400)).toMatchObject({ status: STATUS.SUCCESS, rbx: 1024n });
    expect(isUnbacked(r.vm.p2m.raw(0x400 as Gfn))).toBe(true);
    expect(r.vm.memory.read64(0x400n << 12n)).toBe(0n);
    expect(r.dev.size).toBe(0);
  });

  it('PPN_LOCKED, PPN_UNLOCKED, PPN_INVALID (range and 32 bits), PPN_NOTNEEDED, PPN_PINNED, BUSY', async () => {
    const r = await started(ALL, 2);
    r.call(CMD.LOCK, 0x400);
    expect(r.call(CMD.LOCK, 0x400).status).toBe(STATUS.ERROR_PPN_LOCKED);
    expect(r.call(CMD.UNLOCK, 0x401).status).toBe(STATUS.ERROR_PPN_UNLOCKED);
    expect(r.call(CMD.LOCK, r.vm.frameCount).status).toBe(STATUS.ERROR_PPN_INVALID);
    expect(r.call(CMD.LOCK, 1n << 32n).status).toBe(STATUS.ERROR_PPN_INVALID);
    r.vm.p2m.setState(0x402 as Gfn, P2M.PAGE_TABLE);
    expect(r.call(CMD.LOCK, 0x402).status).toBe(STATUS.ERROR_PPN_PINNED);
    r.call(CMD.LOCK, 0x403);
    expect(r.call(CMD.LOCK, 0x404).status).toBe(STATUS.ERROR_PPN_NOTNEEDED);
    r.dev.busy = true;
    expect(r.call(CMD.UNLOCK, 0x400).status).toBe(STATUS.ERROR_BUSY);
    expect(kinds(r)).toEqual(['double-lock', 'unlock-unlocked', 'ppn-out-of-range', 'ppn-too-wide']);
    expect(r.dev.violations[2].message).toMatch(/PPN 0x800 is outside the VM \(2048 frames\)/);
    expect(r.stats.snapshot()).toMatchObject({ size: 2, inflated: 2, refused: 2, violations: 4 });
  });
});

describe('balloon device: batched commands and the batch page', () => {
  it('BATCHED_LOCK / BATCHED_UNLOCK write each entry status back', async () => {
    const r = await started(ALL, 3);
    const free0 = r.hv.counts().vmFree;
    const l = batch(r, CMD.BATCHED_LOCK, [e(0x400), e(0x401), e(0x401), e(0x9999), e(0x402), e(0x403)]);
    expect(l).toMatchObject({ status: STATUS.SUCCESS, rbx: 3n });
    expect(l.st).toEqual([0, 0, STATUS.ERROR_PPN_LOCKED, STATUS.ERROR_PPN_INVALID, 0, STATUS.ERROR_PPN_NOTNEEDED]);
    expect(r.hv.counts().vmFree).toBe(free0 + 3);
    const u = batch(r, CMD.BATCHED_UNLOCK, [e(0x400), e(0x405), e(0x401)]);
    expect(u.st).toEqual([0, STATUS.ERROR_PPN_UNLOCKED, 0]);
    expect(r.dev.size).toBe(1);
  });

  it('malformed batch pages: entry counts, page PFN, reserved bits, locking the batch page, ballooned page', async () => {
    const r = await started(ALL, 100);
    expect(r.call(CMD.BATCHED_LOCK, BATCH, 0).status).toBe(STATUS.ERROR_CMD_INVALID);
    expect(r.call(CMD.BATCHED_LOCK, BATCH, 513).status).toBe(STATUS.ERROR_CMD_INVALID);
    expect(r.call(CMD.BATCHED_LOCK, r.vm.frameCount, 1).status).toBe(STATUS.ERROR_PPN_INVALID);
    expect(batch(r, CMD.BATCHED_LOCK, [e(0x400) | 0x20n, e(0x401) | 1n, e(BATCH)]).st)
      .toEqual([STATUS.ERROR_PPN_INVALID, STATUS.ERROR_PPN_INVALID, STATUS.ERROR_PPN_PINNED]);
    r.call(CMD.LOCK, 0x500);
    expect(r.call(CMD.BATCHED_LOCK, 0x500, 1).status).toBe(STATUS.ERROR_PPN_INVALID);
    expect(kinds(r)).toEqual(Array(7).fill('malformed-batch'));
    expect(r.dev.violations.map((v) => v.message).join('\n')).toMatch(/0 entries[\s\S]*513 entries[\s\S]*outside the VM[\s\S]*reserved[\s\S]*reserved[\s\S]*batch page itself[\s\S]*ballooned/);
  });
});

describe('balloon device: 2 MiB pages', () => {
  it('BATCHED_2M_LOCK frees 512 host frames per page; UNLOCK must match the page size', async () => {
    const r = await started(ALL, 2048);
    const free0 = r.hv.counts().vmFree;
    const l = batch(r, CMD.BATCHED_2M_LOCK, [e(0x400), e(0x201), e(0x600)]);
    expect(l.st).toEqual([0, STATUS.ERROR_PPN_INVALID, 0]);
    expect(r.hv.counts().vmFree).toBe(free0 + 2 * FRAMES_2M);
    expect(r.dev.size).toBe(1024);
    expect(r.vm.p2m.count(P2M.BALLOONED, P2M.BALLOONED)).toBe(1024);
    expect(r.call(CMD.UNLOCK, 0x410).status).toBe(STATUS.ERROR_PPN_UNLOCKED);
    expect(batch(r, CMD.BATCHED_UNLOCK, [e(0x400)]).st).toEqual([STATUS.ERROR_PPN_UNLOCKED]);
    expect(batch(r, CMD.BATCHED_2M_LOCK, [e(0x5ff)]).st).toEqual([STATUS.ERROR_PPN_INVALID]); // unaligned
    expect(batch(r, CMD.BATCHED_2M_LOCK, [e(0x400)]).st).toEqual([STATUS.ERROR_PPN_LOCKED]);
    expect(batch(r, CMD.BATCHED_2M_UNLOCK, [e(0x400), e(0x600)]).st).toEqual([0, 0]);
    expect(r.dev.size).toBe(0);
    expect(kinds(r)).toEqual(['malformed-batch', 'page-size-mismatch', 'page-size-mismatch', 'malformed-batch', 'double-lock']);
    expect(r.dev.violations[1].message).toMatch(/locked as a 2 MiB page at 0x400/);
  });
});

describe('balloon device: reset sequence and touching ballooned pages', () => {
  it('host-requested reset: ERROR_RESET until START, which pops the host balloon', async () => {
    const r = await started(ALL, 10);
    r.call(CMD.LOCK, 0x400); r.call(CMD.LOCK, 0x401);
    r.dev.requestReset();
    expect(r.call(CMD.GET_TARGET, 100).status).toBe(STATUS.ERROR_RESET);
    expect(r.call(CMD.UNLOCK, 0x400).status).toBe(STATUS.ERROR_RESET);
    expect(r.dev.size).toBe(2);
    expect(r.call(CMD.START, ALL).status).toBe(STATUS.SUCCESS_WITH_CAPABILITIES);
    expect(r.dev.size).toBe(0);
    expect(r.vm.p2m.count(P2M.BALLOONED, P2M.BALLOONED)).toBe(0);
    expect(r.call(CMD.GET_TARGET, 100)).toMatchObject({ status: 0, rbx: 10n });
    expect(r.dev.violationCount).toBe(0);
    expect(r.stats.snapshot()).toMatchObject({ resets: 1, popped: 2 });
  });

  it('a vCPU touching a ballooned gfn exits; classifyBalloonExit records it, pops, forces a reset', async () => {
    const r = await started(ALL, 10);
    r.call(CMD.LOCK, 0x400);
    const b = r.hv.machine.createBatch(4);
    b.store(0x4000_0000_00n + 0x400_000n + 8n, 7n);
    const x = r.vm.vcpus[0].run(b);
    expect(x).toMatchObject({ reason: 'EPT_VIOLATION', p2m: P2M.BALLOONED });
    const c = classifyBalloonExit(r.dev, x)!;
    expect(c.violation).toMatchObject({ kind: 'touched-ballooned', gpa: 0x400_008n, gfn: 0x400 });
    expect(c.violation.message).toMatch(/touched ballooned gpa 0x400008 .* at gva 0x4000400008 without deflating/);
    expect(r.vm.vcpus[0].run(b, c.resumeAt)).toEqual({ reason: 'end' });
    expect(r.vm.memory.read64(0x400_000n)).toBe(0n);
    expect(r.vm.memory.read64(0x400_008n)).toBe(7n);
    expect(r.call(CMD.GET_TARGET, 100).status).toBe(STATUS.ERROR_RESET);
    expect(classifyBalloonExit(r.dev, { reason: 'HLT', index: 0 })).toBeNull();
  });

  it('a write-protect exit on a page that is not ballooned is no balloon touch', async () => {
    const r = await started(ALL, 10);
    expect(r.call(CMD.LOCK, 0x400).status).toBe(STATUS.SUCCESS);
    r.vm.p2m.setState(0x401 as Gfn, P2M.WRITE_PROTECTED); // protected for another reason
    const b = r.hv.machine.createBatch(1);
    b.store(DIRECT + 0x401_000n + 8n, 7n);
    const x = r.vm.vcpus[0].run(b);
    expect(x).toMatchObject({ reason: 'WRITE_PROTECT', gpa: 0x401_008n, gfn: 0x401 });
    expect(classifyBalloonExit(r.dev, x)).toBeNull();
    expect(r.dev.violationCount).toBe(0);
    expect(r.dev.size).toBe(1);
    expect(r.vm.p2m.raw(0x400 as Gfn) & P2M.BALLOONED).toBe(P2M.BALLOONED);
    expect(r.call(CMD.GET_TARGET, 100)).toMatchObject({ status: STATUS.SUCCESS, rbx: 10n });
  });

  it('violations in one VM leave another VM untouched', async () => {
    const a = await started(ALL, 100);
    const b = await rig({ hv: a.hv });
    b.vm.memory.write64(0x400n << 12n, 0x1234n);
    const before = { p2m: b.vm.p2m.raw(0x400 as Gfn), used: a.hv.frames.usedBy(b.vm.id) };
    a.call(CMD.LOCK, 0x400); a.call(CMD.LOCK, 0x400); a.call(CMD.UNLOCK, 0x401); a.call(CMD.LOCK, 1n << 40n);
    batch(a, CMD.BATCHED_LOCK, [e(0x401), e(0xfffff), 0xffffffffffffffffn]);
    expect(b.vm.p2m.raw(0x400 as Gfn)).toBe(before.p2m);
    expect(a.hv.frames.usedBy(b.vm.id)).toBe(before.used);
    expect(b.vm.memory.read64(0x400n << 12n)).toBe(0x1234n);
    expect(b.dev.violationCount).toBe(0);
  });
});

describe('balloon statistics', () => {
  it('counts inflate/deflate rates per simulated second with a clock', async () => {
    let now = 0;
    const r = await started(ALL, 100, { clock: () => now });
    for (let g = 0x400; g < 0x410; g++) r.call(CMD.LOCK, g);
    now = 1;
    expect(r.stats.snapshot()).toMatchObject({ inflateRate: 16, deflateRate: 0, size: 16, target: 100 });
    for (let g = 0x400; g < 0x404; g++) r.call(CMD.UNLOCK, g);
    now = 2;
    expect(r.stats.snapshot()).toMatchObject({ inflateRate: 0, deflateRate: 4, inflated: 16, deflated: 4, size: 12 });
    now = 5;
    expect(r.stats.snapshot()).toMatchObject({ inflateRate: 0, deflateRate: 0 });
    expect(r.stats.snapshot().statusCounts[STATUS.SUCCESS]).toBe(20);
    const noClock = await started();
    expect(noClock.stats.snapshot().inflateRate).toBeNull();
  });
});

