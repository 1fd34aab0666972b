/* Processes, address spaces and the round-robin scheduler. */
#ifndef PROC_H
#define PROC_H
#include "kernel.h"

#define MAX_PROCS 64
#define MAX_VMAS 32
#define KSTACK_SIZE 16384

enum proc_state { P_UNUSED, P_RUNNABLE, P_RUNNING, P_SLEEPING, P_WAITING, P_ZOMBIE };

/* A range of demand-zero user memory [start, end). */
struct vma { u64 start, end; };

struct mm {
  u64 pml4;
  u16 pcid;
  u8 pcid_fresh;      /* next CR3 load must flush this PCID */
  u64 reserved;       /* VMA pages promised but not yet backed by a frame */
  u64 mmap_next;
  int nvma;
  struct vma vma[MAX_VMAS];
};

struct proc {
  int pid, ppid;
  enum proc_state state;
  int exit_code;
  u64 ksp;            /* saved kernel RSP while switched out */
  u64 kstack_top;
  u64 wake_tick;
  u64 slice_end;
  u64 faults_zero, faults_cow;
  char name[16];
  struct mm mm;
};

extern struct proc procs[MAX_PROCS];
struct proc *current_proc(void);
int proc_spawn(const char *name, const char *args, int ppid);
void proc_exit(int code) __attribute__((noreturn));
void proc_kill_current(const char *why) __attribute__((noreturn));
i64 proc_fork(struct trap_frame *f);
i64 proc_wait(u64 status_uva);
void proc_sleep(u64 ms);
void proc_yield(void);
void proc_tick(int from_user);
int procs_alive(void);
void procs_list(void);
void scheduler(void) __attribute__((noreturn));

/* mm helpers (uspace.c) */
struct vma *vma_find(struct mm *mm, u64 va);
i64 mm_map_anon(struct mm *mm, u64 start, u64 len);
i64 sys_mmap(u64 len);
i64 sys_munmap(u64 addr, u64 len);
void mm_destroy(struct mm *mm);
int page_fault(struct trap_frame *f, u64 cr2);

/* programs.c */
struct program { const char *name; const u8 *start, *end; const char *help; };
const struct program *program_find(const char *name, size_t len);
void programs_list(void);
#endif
