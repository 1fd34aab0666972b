/* Processes and the round-robin scheduler.
 *
 * Every process has a 16 KiB kernel stack (TSS.RSP0 and the SYSCALL stack
 * while it runs). The scheduler runs on the boot stack: a process gives up the
 * CPU by switching back to it, and it picks the next runnable process after the
 * last one it ran. */
#include "proc.h"
#include "mm.h"
#include "percpu.h"
#include "../include/syscall.h"

#define SLICE_TICKS 2  /* 20 ms at HZ = 100 */

struct proc procs[MAX_PROCS];
static u8 kstacks[MAX_PROCS][KSTACK_SIZE] __attribute__((aligned(16)));
static u64 scheduler_ksp;
static int next_pid = 1, last_slot = -1;

extern void context_switch(u64 *save_rsp, u64 new_rsp);
extern void proc_first_entry(void);

struct proc *current_proc(void) { return percpu.current; }

static struct proc *alloc_slot(void) {
  for (int i = 0; i < MAX_PROCS; i++) {
    if (procs[i].state != P_UNUSED) continue;
    struct proc *p = &procs[i];
    memset(p, 0, sizeof(*p));
    p->pid = next_pid++;
    p->kstack_top = (u64)kstacks[i] + KSTACK_SIZE;
    return p;
  }
  return 0;
}

/* Lay out the kernel stack so that the first switch to p "returns" into
 * proc_first_entry, which leaves through SYSRET with the trap frame on top. */
static struct trap_frame *prepare_kstack(struct proc *p) {
  struct trap_frame *f = (struct trap_frame *)(p->kstack_top - sizeof(struct trap_frame));
  u64 *sp = (u64 *)f;
  *--sp = (u64)proc_first_entry;
  for (int i = 0; i < 6; i++) *--sp = 0;  /* rbp rbx r12 r13 r14 r15 */
  p->ksp = (u64)sp;
  return f;
}

static int new_space(struct mm *mm) {
  mm->pml4 = vm_new_space();
  if (!mm->pml4) return -1;
  int fresh;
  mm->pcid = pcid_alloc(&fresh);
  mm->pcid_fresh = (u8)fresh;
  return 0;
}

/* Back one page of a fresh address space now (through the direct map). */
static void *populate(struct mm *mm, u64 va) {
  u64 *pte = vm_pte(mm->pml4, va, 1);
  u64 pa = pte ? pmm_alloc() : 0;
  if (!pa) return 0;
  *pte = pa | PTE_P | PTE_W | PTE_U;
  mm->reserved--;
  mem_reserved_frames--;
  return phys_to_virt(pa);
}

/* Image header at the start of every user blob (see user/linker.ld). */
struct user_header { u64 magic, entry, image_end; };
#define USER_MAGIC 0x31525355534f564dULL  /* "MVOSUSR1" */

