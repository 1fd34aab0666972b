/* Memory hot-add driver for memvisor's hotplug device, the C counterpart of the
 * ACPI memory-device event the TypeScript kernels get (GuestPlatform.onMemoryAdded).
 *
 * Registers (32-bit, `inl`/`outl`, offsets from port 0x5680; the diagram is in
 * src/devices/hotplug-protocol.ts):
 *   +0  SIZE    guest-physical memory in 4 KiB frames, RAM = [0, SIZE)
 *   +4  SEQ     hot-add events so far
 *   +8  VECTOR  the interrupt the host rings after each event (we arm 0x42)
 *   +12 ID      'MHP1'; an unclaimed port reads all ones (QEMU: no device)
 *
 * On each event the kernel onlines [what it has, SIZE): direct map first, then
 * the frame allocator (pmm_online). SIZE is read again at init, so memory the
 * host added before this driver armed its vector is not missed. */
#include "hotplug.h"
#include "mm.h"

#define HOTPLUG_PORT 0x5680
#define REG_SIZE 0
#define REG_SEQ 4
#define REG_VECTOR 8
#define REG_ID 12
#define HOTPLUG_ID 0x3150484dU  /* 'MHP1' little-endian */

static int present;
static u32 seen_seq;
static u64 events, onlined_frames, failures;

static u32 reg(u16 off) { return inl(HOTPLUG_PORT + off); }

/* Memory grew to `frames`: bring the part past what we have online. */
static void online_to(u64 frames) {
  u64 have = pmm_max_pfn();
  if (frames <= have) return;
  if (pmm_online(frames) < 0) {
    failures++;
    kprintf("hotplug: cannot online frames %lu-%lu (past 512 GiB, or no page table or metadata room); they stay offline\n", have, frames);
    return;
  }
  onlined_frames += frames - have;
  kprintf("hotplug: memory %lu frames (%lu MiB), onlined frames %lu-%lu, %lu frames free\n",
          frames, frames >> 8, have, frames, pmm_free_frames());
}

void hotplug_init(void) {
  if (reg(REG_ID) != HOTPLUG_ID) { kprintf("hotplug: no device at port 0x%x\n", HOTPLUG_PORT); return; }
  present = 1;
  outl(HOTPLUG_PORT + REG_VECTOR, VEC_HOTPLUG);
  seen_seq = reg(REG_SEQ);
  kprintf("hotplug: device at port 0x%x, vector 0x%x, memory %lu frames\n", HOTPLUG_PORT, VEC_HOTPLUG, (u64)reg(REG_SIZE));
  online_to(reg(REG_SIZE));
}

void hotplug_event(void) {
  if (!present) return;
  u32 seq = reg(REG_SEQ);
  if (seq == seen_seq) return;  /* an event we already handled */
  events += (u32)(seq - seen_seq);
  seen_seq = seq;
  online_to(reg(REG_SIZE));
}

u64 hotplug_ram_frames(void) { return pmm_max_pfn(); }

void hotplug_print(void) {
  kprintf("memory: %lu frames (%lu KiB) online, hot-added %lu frames in %lu events (%lu failed)\n",
          pmm_max_pfn(), pmm_max_pfn() * 4, onlined_frames, events, failures);
}
