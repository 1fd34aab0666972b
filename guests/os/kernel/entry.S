/* memvisor-os low-level entry points: boot, exception/interrupt stubs,
 * SYSCALL entry/SYSRET exit, and the kernel-stack context switch. */

#define SEL_UDATA 0x1b
#define SEL_UCODE 0x23
#define FRAME_CS 144          /* offsetof(struct trap_frame, cs) */
#define PERCPU_KSTACK 0       /* offsetof(struct percpu, kstack_top) */
#define PERCPU_USER_RSP 8     /* offsetof(struct percpu, user_rsp)  */

.macro PUSH_GPRS
  push %rax; push %rbx; push %rcx; push %rdx; push %rsi; push %rdi; push %rbp
  push %r8; push %r9; push %r10; push %r11; push %r12; push %r13; push %r14; push %r15
.endm
.macro POP_GPRS
  pop %r15; pop %r14; pop %r13; pop %r12; pop %r11; pop %r10; pop %r9; pop %r8
  pop %rbp; pop %rdi; pop %rsi; pop %rdx; pop %rcx; pop %rbx; pop %rax
.endm

  .section .text.entry, "ax"
  .global _start
_start:
  cli
  lea boot_stack_top(%rip), %rsp
  xor %ebp, %ebp
  call kmain
1: hlt
  jmp 1b

  .text
/* Exception and interrupt stubs: push a dummy error code where the CPU does
 * not, then the vector, then join the common path. */
.macro ISR_NOERR vec
  .global isr_\vec
isr_\vec:
  push $0
  push $\vec
  jmp isr_common
.endm
.macro ISR_ERR vec
  .global isr_\vec
isr_\vec:
  push $\vec
  jmp isr_common
.endm

ISR_NOERR 0;  ISR_NOERR 1;  ISR_NOERR 2;  ISR_NOERR 3;  ISR_NOERR 4;  ISR_NOERR 5
ISR_NOERR 6;  ISR_NOERR 7;  ISR_ERR 8;    ISR_NOERR 9;  ISR_ERR 10;   ISR_ERR 11
ISR_ERR 12;   ISR_ERR 13;   ISR_ERR 14;   ISR_NOERR 15; ISR_NOERR 16; ISR_ERR 17
ISR_NOERR 18; ISR_NOERR 19; ISR_NOERR 20; ISR_ERR 21;   ISR_NOERR 22; ISR_NOERR 23
ISR_NOERR 24; ISR_NOERR 25; ISR_NOERR 26; ISR_NOERR 27; ISR_NOERR 28; ISR_ERR 29
ISR_ERR 30;   ISR_NOERR 31
ISR_NOERR 64; ISR_NOERR 65; ISR_NOERR 66; ISR_NOERR 255

isr_common:
  PUSH_GPRS
  testb $3, FRAME_CS(%rsp)
  jz 1f
  swapgs                      /* from CPL 3: GS.base <- per-CPU data */
1:
  mov %rsp, %rdi
  cld
  call trap_dispatch
  .global trap_return
trap_return:
  testb $3, FRAME_CS(%rsp)
  jz 1f
  swapgs                      /* back to CPL 3: restore the user GS.base */
1:
  POP_GPRS
  add $16, %rsp               /* vector and error code */
  iretq

/* SYSCALL: RCX = user RIP, R11 = user RFLAGS, IF cleared by FMASK, RSP still the
 * user's. Build a struct trap_frame on the per-CPU kernel stack. */
  .global syscall_entry
syscall_entry:
  swapgs
  mov %rsp, %gs:PERCPU_USER_RSP
  mov %gs:PERCPU_KSTACK, %rsp
  push $SEL_UDATA             /* ss     */
  push %gs:PERCPU_USER_RSP    /* rsp    */
  push %r11                   /* rflags */
  push $SEL_UCODE             /* cs     */
  push %rcx                   /* rip    */
  push $0                     /* error  */
  push $256                   /* vector 256 = system call */
  PUSH_GPRS
  mov %rsp, %rdi
  cld
  call syscall_dispatch
  .global syscall_return
syscall_return:
  POP_GPRS
  add $16, %rsp
  pop %rcx                    /* user RIP    */
  add $8, %rsp
  pop %r11                    /* user RFLAGS */
  mov (%rsp), %rsp            /* user RSP; IF stays 0 until SYSRET */
  swapgs
  sysretq

/* void context_switch(u64 *save_rsp, u64 new_rsp): callee-saved registers on
 * the old kernel stack, then continue on the new one. */
  .global context_switch
context_switch:
  push %rbp; push %rbx; push %r12; push %r13; push %r14; push %r15
  mov %rsp, (%rdi)
  mov %rsi, %rsp
  pop %r15; pop %r14; pop %r13; pop %r12; pop %rbx; pop %rbp
  ret

/* First return of a new or forked process: its kernel stack holds a trap frame
 * built for the SYSRET path. */
  .global proc_first_entry
proc_first_entry:
  jmp syscall_return

/* Reload CS with IRETQ (no far return needed) and the data segments. */
  .global load_segments
load_segments:
  mov %rsp, %rax
  push $0x10                  /* ss  */
  push %rax                   /* rsp */
  pushfq
  push $0x08                  /* cs  */
  lea 1f(%rip), %rax
  push %rax
  iretq
1:
  mov $0x10, %ax
  mov %ax, %ds
  mov %ax, %es
  mov %ax, %ss
  xor %eax, %eax
  mov %ax, %fs
  mov %ax, %gs
  ret

  .bss
  .balign 16
boot_stack:
  .skip 65536
boot_stack_top:

  .section .note.GNU-stack, "", @progbits
