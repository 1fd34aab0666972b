// Native x86-64 runner for the differential CPU test (issue 11, Tests §1) and the native
// side of the CPU bench. Built with the system gcc at test time; never committed as a binary.
//
// It runs machine-code snippets at CPL 3 on the host CPU from fixed addresses (the
// interpreter gets the same image at the same virtual addresses) and reports the state
// they end in.
//
// Entry and exit both go through the kernel's signal frame, which carries every GPR,
// RIP and RFLAGS exactly:
//   entry: tgkill(SIGUSR1) → the handler writes the case's GPRs, RFLAGS and RIP = code
//          base into the ucontext → sigreturn loads them all at once (no prologue code in
//          the snippet's page, so the snippet's bytes and addresses are all the CPU sees);
//   exit:  the snippet is followed by UD2; its SIGILL (or any fault before it: SIGFPE,
//          SIGSEGV, SIGBUS, SIGTRAP) lands on the sigaltstack, the handler copies the
//          ucontext (GPRs, RIP, RFLAGS, trap number, error code, CR2) and siglongjmps.
// The kernel clears DF (and TF) before running a handler, so C resumes with DF = 0.
//
// Crash isolation: the parent forks a child per batch; the child writes results into
// shared memory and counts finished cases, under alarm(). If it dies, the parent records
// the case it died on as CRASHED and forks again from the next one.
//
// Protocol (all little-endian), stdin:
//   header  u32 magic 'MVH1' | u32 flags | u64 codeBase | u64 codeSize | u64 dataBase |
//           u64 dataSize | u64 gsBase | u32 nBatches
//           flags bit0: each batch carries a data image (else the data region is zeroed)
//           flags bit1: no memory diff in the results (bench: huge data regions)
//   batch   u32 nCases | [u8 dataImage[dataSize] if bit0] | nCases × case
//   case    u64 gpr[16] (rax rcx rdx rbx rsp rbp rsi rdi r8..r15) | u64 rflags |
//           u32 codeLen | u8 code[codeLen]
// stdout, per case:
//   u32 status (0 reached the UD2 after the snippet, 1 fault, 2 child crashed or timed out)
//   u32 vector | u64 errorCode | u64 cr2 | u64 gpr[16] | u64 rip | u64 rflags | u64 ns |
//   u32 nDiff | nDiff × { u32 offset; u8 value }  (data bytes that differ from the image)
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>
#include <asm/prctl.h>

#define MAGIC 0x3148564du /* "MVH1" */
#define FLAG_IMAGE 1u
#define FLAG_NODIFF 2u
#define CASE_TIMEOUT_S 2

enum { ST_END = 0, ST_FAULT = 1, ST_CRASH = 2 };

typedef struct {
  uint64_t gpr[16], rflags;
  uint32_t codeLen;
  const uint8_t *code;
} Case;

// Host ucontext register index for each x86 GPR number.
static const int GREG[16] = {REG_RAX, REG_RCX, REG_RDX, REG_RBX, REG_RSP, REG_RBP, REG_RSI, REG_RDI,
                             REG_R8,  REG_R9,  REG_R10, REG_R11, REG_R12, REG_R13, REG_R14, REG_R15};

static uint64_t codeBase, codeSize, dataBase, dataSize, gsBase;
static uint32_t flags;
static uint8_t *input;
static size_t inputLen, inputPos;

static void die(const char *what) {
  fprintf(stderr, "harness: %s: %s\n", what, strerror(errno));
  exit(2);
}

static void fail(const char *what) {
  fprintf(stderr, "harness: %s\n", what);
  exit(2);
}

static const void *take(size_t n) {
  if (inputLen - inputPos < n) fail("truncated input");
  const void *p = input + inputPos;
  inputPos += n;
  return p;
}
static uint32_t u32(void) { uint32_t v; memcpy(&v, take(4), 4); return v; }
static uint64_t u64(void) { uint64_t v; memcpy(&v, take(8), 8); return v; }

static void readAll(void) {
  size_t cap = 1 << 20;
  input = malloc(cap);
  for (;;) {
    if (inputLen == cap) input = realloc(input, cap *= 2);
    if (!input) fail("out of memory");
    ssize_t n = read(0, input + inputLen, cap - inputLen);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) die("read stdin");
    if (n == 0) break;
    inputLen += (size_t)n;
  }
}

// ---- the child: run cases ----

