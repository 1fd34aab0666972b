/* Runs kernel/balloon.c as a host program against a strict model of the
 * balloon backdoor device (reference sheet vmw-balloon-driver.md §5, §13, §15.2)
 * and a model frame allocator, and checks the hypercall sequences Linux's
 * vmw_balloon sends. Build: gcc -DHOSTED_TEST -I../kernel ../kernel/balloon.c
 * balloon_hosted.c. Prints one line per scenario; exit status 0 = all passed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdarg.h>
#include "kernel.h"
#include "balloon.h"

#define RAM_FRAMES 65536ULL            /* 256 MiB */
u8 *hosted_ram;
static u8 used[RAM_FRAMES];            /* model allocator: 1 = allocated */
static u64 n_free;
static int failures;

#define CHECK(c, ...) do { if (!(c)) { failures++; printf("  FAIL %s:%d: ", __FILE__, __LINE__); printf(__VA_ARGS__); printf("\n"); } } while (0)

/* ---- model allocator (what the kernel's pmm provides) ---- */
void kprintf(const char *fmt, ...) { (void)fmt; }
u64 pmm_total_frames(void) { return RAM_FRAMES; }
u64 pmm_free_frames(void) { return n_free; }
u64 mem_reserved_frames;
int pmm_can_commit(u64 f) { return n_free >= mem_reserved_frames + 64 + f; }
static u64 alloc_from(u64 start) {
  for (u64 p = start; p < RAM_FRAMES; p++) if (!used[p]) { used[p] = 1; n_free--; return p << 12; }
  return 0;
}
u64 pmm_alloc_nozero(void) { return alloc_from(1); }
u64 pmm_alloc(void) { u64 pa = alloc_from(1); if (pa) memset(hosted_ram + pa, 0, 4096); return pa; }
u64 pmm_alloc_huge(void) {
  for (u64 b = 512; b + 512 <= RAM_FRAMES; b += 512) {
    int ok = 1;
    for (u64 i = 0; i < 512 && ok; i++) ok = !used[b + i];
    if (!ok) continue;
    for (u64 i = 0; i < 512; i++) used[b + i] = 1;
    n_free -= 512;
    return b << 12;
  }
  return 0;
}
static u8 locked[RAM_FRAMES];          /* host: frames in the balloon */
static u64 host_locked;
void pmm_free(u64 pa) {
  u64 p = pa >> 12;
  CHECK(p < RAM_FRAMES && used[p], "free of a free frame %llx", (unsigned long long)p);
  CHECK(!locked[p], "guest freed frame %llx while the host holds it locked", (unsigned long long)p);
  used[p] = 0; n_free++;
}
void pmm_free_huge(u64 pa) { for (u64 i = 0; i < 512; i++) pmm_free(pa + i * 4096); }

/* ---- strict device model ---- */
struct call { u64 cmd, rbx, rsi, status; };
static struct call trace[200000]; static int ntrace;
static u64 host_caps = 0x3e, granted, target, force_reset, started;
static int (*refuse)(u64 pfn, int huge, int index);   /* per-entry refusal policy */
static u64 refused_2m[64]; static int nrefused_2m;

static int refuse_none(u64 pfn, int huge, int i) { (void)pfn; (void)huge; (void)i; return 0; }

static u64 set_lock(u64 pfn, u64 frames, int lock) {
  if (pfn + frames > RAM_FRAMES) return 2;
  for (u64 i = 0; i < frames; i++) if (locked[pfn + i] != !lock) return lock ? 3 : 4;
  for (u64 i = 0; i < frames; i++) {
    CHECK(used[pfn + i], "host asked to lock free frame %llx", (unsigned long long)(pfn + i));
    locked[pfn + i] = (u8)lock;
  }
  host_locked = lock ? host_locked + frames : host_locked - frames;
  return 0;
}

