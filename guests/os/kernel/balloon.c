/* VMware balloon driver, following current upstream Linux vmw_balloon.c.
 *
 * Transport: ONE `inl (%dx)` with EAX = 0x456c6d6f, ECX = command,
 * EDX = 0x5670, EBX = arg1, ESI = arg2; EAX = status, EBX = result,
 * ECX = capabilities (START) come back.
 *
 * Batch page entry (u64, one per page, up to 512 per 4 KiB batch page):
 *   63..12 PFN (4 KiB frame; for 2 MiB pages the first frame, a multiple of 512)
 *   11..5  reserved (0)
 *   4..0   status, written by the host (0 = locked/unlocked) */
#include "balloon.h"
#include "pfnlist.h"

#define BALLOON_PORT 0x5670
#define BALLOON_MAGIC 0x456c6d6fULL

enum { CMD_START, CMD_GET_TARGET, CMD_LOCK, CMD_UNLOCK, CMD_GUEST_ID, CMD_5_UNUSED,
       CMD_BATCHED_LOCK, CMD_BATCHED_UNLOCK, CMD_BATCHED_2M_LOCK, CMD_BATCHED_2M_UNLOCK,
       CMD_DOORBELL_SET, CMD_COUNT };
static const char *const cmd_names[CMD_COUNT] = {"start", "target", "lock", "unlock", "guestType", "(5)",
  "batchLock", "batchUnlock", "2m-lock", "2m-unlock", "doorbellSet"};
#define CMDS_WITH_TARGET ((1u << CMD_GET_TARGET) | (1u << CMD_LOCK) | (1u << CMD_UNLOCK) | \
  (1u << CMD_BATCHED_LOCK) | (1u << CMD_BATCHED_UNLOCK) | (1u << CMD_BATCHED_2M_LOCK) | (1u << CMD_BATCHED_2M_UNLOCK))

#define CAP_BASIC (1u << 1)
#define CAP_BATCHED (1u << 2)
#define CAP_BATCHED_2M (1u << 3)
#define CAP_SIGNALLED_WAKEUP (1u << 4)
#define CAP_64BIT_TARGET (1u << 5)
#define CAPS_REQUESTED (CAP_BASIC | CAP_BATCHED | CAP_BATCHED_2M | CAP_SIGNALLED_WAKEUP | CAP_64BIT_TARGET)

#define ST_SUCCESS 0
#define ST_PPN_INVALID 2
#define ST_RESET 7
#define ST_SUCCESS_WITH_CAPS 0x03000000ULL
#define GUEST_ID_LINUX 1
#define INVALID_ID 0xffffffffffffffffULL  /* VMCI_INVALID_ID (int ~0) as unsigned long */
#define REFUSED_LIMIT 16
#define BATCH_MAX 512

enum page_size { PS_4K, PS_2M, PS_COUNT };
static const u64 frames_per[PS_COUNT] = {1, 512};
static const char *const ps_names[PS_COUNT] = {"4k", "2M"};

struct page_stats { u64 alloc, alloc_fail, err_alloc, err_free, free; };
static struct {
  u64 ops[CMD_COUNT], failed[CMD_COUNT];
  u64 timer, doorbell, reset;
  struct page_stats page[PS_COUNT];
} st;

int balloon_enabled = 1;
static int reset_required = 1, batching;
static u64 caps, target, size, batch_max, batch_pa;
static enum page_size max_page_size;
static struct pfn_list balloon_pages[PS_COUNT];

static u64 batch_pfn[BATCH_MAX];   /* pages of the batch being locked/unlocked */
static u8 batch_status[BATCH_MAX];

#ifdef HOSTED_TEST
void hosted_backdoor(u64 *rax, u64 *rbx, u64 *rcx, u64 *rdx, u64 *rsi);
#endif

static void backdoor(u64 cmd, u64 arg1, u64 arg2, u64 *status, u64 *result, u64 *capabilities) {
  u64 rax = BALLOON_MAGIC, rbx = arg1, rcx = cmd, rdx = BALLOON_PORT, rsi = arg2;
#ifdef HOSTED_TEST
  hosted_backdoor(&rax, &rbx, &rcx, &rdx, &rsi);
#else
  __asm__ volatile("inl (%%dx), %%eax" : "+a"(rax), "+b"(rbx), "+c"(rcx), "+d"(rdx), "+S"(rsi) : : "memory", "cc");
#endif
  *status = rax; *result = rbx; *capabilities = rcx;
}

