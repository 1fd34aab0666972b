// The memory hotplug device (hotplug-protocol.ts): registers as the guest reads them, the
// event (SIZE follows, SEQ counts, the armed vector rings), and refusals that leave it as it was.
import { describe, it, expect } from 'vitest';
import { HotplugDevice } from '../../src/devices/hotplug.js';
import { HOTPLUG_ID, HOTPLUG_PORT, HOTPLUG_PORTS, HOTPLUG_REG } from '../../src/devices/hotplug-protocol.js';
import { PortBus } from '../../src/devices/bus.js';
import { COM1, UART_PORTS, Uart16550 } from '../../src/devices/uart.js';
import { ACPI_PM1A_CNT, DEBUG_EXIT, PowerDevice } from '../../src/devices/power.js';
import { BACKDOOR_PORT, BACKDOOR_PORTS } from '../../src/devices/backdoor-protocol.js';
import { SWAP_PORT, SWAPDISK_PORTS } from '../../src/devices/swapdisk-protocol.js';

const at = (off: number) => HOTPLUG_PORT + off;
const regs = (d: HotplugDevice) => [HOTPLUG_REG.SIZE, HOTPLUG_REG.SEQ, HOTPLUG_REG.VECTOR, HOTPLUG_REG.ID].map((o) => d.in(at(o), 4));

describe('memory hotplug device', () => {
  it('reads SIZE in frames, SEQ 0, no vector, and the ID "MHP1"', () => {
    const d = new HotplugDevice(8192);
    expect(regs(d)).toEqual([8192n, 0n, 0n, BigInt(HOTPLUG_ID)]);
    expect(Buffer.from([0x4d, 0x48, 0x50, 0x31]).readUInt32LE(0)).toBe(HOTPLUG_ID); // 'M' 'H' 'P' '1' in memory order
  });

  it('an event sets SIZE, bumps SEQ and rings the armed vector once', () => {
    const rung: number[] = [];
    const d = new HotplugDevice(8192, { onEvent: (v) => rung.push(v) });
    d.memoryAdded(9000);                         // no vector armed yet: counted, not rung
    expect(rung).toEqual([]);
    expect(d.unsignalled).toBe(1);
    d.out(at(HOTPLUG_REG.VECTOR), 4, 0x42n);
    expect(d.in(at(HOTPLUG_REG.VECTOR), 4)).toBe(0x42n);
    d.memoryAdded(16384);
    d.memoryAdded(16385);
    expect(rung).toEqual([0x42, 0x42]);
    expect(regs(d).slice(0, 2)).toEqual([16385n, 3n]);
    d.out(at(HOTPLUG_REG.VECTOR), 4, 0n);          // disarmed
    d.memoryAdded(20000);
    expect(rung.length).toBe(2);
    expect(d.unsignalled).toBe(2);
  });

  it('refuses bad vectors, writes elsewhere and reads of other sizes or offsets, keeping its registers', () => {
    const d = new HotplugDevice(100);
    d.out(at(HOTPLUG_REG.VECTOR), 4, 0x41n);
    for (const v of [1n, 31n, 256n, 0xffff_ff42n]) d.out(at(HOTPLUG_REG.VECTOR), 4, v);
    d.out(at(HOTPLUG_REG.VECTOR), 1, 0x50n);       // not a dword
    d.out(at(HOTPLUG_REG.SIZE), 4, 1n);            // read-only
    d.out(at(HOTPLUG_REG.SEQ), 4, 7n);
    expect(d.misuses).toBe(7);
    expect(d.in(at(HOTPLUG_REG.SIZE), 2)).toBe(0xffff_ffffn);
    expect(d.in(at(2), 4)).toBe(0xffff_ffffn);
    expect(d.misuses).toBe(9);
    expect(regs(d)).toEqual([100n, 0n, 0x41n, BigInt(HOTPLUG_ID)]);
  });

  it('refuses a size that does not grow or does not fit 32 bits, with nothing changed', () => {
    const rung: number[] = [];
    const d = new HotplugDevice(4096, { onEvent: (v) => rung.push(v) });
    d.out(at(HOTPLUG_REG.VECTOR), 4, 0x42n);
    for (const f of [4096, 4000, 4096.5, 2 ** 32]) expect(() => d.memoryAdded(f)).toThrow(RangeError);
    expect(regs(d).slice(0, 2)).toEqual([4096n, 0n]);
    expect(rung).toEqual([]);
    expect(() => new HotplugDevice(-1)).toThrow(RangeError);
  });

  it('its ports are free of the board\'s other devices', () => {
    const bus = new PortBus();
    bus.register(COM1, UART_PORTS, new Uart16550());
    const power = new PowerDevice();
    bus.register(ACPI_PM1A_CNT, 2, power);
    bus.register(DEBUG_EXIT, 1, power);
    bus.register(BACKDOOR_PORT, BACKDOOR_PORTS, power);  // the backdoor's range, claimed by a stand-in
    bus.register(SWAP_PORT, SWAPDISK_PORTS, power);
    const d = new HotplugDevice(1);
    expect(() => bus.register(d.base, d.ports, d)).not.toThrow();
    expect(d.ports).toBe(HOTPLUG_PORTS);
    expect(bus.deviceAt(HOTPLUG_PORT + HOTPLUG_PORTS - 1)).toBe(d);
    expect(bus.deviceAt(HOTPLUG_PORT + HOTPLUG_PORTS)).toBeUndefined();
  });
});