static u64 batch(u64 cmd, u64 page_pfn, u64 count) {
  int huge = cmd >= 8, lock = cmd == 6 || cmd == 8;
  CHECK(count >= 1 && count <= 512, "batch count %llu", (unsigned long long)count);
  CHECK((granted & 4) && (!huge || (granted & 8)), "batched command %llu not granted", (unsigned long long)cmd);
  u64 *e = (u64 *)(hosted_ram + (page_pfn << 12));
  for (u64 i = 0; i < count; i++) {
    u64 pfn = e[i] >> 12;
    CHECK((e[i] & 0xfff) == 0, "entry %llu has low bits set", (unsigned long long)i);
    CHECK(!huge || pfn % 512 == 0, "2M entry not 2M aligned");
    u64 st;
    if (lock && refuse(pfn, huge, (int)i)) { st = 5; if (huge && nrefused_2m < 64) refused_2m[nrefused_2m++] = pfn; }
    else st = set_lock(pfn, huge ? 512 : 1, lock);
    e[i] = (e[i] & ~0xfffULL) | st;   /* keep the PFN bits */
  }
  return 0;
}

void hosted_backdoor(u64 *rax, u64 *rbx, u64 *rcx, u64 *rdx, u64 *rsi) {
  CHECK((*rax & 0xffffffff) == 0x456c6d6f && *rdx == 0x5670, "bad magic/port");
  u64 cmd = *rcx, status = 0, out_rbx = 0, out_rcx = 0;
  if (cmd == 10) {
    int clear = (*rbx & 0xffffffff) == 0xffffffff && (*rsi & 0xffffffff) == 0xffffffff;
    CHECK(clear || (started && (granted & 0x10)), "DOORBELL_SET(set) without SIGNALLED_WAKEUP");
    CHECK(clear || *rsi == VEC_DOORBELL, "doorbell vector %llu", (unsigned long long)*rsi);
  } else if (cmd == 0) {
    memset(locked, 0, sizeof(locked)); host_locked = 0;   /* START forgets every page */
    granted = *rbx & host_caps; started = *rbx != 0; force_reset = 0;
    status = 0x03000000; out_rcx = granted;
  } else if (cmd == 4) {
    CHECK(*rbx == 1, "GUEST_ID %llu", (unsigned long long)*rbx);
  } else if (cmd == 1) {
    CHECK(*rbx == RAM_FRAMES, "GET_TARGET limit %llu", (unsigned long long)*rbx);
    if (force_reset) status = 7; else out_rbx = target;
  } else if (cmd >= 6 && cmd <= 9) {
    CHECK(started, "batched command before START");
    status = batch(cmd, *rbx, *rsi); out_rbx = target;
  } else if (cmd == 2 || cmd == 3) {
    CHECK(started && !(granted & 4), "non-batched command in batched mode");
    CHECK(*rsi == 1, "LOCK/UNLOCK RSI %llu", (unsigned long long)*rsi);
    status = cmd == 2 && refuse(*rbx, 0, 0) ? 5 : set_lock(*rbx, 1, cmd == 2); out_rbx = target;
  } else {
    CHECK(0, "unknown command %llu", (unsigned long long)cmd);
    status = 1;
  }
  if (ntrace < 200000) trace[ntrace++] = (struct call){cmd, *rbx, *rsi, status};
  *rax = status; *rbx = out_rbx; *rcx = out_rcx;
  *rdx = 0xdead; *rsi = 0xdead;   /* clobbered, as the real call may */
}

