// Power-off ports of the machine-code board (BOOT.md):
// - 0x604, a 16-bit write of 0x2000: the ACPI PM1a control "sleep enable, S5" value of
//   QEMU's/Bochs' PIIX4 PM as hobby kernels write it → power off, exit status 0;
// - 0xF4, an 8-bit write of `code` (QEMU's isa-debug-exit) → power off, exit status `code`.
//   (QEMU itself exits with (code << 1) | 1; memvisor reports `code` unchanged, as BOOT.md says.)
// Other writes to these ports are ignored and counted; reads return 0.

import type { PortDevice } from './bus.js';

export const ACPI_PM1A_CNT = 0x604;
export const ACPI_POWER_OFF = 0x2000;
export const DEBUG_EXIT = 0xf4;

export interface PowerOff { status: number; via: 'acpi' | 'debug-exit' }

export class PowerDevice implements PortDevice {
  readonly name = 'power';
  /** Set once the guest powered off. */
  state: PowerOff | null = null;
  ignoredWrites = 0;

  constructor(private readonly onPowerOff: (p: PowerOff) => void = () => {}) {}

  in(_port: number, _size: number): bigint { return 0n; }

  out(port: number, size: number, value: bigint): void {
    if (port === ACPI_PM1A_CNT && size === 2 && value === BigInt(ACPI_POWER_OFF)) return this.off({ status: 0, via: 'acpi' });
    if (port === DEBUG_EXIT && size === 1) return this.off({ status: Number(value & 0xffn), via: 'debug-exit' });
    this.ignoredWrites++;
  }

  private off(p: PowerOff): void {
    if (this.state) return;
    this.state = p;
    this.onPowerOff(p);
  }
}
