// The hypervisor side of ballooning: the memory work the balloon device asks for (as
// Firecracker's util::remove_range does for its balloon device). Inflating a gfn unmaps it
// from the p2m as BALLOONED (its EPT entry goes with it) and frees its host frame; a shared
// frame loses a reference and a swapped page its slot first (their pagers own them).
// Deflating makes the gfn unbacked again, zero-filled on next touch.

import type { Gfn, Hfn } from '../../core/addr.js';
import type { HostFrames } from '../monitor/frames.js';
import { P2M } from '../monitor/p2m.js';
import type { Vm } from '../monitor/vm.js';

// It has the shape of the balloon device's BalloonBackend (devices/balloon.ts); the board
// hands one to the other, and the type check happens there, so this layer imports no device.
export class VmBalloonBackend {
  constructor(readonly vm: Vm, private readonly frames: HostFrames) {}

  get vmId(): number { return this.vm.id; }
  get frameCount(): number { return this.vm.frameCount; }

  pinned(gfn: number): boolean {
    return (this.vm.p2m.raw(gfn as Gfn) & (P2M.PAGE_TABLE | P2M.BALLOONED)) !== 0;
  }

  inflate(gfn: number): void {
    const p2m = this.vm.p2m;
    if (p2m.raw(gfn as Gfn) & (P2M.SHARED | P2M.SWAPPED) && !this.vm.discard(gfn as Gfn)) {
      throw new Error(`gfn 0x${gfn.toString(16)} is shared or swapped but no pager owns it`);
    }
    const hfn = p2m.unmap(gfn as Gfn, P2M.BALLOONED);
    if (hfn !== null) this.frames.free(hfn as Hfn, this.vm.id);
  }

  deflate(gfn: number): void {
    this.vm.p2m.setState(gfn as Gfn, 0, P2M.BALLOONED);
  }

  absent(gfn: number): boolean {
    return (this.vm.p2m.raw(gfn as Gfn) & (P2M.BALLOONED | P2M.SWAPPED)) !== 0;
  }

  read(gpa: bigint, len: number): Uint8Array { return this.vm.memory.read(gpa, len); }
  write(gpa: bigint, data: Uint8Array): void { this.vm.memory.write(gpa, data); }

  isBallooned(gpa: bigint): boolean {
    return this.vm.contains(gpa) && (this.vm.p2m.raw(Number(gpa >> 12n) as Gfn) & P2M.BALLOONED) !== 0;
  }
}
