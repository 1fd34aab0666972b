/* crash - a user page fault outside every region: only this process dies. */
#include "ulib.h"
int umain(const char *args, u64 len) {
  (void)args; (void)len;
  uprintf("crash: writing to 0xdead0000\n");
  *(volatile u64 *)0xdead0000ULL = 1;
  uprintf("crash: still alive (wrong)\n");
  return 1;
}
