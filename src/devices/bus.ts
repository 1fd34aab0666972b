// The port-I/O bus: devices claim port ranges; an IO exit from vcpu.run is dispatched
// here and the guest resumes after the IN/OUT op.

import type { AccessBatch } from '../core/batch.js';

export interface PortDevice {
  readonly name: string;
  /** Port input of `size` bytes (1, 2 or 4); the value is zero-extended. */
  in(port: number, size: number): bigint;
  /** Port output of `size` bytes. */
  out(port: number, size: number, value: bigint): void;
}

export interface IoExit { index: number; port: number; size: number; direction: 'in' | 'out'; value: bigint }

export class PortBus {
  private ranges: { first: number; last: number; device: PortDevice }[] = [];
  /** Accesses to ports no device claims (they read as all ones, as on a PC). */
  unclaimed = 0;

  /** Claims ports [first, first + count). Overlapping claims are refused. */
  register(first: number, count: number, device: PortDevice): void {
    const last = first + count - 1;
    if (!Number.isInteger(first) || !Number.isInteger(count) || count < 1 || first < 0 || last > 0xffff) {
      throw new RangeError(`${device.name}: port range ${first}+${count} is outside 0..0xffff`);
    }
    const clash = this.ranges.find((r) => first <= r.last && r.first <= last);
    if (clash) throw new Error(`${device.name}: ports ${first.toString(16)}..${last.toString(16)} overlap ${clash.device.name}`);
    this.ranges.push({ first, last, device });
  }

  deviceAt(port: number): PortDevice | undefined {
    return this.ranges.find((r) => port >= r.first && port <= r.last)?.device;
  }

  /** Performs an IO exit: an IN's value goes into the batch op. Resume at exit.index + 1. */
  dispatch(x: IoExit, batch: AccessBatch): void {
    const d = this.deviceAt(x.port);
    const mask = (1n << BigInt(8 * x.size)) - 1n;
    if (x.direction === 'out') {
      if (d) d.out(x.port, x.size, x.value & mask); else this.unclaimed++;
      return;
    }
    batch.setValue(x.index, d ? d.in(x.port, x.size) & mask : (this.unclaimed++, mask));
  }
}
