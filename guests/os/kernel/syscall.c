/* SYSCALL/SYSRET set-up and the system call table (numbers in include/syscall.h). */
#include "proc.h"
#include "mm.h"
#include "../include/syscall.h"

#define MSR_EFER 0xc0000080
#define MSR_STAR 0xc0000081
#define MSR_LSTAR 0xc0000082
#define MSR_FMASK 0xc0000084
#define RFLAGS_TF 0x100
#define RFLAGS_IF 0x200
#define RFLAGS_DF 0x400
#define RFLAGS_AC 0x40000

extern void syscall_entry(void);
u64 syscall_counts[SYS_COUNT];

void syscall_init(void) {
  wrmsr(MSR_EFER, rdmsr(MSR_EFER) | 1);  /* SCE */
  /* SYSCALL: CS = 0x08, SS = 0x10.  SYSRET: CS = 0x10 + 16 = 0x20|3, SS = 0x10 + 8 = 0x18|3. */
  wrmsr(MSR_STAR, ((u64)0x10 << 48) | ((u64)SEL_KCODE << 32));
  wrmsr(MSR_LSTAR, (u64)syscall_entry);
  wrmsr(MSR_FMASK, RFLAGS_TF | RFLAGS_IF | RFLAGS_DF | RFLAGS_AC);
}

/* Every page of [buf, buf+len) lies in one of the caller's regions. */
static int user_range_ok(u64 buf, u64 len) {
  struct mm *mm = &current_proc()->mm;
  if (buf + len < buf || buf + len > 0x800000000000ULL) return 0;
  for (u64 va = buf & ~(PAGE_SIZE - 1); va < buf + len; va += PAGE_SIZE)
    if (!vma_find(mm, va)) return 0;
  return 1;
}

static i64 sys_write(u64 fd, u64 buf, u64 len) {
  if (fd != 1 && fd != 2) return -E_INVAL;
  if (!user_range_ok(buf, len)) return -E_INVAL;
  const char *s = (const char *)buf;  /* user pages are mapped in the current CR3 */
  for (u64 i = 0; i < len; i++) serial_putc(s[i]);
  return (i64)len;
}

void syscall_dispatch(struct trap_frame *f) {
  u64 nr = f->rax, a = f->rdi, b = f->rsi, c = f->rdx;
  i64 r;
  if (nr < SYS_COUNT) syscall_counts[nr]++;
  switch (nr) {
  case SYS_EXIT: proc_exit((int)a);
  case SYS_WRITE: r = sys_write(a, b, c); break;
  case SYS_MMAP: r = sys_mmap(b); break;
  case SYS_MUNMAP: r = sys_munmap(a, b); break;
  case SYS_FORK: r = proc_fork(f); break;
  case SYS_YIELD: proc_yield(); r = 0; break;
  case SYS_GETPID: r = current_proc()->pid; break;
  case SYS_SLEEP: proc_sleep(a); r = 0; break;
  case SYS_WAIT: r = (a && !user_range_ok(a, 4)) ? -E_INVAL : proc_wait(a); break;
  default: r = -E_NOSYS; break;
  }
  f->rax = (u64)r;
}