/* Every command: statistics, ERROR_RESET, and the new target on success. */
static u64 cmd(u64 c, u64 arg1, u64 arg2, u64 *caps_out) {
  u64 status, result, rcx;
  backdoor(c, arg1, arg2, &status, &result, &rcx);
  st.ops[c]++;
  if (status != ST_SUCCESS && status != ST_SUCCESS_WITH_CAPS) st.failed[c]++;
  if (status == ST_RESET) reset_required = 1;
  else if (status == ST_SUCCESS && ((CMDS_WITH_TARGET >> c) & 1)) target = result;
  if (caps_out) *caps_out = rcx;
  return status;
}

u64 balloon_size_frames(void) { return size; }

/* vmballoon_change: frames to inflate (> 0) or deflate (< 0) now. */
static i64 change(void) {
  if (reset_required) return 0;
  if (target < size && target != 0 && size - target < 512) return 0;  /* 2 MiB slack */
  return (i64)(target - size);
}

/* ---- allocation and lists ---- */

static u64 alloc_page(enum page_size ps) {
  if (!pmm_can_commit(frames_per[ps])) return 0;  /* never take memory promised to processes */
  return ps == PS_2M ? pmm_alloc_huge() : pmm_alloc_nozero();
}

static void free_page(enum page_size ps, u64 pfn) {
  if (ps == PS_2M) pmm_free_huge(pfn << 12); else pmm_free(pfn << 12);
}

static void free_list(struct pfn_list *l, enum page_size ps) {
  i64 pfn;
  while ((pfn = pfn_pop(l)) >= 0) free_page(ps, (u64)pfn);
}

/* ---- LOCK / UNLOCK of the pages in batch_pfn[0..n) ---- */

static u64 lock_op(enum page_size ps, u64 n, int unlock) {
  if (!batching) {  /* one page, its status is EAX; PFNs must fit 32 bits */
    if (batch_pfn[0] >> 32) { batch_status[0] = ST_PPN_INVALID; return ST_PPN_INVALID; }
    u64 s = cmd(unlock ? CMD_UNLOCK : CMD_LOCK, batch_pfn[0], 1, 0);
    batch_status[0] = (u8)(s ? (s > 31 ? 31 : s) : 0);
    return s;
  }
  u64 *entries = phys_to_virt(batch_pa);
  for (u64 i = 0; i < n; i++) entries[i] = batch_pfn[i] << 12;  /* status bits 0 */
  u64 c = ps == PS_2M ? (unlock ? CMD_BATCHED_2M_UNLOCK : CMD_BATCHED_2M_LOCK)
                      : (unlock ? CMD_BATCHED_UNLOCK : CMD_BATCHED_LOCK);
  u64 s = cmd(c, batch_pa >> 12, n, 0);
  for (u64 i = 0; i < n; i++) {
    /* A batch status overrides every entry. The host must keep the PFN bits;
     * we find pages through our own copy and check that it did. */
    if ((entries[i] >> 12) != batch_pfn[i] && s == ST_SUCCESS)
      kprintf("balloon: host changed the PFN of batch entry %lu\n", i);
    batch_status[i] = (u8)(s != ST_SUCCESS ? 1 : (entries[i] & 0x1f));
  }
  return s;
}

/* ---- inflation ---- */

static void split_refused(struct pfn_list *refused, struct pfn_list *prealloc) {
  i64 pfn;
  while ((pfn = pfn_pop(refused)) >= 0) {
    for (u64 i = 0; i < 512; i++)
      if (pfn_push(prealloc, (u64)pfn + i) < 0) pmm_free(((u64)pfn + i) << 12);
  }
}

