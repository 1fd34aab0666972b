/* random:MiB[:accesses[:seed]] - random word writes and reads over a region.
 * A word is 0 or mix64(index ^ seed); every read is checked; checksum = sum of
 * the values read. */
#include "ulib.h"
int umain(const char *args, u64 len) {
  (void)len;
  u64 mib = arg_u64(&args, 4), accesses = arg_u64(&args, 100000), seed = arg_u64(&args, 1);
  u64 words = (mib << 20) / 8;
  u64 *m = sys_mmap(mib << 20);
  if (!m) { uprintf("random: mmap of %lu MiB failed\n", mib); return 1; }
  u64 state = seed, sum = 0, errors = 0, writes = 0;
  for (u64 n = 0; n < accesses; n++) {
    state = mix64(state);
    u64 i = (state >> 8) % words, want = mix64(i ^ seed);
    if (state & 1) { m[i] = want; writes++; continue; }
    u64 v = m[i];
    if (v != 0 && v != want) errors++;
    sum += v;
  }
  uprintf("random: %lu MiB %lu accesses (%lu writes) checksum %016lx %s\n", mib, accesses, writes, sum,
          errors ? "BAD" : "ok");
  return errors != 0;
}
