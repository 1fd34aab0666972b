// A 16550 UART subset at COM1 (0x3F8), enough for a kernel's serial console and a shell:
// output bytes go to a sink (the board streams them to stdout), input bytes wait in a queue.
// No interrupts are raised (IIR always reads "none pending"); the divisor latch is accepted
// and ignored; MCR loopback (bit 4) echoes THR into RBR, as kernels' probe routines expect.
//
//   offset  DLAB=0 read / write        DLAB=1          notes
//   +0      RBR / THR                  DLL             RBR pops the input queue (0 if empty)
//   +1      IER                        DLM             stored, no interrupts delivered
//   +2      IIR / FCR                                  IIR = 0x01 (| 0xC0 with FIFOs on)
//   +3      LCR (bit 7 = DLAB)
//   +4      MCR (bit 4 = loopback)
//   +5      LSR: bit 0 DR (input waiting), bits 5|6 THRE|TEMT always 1
//   +6      MSR: CTS|DSR|DCD (0xB0); in loopback, mirrors MCR bits 0..3 into bits 4..7
//   +7      SCR (scratch)

import type { PortDevice } from './bus.js';

export const COM1 = 0x3f8;
export const UART_PORTS = 8;
const LSR_DR = 0x01, LSR_THRE = 0x20, LSR_TEMT = 0x40;
const LCR_DLAB = 0x80, MCR_LOOP = 0x10;
const MAX_KEPT = 1 << 20;

export class Uart16550 implements PortDevice {
  readonly name = 'uart16550';
  /** Bytes the guest wrote (the first MAX_KEPT), for tests and reports. */
  private readonly sent: number[] = [];
  /** Bytes written in total. */
  written = 0;
  private readonly input: number[] = [];
  private ier = 0; private lcr = 0; private mcr = 0; private scr = 0; private fcr = 0;
  private dll = 0; private dlm = 0;

  constructor(readonly base = COM1, private sink: (byte: number) => void = () => {}) {}

  /** Where transmitted bytes go (e.g. process.stdout). */
  setSink(sink: (byte: number) => void): void { this.sink = sink; }

  /** Queues input for the guest (a shell's keystrokes). */
  pushInput(data: string | Uint8Array): void {
    const bytes = typeof data === 'string' ? new TextEncoder().encode(data) : data;
    for (const b of bytes) this.input.push(b);
  }

  get pendingInput(): number { return this.input.length; }

  /** What the guest printed, decoded as UTF-8. */
  text(): string { return new TextDecoder().decode(Uint8Array.from(this.sent)); }

  in(port: number, _size: number): bigint {
    const r = port - this.base, dlab = (this.lcr & LCR_DLAB) !== 0;
    switch (r) {
      case 0: return BigInt(dlab ? this.dll : (this.input.shift() ?? 0));
      case 1: return BigInt(dlab ? this.dlm : this.ier);
      case 2: return BigInt(0x01 | (this.fcr & 1 ? 0xc0 : 0));
      case 3: return BigInt(this.lcr);
      case 4: return BigInt(this.mcr);
      case 5: return BigInt(LSR_THRE | LSR_TEMT | (this.input.length ? LSR_DR : 0));
      case 6: return BigInt(this.mcr & MCR_LOOP ? (this.mcr & 0xf) << 4 : 0xb0);
      default: return BigInt(this.scr);
    }
  }

  out(port: number, _size: number, value: bigint): void {
    const r = port - this.base, v = Number(value & 0xffn), dlab = (this.lcr & LCR_DLAB) !== 0;
    switch (r) {
      case 0: if (dlab) this.dll = v; else this.transmit(v); return;
      case 1: if (dlab) this.dlm = v; else this.ier = v & 0x0f; return;
      case 2: this.fcr = v; return;
      case 3: this.lcr = v; return;
      case 4: this.mcr = v & 0x1f; return;
      case 7: this.scr = v; return;
      default: return; // LSR and MSR are read-only
    }
  }

  private transmit(b: number): void {
    if (this.mcr & MCR_LOOP) { this.input.push(b); return; }
    this.written++;
    if (this.sent.length < MAX_KEPT) this.sent.push(b);
    this.sink(b);
  }
}