static sigjmp_buf back;
static const Case *current;
static volatile uint32_t outStatus, outVector;
static uint64_t outErr, outCr2, outGpr[16], outRip, outFlags;
static struct timespec t0, t1;

static void onEnter(int sig, siginfo_t *si, void *ctx) {
  (void)sig; (void)si;
  greg_t *g = ((ucontext_t *)ctx)->uc_mcontext.gregs;
  for (int i = 0; i < 16; i++) g[GREG[i]] = (greg_t)current->gpr[i];
  g[REG_EFL] = (greg_t)current->rflags;
  g[REG_RIP] = (greg_t)codeBase;
  clock_gettime(CLOCK_MONOTONIC, &t0);
}

// A snippet's POPF may set AC, NT or ID. The kernel clears none of them for a handler and
// sigreturn takes them from the caller, so they would leak into C (AC with Linux's CR0.AM:
// #AC on any misaligned access) and into the next case's start state. Clear them.
static inline void clearAC(void) { __asm__ volatile("pushfq; andq $~0x244000, (%%rsp); popfq" ::: "memory", "cc"); }

static void onExit(int sig, siginfo_t *si, void *ctx) {
  (void)si;
  clearAC();
  clock_gettime(CLOCK_MONOTONIC, &t1);
  greg_t *g = ((ucontext_t *)ctx)->uc_mcontext.gregs;
  for (int i = 0; i < 16; i++) outGpr[i] = (uint64_t)g[GREG[i]];
  outRip = (uint64_t)g[REG_RIP];
  outFlags = (uint64_t)g[REG_EFL];
  outVector = (uint32_t)g[REG_TRAPNO];
  outErr = (uint64_t)g[REG_ERR];
  outCr2 = (uint64_t)g[REG_CR2];
  outStatus = (sig == SIGILL && outRip == codeBase + current->codeLen) ? ST_END : ST_FAULT;
  siglongjmp(back, 1);
}

static void handle(int sig, void (*fn)(int, siginfo_t *, void *)) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = fn;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
  sigemptyset(&sa.sa_mask);
  if (sigaction(sig, &sa, NULL)) die("sigaction");
}

static void *mapAt(uint64_t addr, uint64_t size, int prot) {
  void *p = mmap((void *)addr, size, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  if (p == MAP_FAILED || (uint64_t)p != addr) die("mmap at fixed address");
  return p;
}

static void childSetup(void) {
  static uint8_t altstack[1 << 16];
  stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack, .ss_flags = 0};
  if (sigaltstack(&ss, NULL)) die("sigaltstack");
  handle(SIGUSR1, onEnter);
  int exits[] = {SIGILL, SIGSEGV, SIGBUS, SIGFPE, SIGTRAP};
  for (unsigned i = 0; i < sizeof exits / sizeof *exits; i++) handle(exits[i], onExit);
  if (syscall(SYS_arch_prctl, ARCH_SET_GS, gsBase)) die("arch_prctl(ARCH_SET_GS)");
}

static void runCase(const Case *c, uint8_t *code) {
  memset(code, 0xCC, codeSize); // int3 everywhere the snippet does not reach
  memcpy(code, c->code, c->codeLen);
  if (c->codeLen + 2 <= codeSize) code[c->codeLen] = 0x0F, code[c->codeLen + 1] = 0x0B; // ud2: the end marker
  // (a snippet filling the whole page has none: it runs off the page end)
  current = c;
  // A snippet may load DS/ES (MOV Sreg); nothing restores them, so start each case from 0.
  __asm__ volatile("mov %0, %%ds; mov %0, %%es" ::"r"(0));
  if (sigsetjmp(back, 1) == 0) {
    syscall(SYS_tgkill, getpid(), (pid_t)syscall(SYS_gettid), SIGUSR1);
    fail("snippet returned into C"); // unreachable: onEnter redirects to the code page
  }
  clearAC();
}

typedef struct {
  volatile uint32_t done; // cases finished by the child
  uint32_t pad;
  volatile uint64_t used; // bytes of results written
  uint8_t bytes[];
} Shared;

static void put(Shared *sh, const void *p, size_t n) {
  memcpy(sh->bytes + sh->used, p, n);
  sh->used += n;
}

