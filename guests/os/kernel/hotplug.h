/* Memory hot-add: the host's hotplug device (src/devices/hotplug-protocol.ts). */
#ifndef HOTPLUG_H
#define HOTPLUG_H
#include "kernel.h"
void hotplug_init(void);      /* probe, arm the vector, online memory added before boot */
void hotplug_event(void);     /* the device's interrupt: online what the host added */
u64 hotplug_ram_frames(void); /* RAM the kernel has online: [0, n) frames */
void hotplug_print(void);
#endif
