// The memory hotplug device's port interface (hotplug.ts is the device): constants only,
// shared by the device, the board and the tests; memvisor-os's driver (guests/os/kernel/
// hotplug.c) repeats them. It is the C OS's counterpart of the ACPI memory-device event the
// TypeScript kernels hear through GuestPlatform.onMemoryAdded, rung like the balloon's
// doorbell: the guest names a vector, the host injects it after each hot-add.
//
// Registers (offsets from HOTPLUG_PORT, each a 32-bit little-endian dword, `inl`/`outl`):
//
//   +0  SIZE    (in)      guest-physical memory in 4 KiB frames: RAM is [0, SIZE)
//   +4  SEQ     (in)      hot-add events so far (wraps at 2^32); the guest compares it with
//                         the last value it handled, so a missed interrupt is caught later
//   +8  VECTOR  (in/out)  the interrupt the host injects after each event:
//                          31                              8 7            0
//                         ┌─────────────────────────────────┬──────────────┐
//                         │ reserved, must be 0             │ vector       │
//                         └─────────────────────────────────┴──────────────┘
//                         32..255 arms it, 0 disarms; any other value is refused (counted,
//                         the register keeps its value); reads back what is armed
//   +12 ID      (in)      HOTPLUG_ID ('MHP1'); a port nobody claims reads all ones, so a
//                         driver finds out whether the device is there (e.g. under QEMU)
//
// Other offsets and sizes read all ones and ignore writes (counted as misuses).

export const HOTPLUG_PORT = 0x5680;
export const HOTPLUG_PORTS = 16; // 0x5680..0x568F
export const HOTPLUG_REG = { SIZE: 0, SEQ: 4, VECTOR: 8, ID: 12 } as const;
/** 'MHP1' as a little-endian dword (M = 0x4d at the lowest byte). */
export const HOTPLUG_ID = 0x3150_484d;
/** Vectors the guest may arm (0..31 are exceptions). */
export const HOTPLUG_MIN_VECTOR = 32;
export const HOTPLUG_MAX_VECTOR = 255;
