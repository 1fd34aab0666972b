/* memvisor-os system call ABI, shared by the kernel and user programs.
 *
 * Entry: SYSCALL with RAX = number, arguments in RDI, RSI, RDX (Linux order);
 * result in RAX (negative = -errno). RCX and R11 are clobbered (SYSCALL/SYSRET
 * use them for RIP and RFLAGS); every other register is preserved. */
#ifndef MEMVISOR_SYSCALL_H
#define MEMVISOR_SYSCALL_H

#define SYS_EXIT    0  /* exit(code)                 -> never returns                   */
#define SYS_WRITE   1  /* write(fd, buf, len)        -> len; fd 1 and 2 = serial console */
#define SYS_MMAP    2  /* mmap(0, len, 0)            -> address of len bytes of demand-zero memory, or -ENOMEM */
#define SYS_MUNMAP  3  /* munmap(addr, len)          -> 0 or -EINVAL                    */
#define SYS_FORK    4  /* fork()                     -> child pid in the parent, 0 in the child */
#define SYS_YIELD   5  /* yield()                    -> 0                               */
#define SYS_GETPID  6  /* getpid()                   -> pid                             */
#define SYS_SLEEP   7  /* sleep(ms)                  -> 0 (timer-tick resolution)       */
#define SYS_WAIT    8  /* wait(int *status)          -> pid of an exited child (status = its exit code), or -ECHILD */
#define SYS_COUNT   9

#define E_NOMEM  12
#define E_INVAL  22
#define E_CHILD  10
#define E_NOSYS  38

/* User address space layout (4 KiB pages, lower half). */
#define USER_IMAGE_BASE 0x400000ULL        /* program image (text+data+bss)  */
#define USER_MMAP_BASE  0x10000000ULL      /* mmap area grows upwards         */
#define USER_MMAP_END   0x4000000000ULL    /* 256 GiB                         */
#define USER_STACK_TOP  0x7ffffff00000ULL  /* stack grows down from here      */
#define USER_STACK_SIZE 0x40000ULL         /* 256 KiB, demand-zero            */

#endif
