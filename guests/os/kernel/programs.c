/* User programs linked into the kernel image as flat binaries (user_blobs.S). */
#include "proc.h"

#define BLOB(n) extern const u8 blob_##n##_start[], blob_##n##_end[];
BLOB(hello) BLOB(toucher) BLOB(random) BLOB(forktree) BLOB(pagecache) BLOB(sleeper) BLOB(crash)

static const struct program programs[] = {
  {"hello", blob_hello_start, blob_hello_end, "hello: print a greeting and the pid"},
  {"toucher", blob_toucher_start, blob_toucher_end, "toucher:MiB[:passes[:sleepms]] write and verify a region"},
  {"random", blob_random_start, blob_random_end, "random:MiB[:accesses[:seed]] random reads/writes"},
  {"forktree", blob_forktree_start, blob_forktree_end, "forktree:depth[:KiB] COW sharing across a fork tree"},
  {"pagecache", blob_pagecache_start, blob_pagecache_end, "pagecache[:maxMiB[:seconds[:rounds]]] take all memory given"},
  {"sleeper", blob_sleeper_start, blob_sleeper_end, "sleeper:seconds stay alive (balloon keeps working)"},
  {"crash", blob_crash_start, blob_crash_end, "crash: touch an unmapped address (killed alone)"},
};

const struct program *program_find(const char *name, size_t len) {
  for (size_t i = 0; i < sizeof(programs) / sizeof(programs[0]); i++)
    if (strlen(programs[i].name) == len && !strncmp(programs[i].name, name, len)) return &programs[i];
  return 0;
}

void programs_list(void) {
  for (size_t i = 0; i < sizeof(programs) / sizeof(programs[0]); i++)
    kprintf("  %-10s %5lu bytes  %s\n", programs[i].name, (u64)(programs[i].end - programs[i].start), programs[i].help);
}
