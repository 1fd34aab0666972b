// The guest swap disk: a virtual block device of 4 KiB sectors on the port-I/O bus.
// Two ways to move a sector, like an ATA disk:
// - PIO: every byte crosses the bus as port I/O, so under virtualization each 4-byte
//   transfer is an IO exit — the cost PIO really has (2048 exits per page).
// - DMA (bus-master): the guest programs a guest-physical address and the device copies
//   the sector to or from guest memory itself, through the host's view of the VM's memory
//   (so a page the hypervisor swapped out is swapped back in to be read: double paging).
//   A read makes the vCPU wait one page transfer on the disk model (src/core/disk-model.ts, the
//   same model the hypervisor's swap file uses; synchronous I/O, see Vcpu.stall); a write
//   is written back asynchronously, as the host's swap-outs are.
//
// Registers and commands: swapdisk-protocol.ts (shared with the guest's swapper).

import type { PortDevice } from './bus.js';
import { REG, DISK_CMD, SWAP_PORT } from './swapdisk-protocol.js';
import { DEFAULT_DISK, checkDisk, pageTransferCycles, type DiskModel } from '../core/disk-model.js';

export { SWAP_PORT, SWAPDISK_PORTS, REG, DISK_CMD } from './swapdisk-protocol.js';
const DWORDS = 1024;

/** What DMA needs: the host's view of the VM's guest-physical memory (GuestMemory). */
export interface DmaMemory {
  read(gpa: bigint, len: number): Uint8Array;
  write(gpa: bigint, data: Uint8Array): void;
}

export interface SwapDiskOptions {
  sectorCount?: number;
  /** Guest memory for DMA transfers (none: DMA commands fail with STATUS 1). */
  dma?: DmaMemory;
  /** Called with the cycles one DMA transfer makes the vCPU wait. */
  stall?: (cycles: number) => void;
  /** The disk (default DEFAULT_DISK): a DMA transfer stalls the vCPU for one page transfer on it. */
  disk?: DiskModel;
  /** Cycles a DMA transfer takes, overriding the disk model (tests). */
  latencyCycles?: number;
  /**
   * The host pool ran dry during a transfer (the page was host-swapped, or is new): ask
   * the host to free frames (returns how many) and retry, as a DMA engine stalls.
   */
  reclaim?: () => number;
  /**
   * Whether an error of a DMA access is the host's frame pool running dry (retried after
   * reclaim) rather than a guest error (STATUS 1). The board passes the hypervisor's
   * OutOfFramesError test; without it every DMA failure is a guest error.
   */
  isHostShortage?: (e: unknown) => boolean;
}

const DMA_RETRIES = 8;

export class SwapDisk implements PortDevice {
  readonly name = 'swapdisk';
  private readonly sectors = new Map<number, Uint32Array>();
  private readonly buf = new Uint32Array(DWORDS);
  private sector = 0;
  private at = 0;
  private status = 0;
  private dmaAddr = 0n;
  readonly stats = { reads: 0, writes: 0, errors: 0, dma: 0 };
  readonly sectorCount: number;

  constructor(readonly base = SWAP_PORT, private readonly o: SwapDiskOptions = {}) {
    this.sectorCount = o.sectorCount ?? 1 << 16;
    this.transferCycles = o.latencyCycles ?? pageTransferCycles(checkDisk(o.disk ?? DEFAULT_DISK));
  }

  /** Cycles one page transfer makes the vCPU wait. */
  readonly transferCycles: number;

  /** True if the disk can do DMA transfers. */
  get dma(): boolean { return this.o.dma !== undefined; }

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
    if (r === REG.DMA_LO) { this.dmaAddr = (this.dmaAddr & ~0xffff_ffffn) | (value & 0xffff_ffffn); return; }
    if (r === REG.DMA_HI) { this.dmaAddr = (this.dmaAddr & 0xffff_ffffn) | ((value & 0xffff_ffffn) << 32n); return; }
    if (r !== REG.CMD) return;
    this.status = 0;
    if (this.sector >= this.sectorCount) { this.status = 1; this.stats.errors++; return; }
    const cmd = Number(value);
    if (cmd === DISK_CMD.DMA_READ || cmd === DISK_CMD.DMA_WRITE) { this.transfer(cmd === DISK_CMD.DMA_WRITE); return; }
    if (cmd === DISK_CMD.READ) {
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

  /**
   * One DMA transfer. A bad address or a guest-caused failure is a STATUS error; an empty
   * host pool is retried after the host reclaims, and thrown only if it cannot.
   */
  private transfer(toDisk: boolean): void {
    const mem = this.o.dma;
    if (!mem || this.dmaAddr & 0xfffn) { this.status = 1; this.stats.errors++; return; }
    for (let tries = 0; ; tries++) {
      try {
        this.copy(mem, toDisk);
        break;
      } catch (e) {
        if (!this.o.isHostShortage?.(e)) { this.status = 1; this.stats.errors++; return; } // a guest error
        if (tries >= DMA_RETRIES || !this.o.reclaim || this.o.reclaim() <= 0) throw e; // the host cannot go on
      }
    }
    this.stats.dma++;
    // Reads stall the vCPU (the faulting access waits for its page); writes are queued and
    // written back asynchronously, as the host swap file's writes are (HostSwap), so both
    // swap paths pay one page transfer per read and nothing per write on the vCPU.
    if (!toDisk) this.o.stall?.(this.transferCycles);
  }

  private copy(mem: DmaMemory, toDisk: boolean): void {
    if (toDisk) {
      const bytes = mem.read(this.dmaAddr, 4096);
      this.sectors.set(this.sector, new Uint32Array(bytes.buffer, bytes.byteOffset, DWORDS).slice());
      this.stats.writes++;
    } else {
      const s = this.sectors.get(this.sector);
      mem.write(this.dmaAddr, s ? new Uint8Array(s.buffer.slice(0)) : new Uint8Array(4096));
      this.stats.reads++;
    }
  }

  /** Sectors holding data (for tests). */
  get used(): number { return this.sectors.size; }
}