static void inflate(void) {
  enum page_size ps = max_page_size;
  struct pfn_list refused[PS_COUNT] = {{0, 0}, {0, 0}}, prealloc = {0, 0};
  u64 n_refused = 0;
  i64 ch;
  while ((ch = change()) > 0) {
    u64 f = frames_per[ps];
    u64 want = ((u64)ch + f - 1) / f, n = 0;
    if (want > batch_max) want = batch_max;
    while (n < want) {
      i64 pre = ps == PS_4K ? pfn_pop(&prealloc) : -1;
      if (pre >= 0) { batch_pfn[n++] = (u64)pre; continue; }
      u64 pa = alloc_page(ps);
      if (!pa) { st.page[ps].alloc_fail++; break; }
      st.page[ps].alloc++;
      batch_pfn[n++] = pa >> 12;
    }
    int alloc_failed = n < want;
    u64 status = ST_SUCCESS;
    if (n && pfn_reserve(&balloon_pages[ps], n) < 0) {
      /* No room to remember the pages: give them back before the host sees them. */
      for (u64 i = 0; i < n; i++) {
        if (ps == PS_4K && pfn_push(&prealloc, batch_pfn[i]) == 0) continue;
        free_page(ps, batch_pfn[i]);
      }
      st.page[ps].alloc_fail++;
      break;
    }
    if (n) {
      status = lock_op(ps, n, 0);
      for (u64 i = 0; i < n; i++) {
        if (batch_status[i] == ST_SUCCESS) {
          pfn_push(&balloon_pages[ps], batch_pfn[i]);  /* cannot fail: reserved above */
          size += f;
          continue;
        }
        st.page[ps].err_alloc++;
        n_refused++;
        if (pfn_push(&refused[ps], batch_pfn[i]) < 0) free_page(ps, batch_pfn[i]);
      }
    }
    if (status != ST_SUCCESS) break;
    if (alloc_failed || n_refused >= REFUSED_LIMIT) {
      if (ps == PS_4K) break;
      split_refused(&refused[PS_2M], &prealloc);  /* reuse the 4 KiB parts of refused 2 MiB pages */
      n_refused = 0;
      ps = PS_4K;
    }
  }
  for (int p = 0; p < PS_COUNT; p++) {
    if (refused[p].count) st.page[p].err_free++;
    free_list(&refused[p], (enum page_size)p);
  }
  free_list(&prealloc, PS_4K);
}

/* ---- deflation (vmballoon_deflate): 4 KiB pages first, then 2 MiB ---- */

static u64 deflate(u64 n_frames, int coordinated) {
  enum page_size ps = PS_4K;
  u64 tried = 0, deflated = 0;
  for (;;) {
    u64 f = frames_per[ps];
    i64 todo = n_frames ? (i64)(n_frames - tried) : -change();
    if (todo <= 0) break;
    u64 want = ((u64)todo + f - 1) / f, n = 0;
    u64 cap = coordinated ? batch_max : BATCH_MAX;
    if (want > cap) want = cap;
    i64 pfn;
    while (n < want && (pfn = pfn_pop(&balloon_pages[ps])) >= 0) batch_pfn[n++] = (u64)pfn;
    tried += n * f;
    u64 unlocked = n;
    if (coordinated && n) {
      lock_op(ps, n, 1);
      unlocked = 0;
      for (u64 i = 0; i < n; i++) {
        if (batch_status[i] == ST_SUCCESS) { batch_pfn[unlocked++] = batch_pfn[i]; continue; }
        st.page[ps].err_alloc++;
        if (pfn_push(&balloon_pages[ps], batch_pfn[i]) < 0) { /* cannot keep it listed */ }
      }
    }
    int deflated_all = unlocked == want;
    size -= unlocked * f;
    deflated += unlocked * f;
    st.page[ps].free += unlocked;
    for (u64 i = 0; i < unlocked; i++) free_page(ps, batch_pfn[i]);
    if (!deflated_all) {
      if (ps == max_page_size) break;
      ps = PS_2M;
    }
  }
  return deflated;
}

static void pop(void) {
  if (size == 0) return;
  /* Uncoordinated: every page goes back without UNLOCK (the host forgot them). */
  enum page_size saved = max_page_size;
  max_page_size = PS_2M;
  deflate(size, 0);
  max_page_size = saved;
  size = 0;
}

/* ---- reset (vmballoon_reset) ---- */

static void doorbell_clear(void) { cmd(CMD_DOORBELL_SET, INVALID_ID, INVALID_ID, 0); }

