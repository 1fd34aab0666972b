// The idle kernel: boots, touches a few pages of its own, then halts every tick —
// what an idle VM looks like to the idle-memory tax (little memory actively used).
import type { AccessBatch } from '../src/core/batch.js';
import type { Kernel, Workload } from './kernel/kernel.js';

export const IDLE_BASE = 0x10_0000n;

export class IdleKernel implements Workload {
  readonly name = 'idle';
  ticks = 0;
  /** `maxTicks`: stop after that many ticks (default: never). */
  constructor(readonly pages = 4, readonly maxTicks = Infinity) {}
  init(k: Kernel): void { k.mmap(k.current, IDLE_BASE, BigInt(this.pages * 4096)); }
  fill(k: Kernel, b: AccessBatch): boolean {
    // A timer tick: a little kernel text, a counter in one of its pages, then HLT.
    if (this.ticks >= this.maxTicks) return false;
    const p = this.ticks % this.pages;
    b.fetch(k.textVa(this.ticks * 64), 8).store(Number(IDLE_BASE) + p * 4096, BigInt(++this.ticks)).hlt();
    return true;
  }
}
