// The balloon device against a plain model backend: the device decides (protocol, strict
// checks, target), the backend does the memory work. This pins the split: the device runs
// with no hypervisor at all, and calls the backend exactly for the frames it accepts.
import { describe, it, expect } from 'vitest';
import { BalloonDevice, CMD, CAP, STATUS, BALLOON_MAGIC, type BalloonBackend } from '../../src/devices/balloon.js';

class ModelBackend implements BalloonBackend {
  readonly vmId = 7;
  readonly frameCount = 2048;
  readonly ballooned = new Set<number>();
  readonly pinnedSet = new Set<number>();
  readonly log: string[] = [];
  pinned(g: number) { return this.pinnedSet.has(g) || this.ballooned.has(g); }
  inflate(g: number) { this.log.push(`in ${g}`); this.ballooned.add(g); }
  deflate(g: number) { this.log.push(`out ${g}`); this.ballooned.delete(g); }
  absent(g: number) { return this.ballooned.has(g); }
  read(_gpa: bigint, len: number) { return new Uint8Array(len); }
  write() {}
  isBallooned(gpa: bigint) { return this.ballooned.has(Number(gpa >> 12n)); }
}

const call = (d: BalloonDevice, ecx: number, rbx = 0n) => d.call({ eax: BALLOON_MAGIC, ecx, rbx, esi: 0, edi: 0 });

describe('balloon device with a model backend', () => {
  it('LOCK/UNLOCK inflate and deflate exactly the accepted frames; pinned and double locks do not reach the backend', () => {
    const b = new ModelBackend();
    const d = new BalloonDevice(b, { hostCapabilities: CAP.BASIC_CMDS });
    d.setTarget(2);
    expect(call(d, CMD.START, BigInt(CAP.BASIC_CMDS)).eax).toBe(STATUS.SUCCESS_WITH_CAPABILITIES);
    expect(call(d, CMD.LOCK, 10n)).toEqual({ eax: STATUS.SUCCESS, rbx: 2n });
    expect(call(d, CMD.LOCK, 10n).eax).toBe(STATUS.ERROR_PPN_LOCKED);
    b.pinnedSet.add(11);
    expect(call(d, CMD.LOCK, 11n).eax).toBe(STATUS.ERROR_PPN_PINNED);
    expect(call(d, CMD.LOCK, 12n).eax).toBe(STATUS.SUCCESS);
    expect(call(d, CMD.LOCK, 13n).eax).toBe(STATUS.ERROR_PPN_NOTNEEDED); // at target
    expect(call(d, CMD.UNLOCK, 10n).eax).toBe(STATUS.SUCCESS);
    expect(b.log).toEqual(['in 10', 'in 12', 'out 10']);
    expect(d.size).toBe(1);
    expect(d.violations.map((v) => v.message)).toEqual(['VM 7 balloon: lock PPN 0xa is already in the balloon']);
  });

  it('a guest touch of a ballooned gpa pops the balloon through the backend', () => {
    const b = new ModelBackend();
    const d = new BalloonDevice(b);
    d.setTarget(4);
    call(d, CMD.START, BigInt(CAP.BASIC_CMDS));
    call(d, CMD.LOCK, 5n);
    d.guestTouched(5n << 12n);
    expect(b.log).toEqual(['in 5', 'out 5']);
    expect(call(d, CMD.GET_TARGET, 100n).eax).toBe(STATUS.ERROR_RESET);
  });
});
