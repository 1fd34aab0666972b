/* toucher:MiB[:passes[:sleepms]] - map MiB of demand-zero memory, write one word
 * per 64 bytes with a pattern, read it all back; checksum = sum of the words read.
 * With sleepms, sleep that long after each pass (a duty-cycled working set, so a
 * host's clock advances between passes while the memory stays mapped). */
#include "ulib.h"
#define STRIDE 8  /* words: one per 64-byte line */
int umain(const char *args, u64 len) {
  (void)len;
  u64 mib = arg_u64(&args, 4), passes = arg_u64(&args, 1), sleepms = arg_u64(&args, 0);
  u64 bytes = mib << 20, words = bytes / 8;
  u64 *m = sys_mmap(bytes);
  if (!m) { uprintf("toucher: mmap of %lu MiB failed\n", mib); return 1; }
  int bad = 0;
  for (u64 pass = 0; pass < passes; pass++) {
    u64 seed = (pass + 1) << 40, sum = 0, errors = 0;
    for (u64 i = 0; i < words; i += STRIDE) m[i] = mix64(i ^ seed);
    for (u64 i = 0; i < words; i += STRIDE) {
      u64 v = m[i];
      if (v != mix64(i ^ seed)) errors++;
      sum += v;
    }
    uprintf("toucher: %lu MiB pass %lu checksum %016lx %s\n", mib, pass + 1, sum, errors ? "BAD" : "ok");
    bad |= errors != 0;
    if (sleepms) sys_sleep(sleepms);
  }
  sys_munmap(m, bytes);
  return bad;
}
