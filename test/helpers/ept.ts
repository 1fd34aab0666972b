// A minimal EPT builder for tests, independent of src/hypervisor/monitor/ept.ts on purpose:
// the core's EPT walker is tested against tables a test writes bit by bit, not against the
// hypervisor's builder it would share a bug with.
import { EPT, type FrameBump, type PhysicalMemory } from '../../src/index.js';

/** A minimal EPT builder: maps gpa → hpa with `size` pages and rights. */
export class Ept {
  readonly root: bigint;
  constructor(private mem: PhysicalMemory, private frames: FrameBump, readonly levels: 4 | 5 = 4) {
    this.root = frames.alloc();
  }
  entryAddr(gpa: bigint, level: number): bigint {
    let t = this.root;
    for (let l = this.levels; l > level; l--) {
      const ea = t + ((gpa >> BigInt(3 + 9 * l)) & 511n) * 8n;
      let e = this.mem.read64(ea);
      if ((e & 7n) === 0n) { e = this.frames.alloc() | 7n; this.mem.write64(ea, e); }
      t = e & 0xf_ffff_ffff_f000n;
    }
    return t + ((gpa >> BigInt(3 + 9 * level)) & 511n) * 8n;
  }
  map(gpa: bigint, hpa: bigint, bytes: bigint, size = 4096n, rights = EPT.R | EPT.W | EPT.X): void {
    const level = size === 4096n ? 1 : size === 0x200000n ? 2 : 3;
    for (let o = 0n; o < bytes; o += size) {
      this.mem.write64(this.entryAddr(gpa + o, level), (hpa + o) | rights | EPT.MT_WB | (level > 1 ? EPT.PS : 0n));
    }
  }
}