static void record(Shared *sh, const uint8_t *data, const uint8_t *image) {
  uint64_t ns = (uint64_t)(t1.tv_sec - t0.tv_sec) * 1000000000u + (uint64_t)(t1.tv_nsec - t0.tv_nsec);
  uint32_t st = outStatus, vec = st == ST_END ? 0 : outVector;
  put(sh, &st, 4), put(sh, &vec, 4), put(sh, &outErr, 8), put(sh, &outCr2, 8);
  put(sh, outGpr, 128), put(sh, &outRip, 8), put(sh, &outFlags, 8), put(sh, &ns, 8);
  uint64_t at = sh->used;
  uint32_t n = 0;
  put(sh, &n, 4);
  if (!(flags & FLAG_NODIFF)) {
    for (uint32_t off = 0; off < dataSize; off++) {
      if (data[off] == (image ? image[off] : 0)) continue;
      put(sh, &off, 4), put(sh, &data[off], 1);
      n++;
    }
  }
  memcpy(sh->bytes + at, &n, 4);
}

static void runChild(const Case *cases, uint32_t from, uint32_t n, const uint8_t *image, Shared *sh) {
  childSetup();
  uint8_t *code = mapAt(codeBase, codeSize, PROT_READ | PROT_WRITE | PROT_EXEC);
  uint8_t *data = mapAt(dataBase, dataSize, PROT_READ | PROT_WRITE);
  madvise(data, dataSize, MADV_NOHUGEPAGE); // 4 KiB pages, as the guest has: TLB misses stay misses
  for (uint32_t i = from; i < n; i++) {
    if (image) memcpy(data, image, dataSize);
    else if (i != from) memset(data, 0, dataSize);
    alarm(CASE_TIMEOUT_S);
    runCase(&cases[i], code);
    alarm(0);
    record(sh, data, image);
    sh->done = i + 1;
  }
  _exit(0);
}

// ---- the parent: one child per batch, re-forked after a crash ----

static void writeOut(const void *p, size_t n) {
  const uint8_t *b = p;
  while (n) {
    ssize_t w = write(1, b, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) die("write stdout");
    b += w, n -= (size_t)w;
  }
}

static void crashRecord(uint32_t how) {
  uint8_t rec[4 + 4 + 8 + 8 + 128 + 8 + 8 + 8 + 4];
  memset(rec, 0, sizeof rec);
  uint32_t st = ST_CRASH;
  memcpy(rec, &st, 4), memcpy(rec + 4, &how, 4); // vector field = the signal that killed it
  writeOut(rec, sizeof rec);
}

static void runBatch(const Case *cases, uint32_t n, const uint8_t *image, Shared *sh) {
  uint32_t from = 0;
  while (from < n) {
    sh->done = from, sh->used = 0;
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) die("fork");
    if (pid == 0) runChild(cases, from, n, image, sh);
    int ws;
    while (waitpid(pid, &ws, 0) < 0)
      if (errno != EINTR) die("waitpid");
    writeOut(sh->bytes, sh->used);
    if (sh->done >= n) break;
    crashRecord(WIFSIGNALED(ws) ? (uint32_t)WTERMSIG(ws) : 0x100u + (uint32_t)WEXITSTATUS(ws));
    from = sh->done + 1;
  }
}

int main(void) {
  readAll();
  if (u32() != MAGIC) fail("bad magic");
  flags = u32();
  codeBase = u64(), codeSize = u64(), dataBase = u64(), dataSize = u64(), gsBase = u64();
  uint32_t nBatches = u32();
  for (uint32_t b = 0; b < nBatches; b++) {
    uint32_t n = u32();
    const uint8_t *image = (flags & FLAG_IMAGE) ? take(dataSize) : NULL;
    Case *cases = calloc(n ? n : 1, sizeof *cases);
    for (uint32_t i = 0; i < n; i++) {
      for (int r = 0; r < 16; r++) cases[i].gpr[r] = u64();
      cases[i].rflags = u64();
      cases[i].codeLen = u32();
      if (cases[i].codeLen + 2 > codeSize && cases[i].codeLen != codeSize) fail("snippet larger than the code page");
      cases[i].code = take(cases[i].codeLen);
    }
    // A result is at most 188 bytes plus 5 per differing data byte.
    size_t shSize = sizeof(Shared) + (size_t)n * (192 + ((flags & FLAG_NODIFF) ? 0 : 5 * dataSize));
    Shared *sh = mmap(NULL, shSize, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (sh == MAP_FAILED) die("mmap shared results");
    runBatch(cases, n, image, sh);
    munmap(sh, shSize);
    free(cases);
  }
  return 0;
}
