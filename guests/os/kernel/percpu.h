/* Per-CPU data at GS.base while in the kernel (SWAPGS on every CPL 3 entry). */
#ifndef PERCPU_H
#define PERCPU_H
#include "kernel.h"
struct proc;
struct percpu {
  u64 kstack_top;  /* +0: RSP loaded by syscall_entry (= TSS.RSP0) */
  u64 user_rsp;    /* +8: scratch for the user RSP during SYSCALL  */
  u64 self;
  struct proc *current;
};
extern struct percpu percpu;
#endif
