// A kernel that fills memory and then idles: it writes one distinct word into each of
// `pages` pages (as an OS zeroing or loading its memory at boot), then only runs a timer
// tick (a little text, HLT). What an idle VM that once touched its memory looks like to
// the hypervisor: every page backed, almost none in use.
import type { AccessBatch } from '../src/core/batch.js';
import type { Kernel, Workload } from './kernel/kernel.js';

export const FILL_BASE = 0x3000_0000n;
/** The word the filler writes at the start of page p. */
export const fillWord = (p: number): bigint => 0x5eed_0000_0000n + BigInt(p);

export class Filler implements Workload {
  readonly name = 'filler';
  private next = 0;
  ticks = 0;
  constructor(readonly pages: number) {}
  get written(): boolean { return this.next >= this.pages; }
  init(k: Kernel): void { k.mmap(k.current, FILL_BASE, BigInt(this.pages * 4096)); }
  fill(k: Kernel, b: AccessBatch): boolean {
    if (!this.written) {
      for (let i = 0; i < 64 && this.next < this.pages; i++, this.next++) b.store(FILL_BASE + BigInt(this.next * 4096), fillWord(this.next));
      return true;
    }
    b.fetch(k.textVa(this.ticks++ * 64), 8).hlt();
    return true;
  }
}