int proc_spawn(const char *name, const char *args, int ppid) {
  const struct program *prog = program_find(name, strlen(name));
  if (!prog) { kprintf("spawn: no program '%s'\n", name); return -1; }
  const struct user_header *h = (const void *)prog->start;
  u64 blob = (u64)(prog->end - prog->start);
  if (h->magic != USER_MAGIC) panic("spawn: '%s' is not a user image", name);
  struct proc *p = alloc_slot();
  if (!p) { kprintf("spawn: process table full\n"); return -1; }
  struct mm *mm = &p->mm;
  u64 image_len = (h->image_end - USER_IMAGE_BASE + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
  if (new_space(mm) < 0 || mm_map_anon(mm, USER_IMAGE_BASE, image_len) < 0 ||
      mm_map_anon(mm, USER_STACK_TOP - USER_STACK_SIZE, USER_STACK_SIZE) < 0) goto fail;
  for (u64 off = 0; off < blob; off += PAGE_SIZE) {
    u8 *page = populate(mm, USER_IMAGE_BASE + off);
    if (!page) goto fail;
    memcpy(page, prog->start + off, blob - off < PAGE_SIZE ? blob - off : PAGE_SIZE);
  }
  u8 *stack = populate(mm, USER_STACK_TOP - PAGE_SIZE);
  if (!stack) goto fail;
  u64 alen = strlen(args);
  if (alen > 255) alen = 255;
  memcpy(stack + PAGE_SIZE - 256, args, alen);
  mm->mmap_next = USER_MMAP_BASE;

  struct trap_frame *f = prepare_kstack(p);
  memset(f, 0, sizeof(*f));
  f->rip = h->entry;
  f->rflags = 0x202;                              /* IF */
  f->rsp = USER_STACK_TOP - 256 - 16;
  f->rdi = USER_STACK_TOP - 256;                  /* argument string */
  f->rsi = alen;
  f->cs = SEL_UCODE; f->ss = SEL_UDATA; f->vector = 256;
  p->ppid = ppid;
  memcpy(p->name, prog->name, strlen(prog->name) < 15 ? strlen(prog->name) : 15);
  p->state = P_RUNNABLE;
  return p->pid;
fail:
  kprintf("spawn: out of memory for '%s'\n", name);
  if (mm->pml4) mm_destroy(mm);
  p->state = P_UNUSED;
  return -1;
}

i64 proc_fork(struct trap_frame *pf) {
  struct proc *parent = current_proc(), *c = alloc_slot();
  if (!c) return -E_NOMEM;
  struct mm *mm = &c->mm;
  if (!pmm_can_commit(parent->mm.reserved) || new_space(mm) < 0) { c->state = P_UNUSED; return -E_NOMEM; }
  if (vm_fork_cow(parent->mm.pml4, mm->pml4) < 0) { mm_destroy(mm); c->state = P_UNUSED; return -E_NOMEM; }
  mm->nvma = parent->mm.nvma;
  memcpy(mm->vma, parent->mm.vma, sizeof(mm->vma));
  mm->mmap_next = parent->mm.mmap_next;
  mm->reserved = parent->mm.reserved;
  mem_reserved_frames += mm->reserved;
  struct trap_frame *f = prepare_kstack(c);
  *f = *pf;
  f->rax = 0;
  c->ppid = parent->pid;
  memcpy(c->name, parent->name, sizeof(c->name));
  c->state = P_RUNNABLE;
  return c->pid;
}

/* Give the CPU back to the scheduler; returns when p runs again. */
static void switch_to_scheduler(struct proc *p) { context_switch(&p->ksp, scheduler_ksp); }

static void reap(struct proc *z) { z->state = P_UNUSED; }

static void wake_parent(struct proc *p) {
  for (int i = 0; i < MAX_PROCS; i++)
    if (procs[i].pid == p->ppid && procs[i].state == P_WAITING) procs[i].state = P_RUNNABLE;
}

void proc_exit(int code) {
  struct proc *p = current_proc();
  vm_switch(kernel_pml4, 0, 0);  /* leave the address space before freeing it */
  mm_destroy(&p->mm);
  p->exit_code = code;
  for (int i = 0; i < MAX_PROCS; i++) {  /* orphans are reaped by the kernel */
    if (procs[i].ppid != p->pid || procs[i].state == P_UNUSED) continue;
    procs[i].ppid = 0;
    if (procs[i].state == P_ZOMBIE) reap(&procs[i]);
  }
  int parent_alive = 0;
  for (int i = 0; i < MAX_PROCS; i++)
    if (p->ppid && procs[i].pid == p->ppid && procs[i].state != P_UNUSED && procs[i].state != P_ZOMBIE) parent_alive = 1;
  if (parent_alive) { p->state = P_ZOMBIE; wake_parent(p); }
  else p->state = P_UNUSED;
  switch_to_scheduler(p);
  panic("exited process %d ran again", p->pid);
}

void proc_kill_current(const char *why) {
  struct proc *p = current_proc();
  kprintf("[%d %s] killed: %s\n", p->pid, p->name, why);
  proc_exit(-1);
}

i64 proc_wait(u64 status_uva) {
  struct proc *p = current_proc();
  for (;;) {
    int children = 0;
    for (int i = 0; i < MAX_PROCS; i++) {
      struct proc *c = &procs[i];
      if (c->ppid != p->pid || c->state == P_UNUSED) continue;
      children++;
      if (c->state != P_ZOMBIE) continue;
      int pid = c->pid, code = c->exit_code;
      reap(c);
      if (status_uva) *(volatile int *)status_uva = code;
      return pid;
    }
    if (!children) return -E_CHILD;
    p->state = P_WAITING;
    switch_to_scheduler(p);
  }
}

void proc_sleep(u64 ms) {
  struct proc *p = current_proc();
  p->wake_tick = ticks + (ms * HZ + 999) / 1000;
  p->state = P_SLEEPING;
  switch_to_scheduler(p);
}

void proc_yield(void) {
  struct proc *p = current_proc();
  p->state = P_RUNNABLE;
  switch_to_scheduler(p);
}

/* Timer tick: wake sleepers; preempt the running process at the end of its slice. */
void proc_tick(int from_user) {
  for (int i = 0; i < MAX_PROCS; i++)
    if (procs[i].state == P_SLEEPING && ticks >= procs[i].wake_tick) procs[i].state = P_RUNNABLE;
  struct proc *p = current_proc();
  if (p && from_user && ticks >= p->slice_end) proc_yield();
}

int procs_alive(void) {
  int n = 0;
  for (int i = 0; i < MAX_PROCS; i++) if (procs[i].state != P_UNUSED && procs[i].state != P_ZOMBIE) n++;
  return n;
}

void procs_list(void) {
  static const char *names[] = {"unused", "runnable", "running", "sleeping", "waiting", "zombie"};
  kprintf("  PID  PPID STATE     ZERO-FAULTS COW-FAULTS NAME\n");
  for (int i = 0; i < MAX_PROCS; i++) {
    struct proc *p = &procs[i];
    if (p->state == P_UNUSED) continue;
    kprintf("%5d %5d %-9s %11lu %10lu %s\n", p->pid, p->ppid, names[p->state], p->faults_zero, p->faults_cow, p->name);
  }
}

static struct proc *pick_next(void) {
  for (int n = 1; n <= MAX_PROCS; n++) {
    int i = (last_slot + n) % MAX_PROCS;
    if (procs[i].state == P_RUNNABLE) { last_slot = i; return &procs[i]; }
  }
  return 0;
}

void idle_hook(void);  /* main.c: shell input, power-off decision */

void scheduler(void) {
  for (;;) {
    struct proc *p = pick_next();
    if (!p) { idle_hook(); halt_until_interrupt(); continue; }
    p->state = P_RUNNING;
    p->slice_end = ticks + SLICE_TICKS;
    percpu.current = p;
    tss_set_rsp0(p->kstack_top);
    vm_switch(p->mm.pml4, p->mm.pcid, p->mm.pcid_fresh);
    p->mm.pcid_fresh = 0;
    context_switch(&scheduler_ksp, p->ksp);
    percpu.current = 0;
  }
}