/* ---- helpers ---- */
static int mark;
static void expect_calls(const char *what, const u64 (*want)[3], int n) {
  int got = ntrace - mark;
  CHECK(got == n, "%s: %d calls, expected %d", what, got, n);
  for (int i = 0; i < n && i < got; i++) {
    struct call *c = &trace[mark + i];
    CHECK(c->cmd == want[i][0] && (want[i][1] == ~0ULL - 1 || c->rbx == want[i][1]) &&
          (want[i][2] == ~0ULL - 1 || c->rsi == want[i][2]),
          "%s: call %d is %llu(%llx,%llx), expected %llu(%llx,%llx)", what, i, (unsigned long long)c->cmd,
          (unsigned long long)c->rbx, (unsigned long long)c->rsi, (unsigned long long)want[i][0],
          (unsigned long long)want[i][1], (unsigned long long)want[i][2]);
  }
  mark = ntrace;
}
#define ANY (~0ULL - 1)
#define INV 0xffffffffffffffffULL
static void pass(void) { mark = ntrace; balloon_work(); }
static void consistent(const char *what) {
  CHECK(balloon_size_frames() == host_locked, "%s: guest size %llu, host holds %llu", what,
        (unsigned long long)balloon_size_frames(), (unsigned long long)host_locked);
}
static void scenario(const char *name) { printf("%s %s\n", failures ? "(after failures)" : "ok so far:", name); }

static u64 first_refusals;
static int refuse_first_batch(u64 pfn, int huge, int i) { (void)pfn; (void)i; return huge && first_refusals ? (first_refusals--, 1) : 0; }
static int refuse_16_of_first(u64 pfn, int huge, int i) { (void)pfn; return huge && i < 16 && nrefused_2m < 16; }
static int in_refused_2m(u64 pfn) {
  for (int i = 0; i < nrefused_2m; i++) if (pfn >= refused_2m[i] && pfn < refused_2m[i] + 512) return 1;
  return 0;
}

