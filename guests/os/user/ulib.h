/* memvisor-os user library: system calls and small helpers. */
#ifndef ULIB_H
#define ULIB_H
#include <stdint.h>
#include <stddef.h>
#include "../include/syscall.h"

typedef uint64_t u64; typedef int64_t i64; typedef uint32_t u32; typedef uint8_t u8;

static inline i64 syscall3(u64 nr, u64 a, u64 b, u64 c) {
  i64 r;
  __asm__ volatile("syscall" : "=a"(r) : "a"(nr), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
  return r;
}
static inline __attribute__((noreturn)) void sys_exit(int code) { syscall3(SYS_EXIT, (u64)code, 0, 0); for (;;) {} }
static inline i64 sys_write(const void *buf, u64 len) { return syscall3(SYS_WRITE, 1, (u64)buf, len); }
static inline void *sys_mmap(u64 len) { i64 r = syscall3(SYS_MMAP, 0, len, 0); return r < 0 ? 0 : (void *)r; }
static inline i64 sys_munmap(void *p, u64 len) { return syscall3(SYS_MUNMAP, (u64)p, len, 0); }
static inline i64 sys_fork(void) { return syscall3(SYS_FORK, 0, 0, 0); }
static inline void sys_yield(void) { syscall3(SYS_YIELD, 0, 0, 0); }
static inline i64 sys_getpid(void) { return syscall3(SYS_GETPID, 0, 0, 0); }
static inline void sys_sleep(u64 ms) { syscall3(SYS_SLEEP, ms, 0, 0); }
static inline i64 sys_wait(int *status) { return syscall3(SYS_WAIT, (u64)status, 0, 0); }

/* printf subset: %s %c %d %u %x (with l, width, 0 pad); output is buffered per call. */
void uprintf(const char *fmt, ...);
u64 arg_u64(const char **args, u64 dflt);  /* next ':'-separated number of the argument string */
u64 mix64(u64 x);                           /* splitmix64 finalizer: pattern and PRNG */
void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
#endif
