// The board's simple devices: the 16550 UART subset and the power-off ports, on the bus.
import { describe, it, expect } from 'vitest';
import { Uart16550, COM1, UART_PORTS } from '../../src/devices/uart.js';
import { PowerDevice, ACPI_PM1A_CNT, DEBUG_EXIT, type PowerOff } from '../../src/devices/power.js';
import { PortBus } from '../../src/devices/bus.js';

describe('16550 UART subset', () => {
  it('streams THR writes to the sink; LSR always has THRE|TEMT, DR only with input', () => {
    const seen: number[] = [];
    const u = new Uart16550(COM1, (b) => seen.push(b));
    expect(u.in(COM1 + 5, 1)).toBe(0x60n);
    for (const c of 'hi\n') u.out(COM1, 1, BigInt(c.charCodeAt(0)));
    expect(String.fromCharCode(...seen)).toBe('hi\n');
    expect(u.text()).toBe('hi\n');
    expect(u.written).toBe(3);
    u.pushInput('ls\n');
    expect(u.in(COM1 + 5, 1)).toBe(0x61n);
    expect([u.in(COM1, 1), u.in(COM1, 1), u.in(COM1, 1)]).toEqual([0x6cn, 0x73n, 0x0an]);
    expect(u.in(COM1 + 5, 1)).toBe(0x60n);
    expect(u.in(COM1, 1)).toBe(0n); // empty RBR reads 0
  });

  it('DLAB selects the divisor latch (accepted, ignored); scratch, IER, LCR read back; IIR says no interrupt', () => {
    const u = new Uart16550();
    u.out(COM1 + 3, 1, 0x80n);          // DLAB
    u.out(COM1, 1, 0x03n); u.out(COM1 + 1, 1, 0x00n); // 38400 baud
    expect([u.in(COM1, 1), u.in(COM1 + 1, 1)]).toEqual([3n, 0n]);
    u.out(COM1 + 3, 1, 0x03n);          // 8N1, DLAB off
    expect(u.written).toBe(0);          // the divisor write did not transmit
    u.out(COM1 + 1, 1, 0x01n); u.out(COM1 + 7, 1, 0xaen);
    expect([u.in(COM1 + 1, 1), u.in(COM1 + 3, 1), u.in(COM1 + 7, 1)]).toEqual([1n, 3n, 0xaen]);
    expect(u.in(COM1 + 2, 1)).toBe(0x01n);
    u.out(COM1 + 2, 1, 0xc7n);          // FIFOs on
    expect(u.in(COM1 + 2, 1)).toBe(0xc1n);
  });

  it('loopback (MCR bit 4) echoes a byte back, as kernels probe the chip', () => {
    const u = new Uart16550();
    u.out(COM1 + 4, 1, 0x1en);
    u.out(COM1, 1, 0xaen);
    expect(u.in(COM1, 1)).toBe(0xaen);
    expect(u.written).toBe(0);
    u.out(COM1 + 4, 1, 0x0fn);
    u.out(COM1, 1, 0x41n);
    expect(u.text()).toBe('A');
  });
});

describe('power-off ports', () => {
  it('outw(0x604, 0x2000) powers off with status 0; outb(0xf4, code) with code; once', () => {
    const offs: PowerOff[] = [];
    const p = new PowerDevice((x) => offs.push(x));
    p.out(ACPI_PM1A_CNT, 2, 0x1234n);
    p.out(ACPI_PM1A_CNT, 1, 0x20n);
    expect([p.state, p.ignoredWrites]).toEqual([null, 2]);
    p.out(ACPI_PM1A_CNT, 2, 0x2000n);
    expect(p.state).toEqual({ status: 0, via: 'acpi' });
    p.out(DEBUG_EXIT, 1, 3n);
    expect(offs).toEqual([{ status: 0, via: 'acpi' }]);
    const q = new PowerDevice();
    q.out(DEBUG_EXIT, 1, 0x2an);
    expect(q.state).toEqual({ status: 42, via: 'debug-exit' });
  });

  it('sits on the bus next to the UART', () => {
    const bus = new PortBus(), u = new Uart16550(), p = new PowerDevice();
    bus.register(COM1, UART_PORTS, u);
    bus.register(ACPI_PM1A_CNT, 2, p);
    bus.register(DEBUG_EXIT, 1, p);
    expect(bus.deviceAt(0x3fd)).toBe(u);
    expect(bus.deviceAt(0xf4)).toBe(p);
    expect(() => bus.register(0x3f8, 1, p)).toThrow(/overlap/);
  });
});
