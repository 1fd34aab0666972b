/* pagecache[:maxMiB[:seconds[:rounds]]] - like a page cache: map 1 MiB chunks
 * until the kernel refuses (or maxMiB, 0 = no limit), touch every page, keep the
 * memory for a while re-checking it every second, then give it back; `rounds`
 * times (default 1), pausing `seconds` between rounds, so the demand rises and
 * falls while a balloon works. */
#include "ulib.h"
#define CHUNK (1ULL << 20)
#define MAX_CHUNKS 4096
static u64 *chunks[MAX_CHUNKS];

static u64 touch(u64 n, int write, u64 *errors) {
  u64 sum = 0;
  for (u64 c = 0; c < n; c++)
    for (u64 off = 0; off < CHUNK / 8; off += 512) {  /* one word per 4 KiB page */
      u64 want = mix64((c << 20) + off);
      if (write) chunks[c][off] = want;
      else if (chunks[c][off] != want) (*errors)++;
      sum += chunks[c][off];
    }
  return sum;
}

static int one_round(u64 max, u64 seconds) {
  u64 n = 0, errors = 0;
  while (n < MAX_CHUNKS && (max == 0 || n < max) && (chunks[n] = sys_mmap(CHUNK)) != 0) n++;
  u64 sum = touch(n, 1, &errors);
  uprintf("pagecache: took %lu MiB, checksum %016lx\n", n, sum);
  for (u64 s = 0; s < seconds; s++) { sys_sleep(1000); touch(n, 0, &errors); }
  if (touch(n, 0, &errors) != sum) errors++;
  for (u64 c = 0; c < n; c++) sys_munmap(chunks[c], CHUNK);
  uprintf("pagecache: released %lu MiB %s\n", n, errors ? "BAD" : "ok");
  return errors != 0;
}

int umain(const char *args, u64 len) {
  (void)len;
  u64 max = arg_u64(&args, 0), seconds = arg_u64(&args, 0), rounds = arg_u64(&args, 1);
  int bad = 0;
  for (u64 r = 0; r < rounds; r++) {
    if (r) sys_sleep(seconds * 1000);
    bad |= one_round(max, seconds);
  }
  return bad;
}
