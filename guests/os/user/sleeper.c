/* sleeper:seconds - stay alive (one sleep per second) so the kernel keeps running. */
#include "ulib.h"
int umain(const char *args, u64 len) {
  (void)len;
  u64 seconds = arg_u64(&args, 10);
  for (u64 s = 1; s <= seconds; s++) sys_sleep(1000);
  uprintf("sleeper: slept %lu s\n", seconds);
  return 0;
}
