/* pagecache[:maxMiB[:seconds[:rounds[:fileMiB[:seed]]]]] - like a page cache: map
 * 1 MiB chunks until the kernel refuses (or maxMiB, 0 = no limit), touch every
 * page, keep the memory for a while re-checking it every second, then give it
 * back; `rounds` times (default 1), pausing `seconds` between rounds, so the
 * demand rises and falls while a balloon works.
 *
 * With fileMiB > 0 the cache holds pages of a file set of fileMiB (the same files
 * on every machine, like one disk image cloned to many VMs): page j of the cache
 * holds file page order[j], where order is a partial Fisher-Yates shuffle of the
 * file set driven by `seed`. Machines given different seeds (different requests
 * served) cache different subsets, so a cached page has a twin in another machine
 * with probability cached/fileMiB. The cache stops at the whole file set. */
#include "ulib.h"
#define CHUNK (1ULL << 20)
#define MAX_CHUNKS 4096
#define PAGE_WORDS 512
#define FILE_PAGES_MAX 16384  /* a 64 MiB file set */
static u64 *chunks[MAX_CHUNKS];
static u32 order[FILE_PAGES_MAX];
static u64 file_pages;

/* A cached page's first word (the rest stays zero): an anonymous page's is its
 * position, a file page's is the file page's number (odd, so never the same). */
static u64 page_word(u64 c, u64 off) {
  if (!file_pages) return mix64((c << 20) + off);
  return mix64(((u64)order[c * (CHUNK / 8 / PAGE_WORDS) + off / PAGE_WORDS] << 12) | 1);
}

static void pick_files(u64 seed) {
  u64 state = seed;
  for (u64 f = 0; f < file_pages; f++) order[f] = (u32)f;
  for (u64 j = 0; j < file_pages; j++) {
    state = mix64(state);
    u64 k = j + (state >> 8) % (file_pages - j);
    u32 t = order[j]; order[j] = order[k]; order[k] = t;
  }
}

static u64 touch(u64 n, int write, u64 *errors) {
  u64 sum = 0;
  for (u64 c = 0; c < n; c++)
    for (u64 off = 0; off < CHUNK / 8; off += PAGE_WORDS) {  /* one word per 4 KiB page */
      u64 want = page_word(c, off);
      if (write) chunks[c][off] = want;
      else if (chunks[c][off] != want) (*errors)++;
      sum += chunks[c][off];
    }
  return sum;
}

static int one_round(u64 max, u64 seconds) {
  u64 n = 0, errors = 0, files = file_pages / (CHUNK / 8 / PAGE_WORDS);
  while (n < MAX_CHUNKS && (max == 0 || n < max) && (files == 0 || n < files) && (chunks[n] = sys_mmap(CHUNK)) != 0) n++;
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
  u64 file_mib = arg_u64(&args, 0), seed = arg_u64(&args, 1);
  if (file_mib > FILE_PAGES_MAX / (CHUNK / 8 / PAGE_WORDS)) {
    uprintf("pagecache: a file set of %lu MiB is over %lu MiB, failed\n", file_mib, FILE_PAGES_MAX / (CHUNK / 8 / PAGE_WORDS));
    return 1;
  }
  file_pages = file_mib * (CHUNK / 8 / PAGE_WORDS);
  pick_files(seed);
  int bad = 0;
  for (u64 r = 0; r < rounds; r++) {
    if (r) sys_sleep(seconds * 1000);
    bad |= one_round(max, seconds);
  }
  return bad;
}
