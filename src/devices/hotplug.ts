// The memory hotplug device (register layout in hotplug-protocol.ts), host side. It holds
// no memory: the board grows the VM (Vm.hotAdd) and tells the device the new size; the
// device bumps its event sequence number and rings the vector the guest armed. Reads of
// SIZE always give the current size, so a guest that was not listening yet (the event
// came before its driver armed a vector) finds the memory when it starts.

import type { PortDevice } from './bus.js';
import { HOTPLUG_ID, HOTPLUG_MAX_VECTOR, HOTPLUG_MIN_VECTOR, HOTPLUG_PORT, HOTPLUG_PORTS, HOTPLUG_REG } from './hotplug-protocol.js';

const ALL_ONES = 0xffff_ffffn;

export interface HotplugOptions {
  /** The first port (default HOTPLUG_PORT). */
  base?: number;
  /** Rings the armed vector (the board injects it). */
  onEvent?: (vector: number) => void;
}

export class HotplugDevice implements PortDevice {
  readonly name = 'memory-hotplug';
  readonly base: number;
  /** Guest-physical memory in frames, as SIZE reads it. */
  get frames(): number { return this.size; }
  /** Hot-add events so far (SEQ). */
  get sequence(): number { return this.seq; }
  /** The armed vector, 0 when none. */
  get vector(): number { return this.vec; }
  /** Events that found no vector armed (the guest learns of them from SEQ later). */
  unsignalled = 0;
  /** Bad accesses: unknown offsets, sizes other than 4, out-of-range vectors. */
  misuses = 0;
  private seq = 0;
  private vec = 0;

  constructor(private size: number, private readonly o: HotplugOptions = {}) {
    this.base = o.base ?? HOTPLUG_PORT;
    if (!Number.isInteger(size) || size < 0 || size > 0xffff_ffff) throw new RangeError(`hotplug: size ${size} frames does not fit SIZE (32 bits)`);
  }

  /** Ports [base, base + HOTPLUG_PORTS). */
  get ports(): number { return HOTPLUG_PORTS; }

  /**
   * The VM grew to `frames`: SIZE follows, SEQ counts one event and the armed vector rings.
   * Refuses a size that does not grow (memory is only added) or does not fit SIZE, leaving
   * the device as it was.
   */
  memoryAdded(frames: number): void {
    if (!Number.isInteger(frames) || frames <= this.size || frames > 0xffff_ffff) {
      throw new RangeError(`hotplug: new size ${frames} frames must be larger than ${this.size} and fit 32 bits`);
    }
    this.size = frames;
    this.seq = (this.seq + 1) >>> 0;
    if (this.vec) this.o.onEvent?.(this.vec); else this.unsignalled++;
  }

  in(port: number, size: number): bigint {
    const off = port - this.base;
    if (size !== 4) { this.misuses++; return ALL_ONES; }
    switch (off) {
      case HOTPLUG_REG.SIZE: return BigInt(this.size);
      case HOTPLUG_REG.SEQ: return BigInt(this.seq);
      case HOTPLUG_REG.VECTOR: return BigInt(this.vec);
      case HOTPLUG_REG.ID: return BigInt(HOTPLUG_ID);
      default: this.misuses++; return ALL_ONES;
    }
  }

  out(port: number, size: number, value: bigint): void {
    if (port - this.base !== HOTPLUG_REG.VECTOR || size !== 4) { this.misuses++; return; }
    const v = Number(value & ALL_ONES);
    if (v !== 0 && (v < HOTPLUG_MIN_VECTOR || v > HOTPLUG_MAX_VECTOR)) { this.misuses++; return; }
    this.vec = v;
  }

  /** Device state on a migration's wire: SIZE, SEQ, VECTOR. */
  get stateBytes(): number { return 12; }
}
