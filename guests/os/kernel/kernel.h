/* memvisor-os: common kernel declarations and CPU helpers. */
#ifndef KERNEL_H
#define KERNEL_H
#include <stdint.h>
#include <stddef.h>
#include <stdarg.h>

typedef uint64_t u64; typedef uint32_t u32; typedef uint16_t u16; typedef uint8_t u8;
typedef int64_t i64; typedef int32_t i32;

#define PAGE_SIZE 4096ULL
#define HUGE_SIZE 0x200000ULL
#define KERNEL_VBASE 0xffffffff80000000ULL
#define HHDM_BASE 0xffff800000000000ULL     /* our direct map keeps Limine's offset */

/* Selectors: the order SYSCALL/SYSRET need (STAR[47:32]=0x08, STAR[63:48]=0x10). */
#define SEL_KCODE 0x08
#define SEL_KDATA 0x10
#define SEL_UDATA 0x1b   /* 0x18 | RPL 3 */
#define SEL_UCODE 0x23   /* 0x20 | RPL 3 */
#define SEL_TSS   0x28

#define VEC_TIMER 0x40
#define VEC_DOORBELL 0x41
#define VEC_HOTPLUG 0x42
#define VEC_SPURIOUS 0xff

#ifdef HOSTED_TEST  /* test/balloon_hosted.c runs the balloon driver as a host program */
extern u8 *hosted_ram;
static inline void *phys_to_virt(u64 pa) { return hosted_ram + pa; }
#else
static inline void *phys_to_virt(u64 pa) { return (void *)(pa + HHDM_BASE); }
static inline u64 virt_to_phys(const void *va) { return (u64)va - HHDM_BASE; }
#endif

static inline void outb(u16 port, u8 v) { __asm__ volatile("outb %0, %1" ::"a"(v), "Nd"(port)); }
static inline void outw(u16 port, u16 v) { __asm__ volatile("outw %0, %1" ::"a"(v), "Nd"(port)); }
static inline void outl(u16 port, u32 v) { __asm__ volatile("outl %0, %1" ::"a"(v), "Nd"(port)); }
static inline u8 inb(u16 port) { u8 v; __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline u32 inl(u16 port) { u32 v; __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline u64 rdmsr(u32 msr) {
  u32 lo, hi; __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr)); return ((u64)hi << 32) | lo;
}
static inline void wrmsr(u32 msr, u64 v) {
  __asm__ volatile("wrmsr" ::"c"(msr), "a"((u32)v), "d"((u32)(v >> 32)) : "memory");
}
static inline u64 read_cr2(void) { u64 v; __asm__ volatile("mov %%cr2, %0" : "=r"(v)); return v; }
static inline u64 read_cr3(void) { u64 v; __asm__ volatile("mov %%cr3, %0" : "=r"(v)); return v; }
static inline void write_cr3(u64 v) { __asm__ volatile("mov %0, %%cr3" ::"r"(v) : "memory"); }
static inline u64 read_cr4(void) { u64 v; __asm__ volatile("mov %%cr4, %0" : "=r"(v)); return v; }
static inline void write_cr4(u64 v) { __asm__ volatile("mov %0, %%cr4" ::"r"(v) : "memory"); }
static inline void invlpg(u64 va) { __asm__ volatile("invlpg (%0)" ::"r"(va) : "memory"); }
static inline void cpuid(u32 leaf, u32 sub, u32 *a, u32 *b, u32 *c, u32 *d) {
  __asm__ volatile("cpuid" : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d) : "a"(leaf), "c"(sub));
}
static inline void cli(void) { __asm__ volatile("cli" ::: "memory"); }
static inline void halt_until_interrupt(void) { __asm__ volatile("sti; hlt; cli" ::: "memory"); }

/* lib.c */
void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strncmp(const char *a, const char *b, size_t n);
u64 parse_u64(const char **s);

/* serial.c / printf.c */
void serial_init(void);
void serial_putc(char c);
int serial_getc(void); /* -1 when no input is waiting */
void kprintf(const char *fmt, ...);
void kvprintf(const char *fmt, va_list ap);
__attribute__((noreturn)) void panic(const char *fmt, ...);
__attribute__((noreturn)) void power_off(int code);

/* boot.c */
extern char boot_cmdline[256];
extern u64 kernel_phys_base;

/* gdt.c */
void gdt_init(void);
void tss_set_rsp0(u64 rsp0);

/* idt.c / trap.c */
struct trap_frame {
  u64 r15, r14, r13, r12, r11, r10, r9, r8, rbp, rdi, rsi, rdx, rcx, rbx, rax;
  u64 vector, error, rip, cs, rflags, rsp, ss;
};
void idt_init(void);
void trap_dispatch(struct trap_frame *f);

/* apic.c */
#define HZ 100
extern volatile u64 ticks;
void apic_init(void);
void apic_eoi(void);

/* main.c */
void kernel_tick(void);

#endif
