/* hello: greet with the pid and the argument string. */
#include "ulib.h"
int umain(const char *args, u64 len) {
  (void)len;
  uprintf("hello from pid %d (args '%s')\n", (int)sys_getpid(), args);
  return 0;
}