int main(void) {
  hosted_ram = calloc(RAM_FRAMES, 4096);
  n_free = RAM_FRAMES - 1; used[0] = 1;
  refuse = refuse_none;
  u64 free0 = n_free;

  /* 1. First pass: Linux's reset sequence, then GET_TARGET. */
  pass();
  const u64 reset_seq[][3] = {{10, INV, INV}, {0, 0x3e, 0}, {10, 0, VEC_DOORBELL}, {4, 1, 0}, {1, RAM_FRAMES, 0}};
  expect_calls("reset", reset_seq, 5);
  scenario("reset: DOORBELL_SET(~0,~0), START(0x3e), DOORBELL_SET(0,vector), GUEST_ID(1), GET_TARGET");

  /* 2. Target 1000, host refuses both 2M pages of the first batch (reference §13 steps 4-6). */
  target = 1000; first_refusals = 2; refuse = refuse_first_batch;
  pass();
  const u64 inflate_seq[][3] = {{1, RAM_FRAMES, 0}, {8, ANY, 2}, {8, ANY, 2}};
  expect_calls("inflate 1000", inflate_seq, 3);
  CHECK(balloon_size_frames() == 1024, "size %llu after inflating to 1000", (unsigned long long)balloon_size_frames());
  for (u64 p = 0; p < RAM_FRAMES; p++) if (locked[p]) CHECK(!in_refused_2m(p), "refused 2M page was resubmitted");
  consistent("inflate 1000");
  pass();
  const u64 idle_seq[][3] = {{1, RAM_FRAMES, 0}};
  expect_calls("idle within slack", idle_seq, 1);
  scenario("inflate with 2 refused 2M pages -> 1024 frames, slack keeps it");

  /* 3. Target 200: one BATCHED_2M_UNLOCK of 2 (2M round-up ends below target). */
  target = 200; pass();
  const u64 deflate_seq[][3] = {{1, RAM_FRAMES, 0}, {9, ANY, 2}};
  expect_calls("deflate 200", deflate_seq, 2);
  CHECK(balloon_size_frames() == 0, "size %llu after deflating to 200", (unsigned long long)balloon_size_frames());
  consistent("deflate 200");
  scenario("deflate to 200 -> one 2m-unlock of 2, size 0");

  /* 4. ERROR_RESET from GET_TARGET: nothing else that pass; the next pass resets and re-inflates. */
  force_reset = 1; pass();
  expect_calls("error reset", idle_seq, 1);
  pass();
  const u64 reset2[][3] = {{10, INV, INV}, {0, 0x3e, 0}, {10, 0, VEC_DOORBELL}, {4, 1, 0}, {1, RAM_FRAMES, 0}, {8, ANY, 1}};
  expect_calls("reset and re-inflate", reset2, 6);
  CHECK(balloon_size_frames() == 512, "size %llu after re-inflating to 200", (unsigned long long)balloon_size_frames());
  consistent("after reset");
  scenario("ERROR_RESET -> reset next pass, re-inflate one 2M page");

  /* 5. Split: target 20000, 16 refusals in the first 2M batch -> refused 2M pages split into 4K. */
  target = 0; pass(); consistent("empty");
  nrefused_2m = 0; refuse = refuse_16_of_first; target = 20000;
  pass();
  int saw_4k = 0, from_split = 1;
  for (int i = mark; i < ntrace; i++) {
    if (trace[i].cmd != 6) continue;
    saw_4k++;
  }
  CHECK(nrefused_2m == 16, "%d 2M pages refused", nrefused_2m);
  CHECK(saw_4k > 0, "no 4K batch after 16 2M refusals");
  for (u64 p = 0; p < RAM_FRAMES; p++)
    if (locked[p] && in_refused_2m(p)) from_split++;
  CHECK(from_split > 1, "no 4K page of a refused 2M page was reused");
  CHECK(balloon_size_frames() == 20000, "size %llu for target 20000", (unsigned long long)balloon_size_frames());
  CHECK(trace[mark + 1].cmd == 8 && trace[mark + 1].rsi == 40, "first batch: %llu(%llu)", (unsigned long long)trace[mark + 1].cmd, (unsigned long long)trace[mark + 1].rsi);
  consistent("split");
  scenario("16 refused 2M pages are split and their 4K pages reused; size reaches 20000");

  /* 6. Deflate to 0: 4K pages first, then 2M; every frame comes back. */
  refuse = refuse_none; target = 0; pass();
  int first_2m = -1, last_4k = -1;
  for (int i = mark; i < ntrace; i++) {
    if (trace[i].cmd == 7) last_4k = i;
    if (trace[i].cmd == 9 && first_2m < 0) first_2m = i;
  }
  CHECK(last_4k >= 0 && first_2m > last_4k, "4K unlocks (last %d) must precede 2M unlocks (first %d)", last_4k, first_2m);
  CHECK(balloon_size_frames() == 0 && host_locked == 0, "balloon not empty after target 0");
  CHECK(n_free == free0 - 1, "frames leaked: %llu free, expected %llu (one batch page)", (unsigned long long)n_free, (unsigned long long)(free0 - 1));
  scenario("deflate to 0: 4K before 2M, no frame leaked");

  /* 7. Unload: DOORBELL_SET(~0,~0), START(0), pop without UNLOCK. */
  target = 3000; pass(); consistent("before unload");
  mark = ntrace; balloon_unload();
  const u64 unload[][3] = {{10, INV, INV}, {0, 0, 0}};
  expect_calls("unload", unload, 2);
  CHECK(balloon_size_frames() == 0, "pages left after unload");
  CHECK(n_free == free0 - 1, "frames leaked after unload");
  scenario("unload: doorbell clean-up, START(0), pop");

  /* 8. A host without batching (START grants BASIC only): one LOCK per 4K page, RSI 1. */
  host_caps = 0x02; target = 100; pass();
  int locks = 0;
  for (int i = mark; i < ntrace; i++) if (trace[i].cmd == 2) { locks++; CHECK(trace[i].rsi == 1, "LOCK rsi"); }
  CHECK(trace[mark + 1].cmd == 0 && trace[mark + 2].cmd == 4, "no doorbell set without SIGNALLED_WAKEUP");
  CHECK(locks == 100 && balloon_size_frames() == 100, "%d LOCKs, size %llu", locks, (unsigned long long)balloon_size_frames());
  consistent("non-batched");
  scenario("non-batched host: 100 x LOCK(pfn, 1)");

  balloon_print_stats();
  printf(failures ? "FAILED: %d checks\n" : "ALL OK\n", failures);
  return failures != 0;
}
