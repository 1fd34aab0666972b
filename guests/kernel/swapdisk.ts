// The guest swap disk: a virtual block device of 4 KiB sectors on the port-I/O bus,
// programmed with PIO like an ATA disk (no DMA: every byte crosses the bus as port I/O,
// so under virtualization each 4-byte transfer is an IO exit — the cost PIO really has).
//
// Registers (offsets from `base`):
//   +0 DATA   (4 bytes, in/out)  the sector buffer, 1024 dwords, index auto-increments
//   +4 SECTOR (4 bytes, out)     selects the sector and rewinds the buffer index
//   +8 CMD    (1 byte, out)      1 = READ sector → buffer, 2 = WRITE buffer → sector
//   +8 STATUS (1 byte, in)       0 = ok, 1 = error (sector out of range, short transfer)
// Sectors never written read as zeros.

import type { PortDevice } from '../../src/devices/bus.js';

export const SWAP_PORT = 0x1f0;
export const SWAPDISK_PORTS = 12;
export const REG = { DATA: 0, SECTOR: 4, CMD: 8, STATUS: 8 } as const;
export const DISK_CMD = { READ: 1, WRITE: 2 } as const;
const DWORDS = 1024;

export class SwapDisk implements PortDevice {
  readonly name = 'swapdisk';
  private readonly sectors = new Map<number, Uint32Array>();
  private readonly buf = new Uint32Array(DWORDS);
  private sector = 0;
  private at = 0;
  private status = 0;
  readonly stats = { reads: 0, writes: 0, errors: 0 };

  constructor(readonly base = SWAP_PORT, readonly sectorCount = 1 << 16) {}

  in(port: number, _size: number): bigint {
    const r = port - this.base;
    if (r === REG.DATA) return BigInt(this.buf[this.at++ % DWORDS]);
    if (r === REG.STATUS) return BigInt(this.status);
    return 0xffff_ffffn;
  }

  out(port: number, _size: number, value: bigint): void {
    const r = port - this.base;
    if (r === REG.DATA) { this.buf[this.at++ % DWORDS] = Number(value & 0xffff_ffffn); return; }
    if (r === REG.SECTOR) { this.sector = Number(value); this.at = 0; return; }
    if (r !== REG.CMD) return;
    this.status = 0;
    if (this.sector >= this.sectorCount) { this.status = 1; this.stats.errors++; return; }
    if (Number(value) === DISK_CMD.READ) {
      const s = this.sectors.get(this.sector);
      if (s) this.buf.set(s); else this.buf.fill(0);
      this.stats.reads++;
    } else if (Number(value) === DISK_CMD.WRITE) {
      if (this.at !== DWORDS) { this.status = 1; this.stats.errors++; return; }
      this.sectors.set(this.sector, this.buf.slice());
      this.stats.writes++;
    } else { this.status = 1; this.stats.errors++; }
    this.at = 0;
  }

  /** Sectors holding data (for tests). */
  get used(): number { return this.sectors.size; }
}