static void reset(void) {
  doorbell_clear();
  pop();
  u64 granted;
  u64 s = cmd(CMD_START, CAPS_REQUESTED, 0, &granted);
  if (s == ST_SUCCESS_WITH_CAPS) caps = granted & 0xffffffffULL;
  else if (s == ST_SUCCESS) caps = CAP_BASIC;
  else return;                            /* retried next pass */
  max_page_size = ((caps & CAP_BATCHED_2M) && (caps & CAP_BATCHED)) ? PS_2M : PS_4K;
  if (caps & CAP_BATCHED) {
    if (!batch_pa) batch_pa = pmm_alloc();
    if (!batch_pa) { cmd(CMD_START, 0, 0, 0); return; }
    memset(phys_to_virt(batch_pa), 0, PAGE_SIZE);
    batch_max = BATCH_MAX; batching = 1;
  } else if (caps & CAP_BASIC) {
    batch_max = 1; batching = 0;
  }
  st.reset++;
  reset_required = 0;
  if (caps & CAP_SIGNALLED_WAKEUP) {
    /* memvisor has no VMCI: its doorbell is an interrupt at the vector passed
     * as the resource id (RSI); the context id (RBX) is 0. */
    if (cmd(CMD_DOORBELL_SET, 0, VEC_DOORBELL, 0) != ST_SUCCESS) doorbell_clear();
  }
  if (cmd(CMD_GUEST_ID, GUEST_ID_LINUX, 0, 0) != ST_SUCCESS) kprintf("balloon: GUEST_ID failed\n");
}

void balloon_init(void) {
  kprintf("balloon: vmw_balloon-style driver on port 0x%x, capabilities 0x%x requested\n",
          BALLOON_PORT, CAPS_REQUESTED);
}

void balloon_work(void) {
  if (!balloon_enabled) return;
  if (reset_required) reset();
  st.timer++;
  u64 ram = pmm_total_frames();
  if ((ram >> 32) && !(caps & CAP_64BIT_TARGET)) return;
  u64 status = cmd(CMD_GET_TARGET, ram, 0, 0);
  if (status != ST_SUCCESS || batch_max == 0) return;
  i64 ch = change();
  if (ch > 0) inflate();
  else if (ch < 0) deflate(0, 1);
}

/* Test hook (shell `balloon touch`): read one ballooned page, which a driver must
 * never do; the host is expected to pop the balloon and answer ERROR_RESET. */
void balloon_touch(void) {
  for (int p = 0; p < PS_COUNT; p++) {
    i64 pfn = pfn_peek(&balloon_pages[p]);
    if (pfn < 0) continue;
    u64 pa = (u64)pfn << 12;
    u64 v = *(volatile u64 *)phys_to_virt(pa);
    kprintf("balloon: touched ballooned page %p (read %lx)\n", pa, v);
    return;
  }
  kprintf("balloon: empty, nothing to touch\n");
}

void balloon_doorbell(void) {
  st.doorbell++;
  balloon_work();
}

void balloon_unload(void) {
  if (!balloon_enabled) return;
  doorbell_clear();
  cmd(CMD_START, 0, 0, 0);  /* the host forgets every page before we touch them */
  pop();
  reset_required = 1;       /* a later pass starts over, as a reloaded module would */
}

void balloon_print_stats(void) {
  kprintf("balloon capabilities: 0x%x\n", CAPS_REQUESTED);
  kprintf("used capabilities:    0x%lx\n", caps);
  kprintf("is resetting:         %c\n", reset_required ? 'y' : 'n');
  kprintf("target:               %lu\n", target);
  kprintf("current:              %lu\n", size);
  for (int c = 0; c < CMD_COUNT; c++)
    if (c != CMD_5_UNUSED) kprintf("%-12s %8lu (%lu failed)\n", cmd_names[c], st.ops[c], st.failed[c]);
  kprintf("timer:      %8lu\ndoorbell:   %8lu\nreset:      %8lu\n", st.timer, st.doorbell, st.reset);
  for (int p = 0; p < PS_COUNT; p++) {
    kprintf("alloc (%s):      %8lu\n", ps_names[p], st.page[p].alloc);
    kprintf("allocFail (%s):  %8lu\n", ps_names[p], st.page[p].alloc_fail);
    kprintf("errAlloc (%s):   %8lu\n", ps_names[p], st.page[p].err_alloc);
    kprintf("errFree (%s):    %8lu\n", ps_names[p], st.page[p].err_free);
    kprintf("free (%s):       %8lu\n", ps_names[p], st.page[p].free);
  }
}
