/* forktree:depth[:KiB] - a binary tree of processes sharing a region
 * copy-on-write. The root fills the region with tag 1; every child checks what
 * it inherited (first half: its parent's tag, second half: tag 1), rewrites
 * the first half with its own tag (COW copies), forks its children, and checks
 * again after they exit that their writes did not reach it. */
#include "ulib.h"

static u64 *region; static u64 words;
static u64 val(u64 i, u64 tag) { return mix64(i ^ (tag << 32)); }

static u64 check(u64 first_tag, u64 *errors) {
  u64 sum = 0;
  for (u64 i = 0; i < words; i++) {
    u64 v = region[i], want = val(i, i < words / 2 ? first_tag : 1);
    if (v != want) (*errors)++;
    sum += v;
  }
  return sum;
}

static int node(u64 tag, u64 parent_tag, u64 depth) {
  u64 errors = 0;
  check(parent_tag, &errors);                          /* what fork gave us */
  for (u64 i = 0; i < words / 2; i++) region[i] = val(i, tag);
  for (u64 c = 0; c < 2 && depth > 0; c++) {
    i64 pid = sys_fork();
    if (pid == 0) sys_exit(node(tag * 2 + c, tag, depth - 1));
    if (pid < 0) { uprintf("forktree: fork failed (%ld)\n", pid); errors++; }
  }
  int status, failed = 0; i64 pid;
  while ((pid = sys_wait(&status)) > 0) if (status != 0) failed++;
  u64 sum = check(tag, &errors);                       /* children did not write into us */
  uprintf("forktree: node %lu pid %ld checksum %016lx %s\n", tag, sys_getpid(), sum,
          errors ? "BAD" : failed ? "ok (a child failed)" : "ok");
  return errors || failed;
}

int umain(const char *args, u64 len) {
  (void)len;
  u64 depth = arg_u64(&args, 3), kib = arg_u64(&args, 256);
  words = (kib << 10) / 8;
  region = sys_mmap(kib << 10);
  if (!region) { uprintf("forktree: mmap failed\n"); return 1; }
  for (u64 i = 0; i < words; i++) region[i] = val(i, 1);
  int r = node(1, 1, depth);
  uprintf("forktree: depth %lu, %lu processes, %s\n", depth, (2ULL << depth) - 1, r ? "FAILED" : "all ok");
  return r;
}
