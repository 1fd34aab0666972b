// The backdoor register window: 32-bit register ports, execute on IN 0x5670, results read back.
import { describe, it, expect } from 'vitest';
import { BackdoorPort, BACKDOOR_PORT as P, BACKDOOR_PORTS, REG, type BackdoorRegs } from '../../src/devices/backdoor.js';
import { PortBus } from '../../src/devices/bus.js';

function echo() {
  const seen: BackdoorRegs[] = [];
  const port = new BackdoorPort({ call: (r) => { seen.push({ ...r }); return { eax: 0x0300_0000, rbx: r.rbx + 1n, ecx: 0xe } } });
  return { port, seen };
}

describe('backdoor register window', () => {
  it('latches EAX/EBX/ECX/ESI/EDI and executes on IN from 0x5670, as inl', () => {
    const { port, seen } = echo();
    port.out(P + REG.EAX, 4, 0x456c6d6fn); port.out(P + REG.ECX, 4, 6n);
    port.out(P + REG.EBX, 4, 0x1234n); port.out(P + REG.ESI, 4, 17n); port.out(P + REG.EDI, 4, 9n);
    expect(port.in(P, 4)).toBe(0x0300_0000n);
    expect(seen).toEqual([{ eax: 0x456c6d6f, rbx: 0x1234n, ecx: 6, esi: 17, edi: 9 }]);
    expect(port.in(P + REG.EAX, 4)).toBe(0x0300_0000n);
    expect(port.in(P + REG.EBX, 4)).toBe(0x1235n);
    expect(port.in(P + REG.ECX, 4)).toBe(0xen);
    expect(port.in(P + REG.ESI, 4)).toBe(17n);
    expect(port.in(P + REG.EDI, 4)).toBe(9n);
    expect(port.calls).toBe(1);
  });

  it('RBX high half: written after EBX, which zero-extends like mov ebx', () => {
    const { port, seen } = echo();
    port.out(P + REG.EBX, 4, 0xffff_ffffn); port.out(P + REG.EBX_HIGH, 4, 0x2n);
    port.in(P, 4);
    expect(seen[0].rbx).toBe(0x2_ffff_ffffn);
    expect(port.in(P + REG.EBX, 4)).toBe(0n);           // result 0x3_0000_0000
    expect(port.in(P + REG.EBX_HIGH, 4)).toBe(3n);
    port.out(P + REG.EBX, 4, 5n);
    expect(port.in(P + REG.EBX_HIGH, 4)).toBe(0n);
  });

  it('records misuse (wrong size, OUT to the call port, stray ports) without throwing', () => {
    const { port, seen } = echo();
    expect(port.in(P, 1)).toBe(0xffff_ffffn);
    port.out(P + REG.EAX, 2, 1n);
    port.out(P, 4, 1n);
    expect(port.in(P + 9, 4)).toBe(0xffff_ffffn);
    expect(seen).toEqual([]);
    expect(port.misuses).toBe(4);
    expect(port.misuseLog.map((m) => m.message).join('\n')).toMatch(/size 1[\s\S]*size 2[\s\S]*executed by IN[\s\S]*not a backdoor register/);
  });

  it('works through the port bus: an IN op gets the status', () => {
    const { port } = echo();
    const bus = new PortBus();
    bus.register(P, BACKDOOR_PORTS, port);
    const b = { values: [] as bigint[], setValue(i: number, v: bigint) { this.values[i] = v; } };
    bus.dispatch({ index: 0, port: P + REG.EBX, size: 4, direction: 'out', value: 41n }, b as never);
    bus.dispatch({ index: 1, port: P, size: 4, direction: 'in', value: 0n }, b as never);
    bus.dispatch({ index: 2, port: P + REG.EBX, size: 4, direction: 'in', value: 0n }, b as never);
    expect(b.values[1]).toBe(0x0300_0000n);
    expect(b.values[2]).toBe(42n);
  });
});
