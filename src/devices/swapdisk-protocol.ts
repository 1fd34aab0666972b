// The guest swap disk's port interface (swapdisk.ts is the device): constants only, shared
// by the device and the guest kernel's swapper (guests/kernel/swap.ts).
//
// Registers (offsets from `base`):
//   +0  DATA    (4 bytes, in/out)  the sector buffer, 1024 dwords, index auto-increments
//   +4  SECTOR  (4 bytes, out)     selects the sector and rewinds the buffer index
//   +8  CMD     (1 byte, out)      1 = READ sector → buffer, 2 = WRITE buffer → sector,
//                                  3 = DMA READ sector → memory, 4 = DMA WRITE memory → sector
//   +8  STATUS  (1 byte, in)       0 = ok, 1 = error (sector out of range, short transfer, no DMA)
//   +12 DMA_LO  (4 bytes, out)     guest-physical address of the DMA buffer, bits 31:0
//   +16 DMA_HI  (4 bytes, out)     bits 63:32 (the buffer is one 4 KiB-aligned frame)
// Sectors never written read as zeros.

export const SWAP_PORT = 0x1f0;
export const SWAPDISK_PORTS = 20;
export const REG = { DATA: 0, SECTOR: 4, CMD: 8, STATUS: 8, DMA_LO: 12, DMA_HI: 16 } as const;
export const DISK_CMD = { READ: 1, WRITE: 2, DMA_READ: 3, DMA_WRITE: 4 } as const;
