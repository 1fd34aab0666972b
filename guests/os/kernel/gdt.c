/* GDT (kernel/user code and data, TSS) and the 64-bit TSS with RSP0 and an IST
 * stack for #DF.
 *
 * Descriptor (8 bytes):  63..56 base 31:24 | 55 G | 54 D/B | 53 L | 52 AVL |
 *   51..48 limit 19:16 | 47 P | 46..45 DPL | 44 S | 43..40 type | 39..16 base 23:0 |
 *   15..0 limit 15:0.   TSS descriptors take 16 bytes (bytes 8..11 = base 63:32). */
#include "kernel.h"
#include "percpu.h"

struct tss {
  u32 reserved0; u64 rsp[3]; u64 reserved1; u64 ist[7]; u64 reserved2; u16 reserved3; u16 iomap_base;
} __attribute__((packed));

static struct tss tss;
static u64 gdt[7];
static u8 df_stack[8192] __attribute__((aligned(16)));

struct percpu percpu;

#define CODE64(dpl) (0x00209a0000000000ULL | ((u64)(dpl) << 45))  /* P S type=exec/read, L=1 */
#define DATA(dpl)   (0x0000920000000000ULL | ((u64)(dpl) << 45))  /* P S type=read/write     */

extern void load_segments(void);

void tss_set_rsp0(u64 rsp0) { tss.rsp[0] = rsp0; percpu.kstack_top = rsp0; }

void gdt_init(void) {
  u64 base = (u64)&tss, limit = sizeof(tss) - 1;
  gdt[0] = 0;
  gdt[1] = CODE64(0);   /* 0x08 kernel code */
  gdt[2] = DATA(0);     /* 0x10 kernel data */
  gdt[3] = DATA(3);     /* 0x18 user data (SYSRET SS = STAR[63:48] + 8)  */
  gdt[4] = CODE64(3);   /* 0x20 user code (SYSRET CS = STAR[63:48] + 16) */
  gdt[5] = (limit & 0xffff) | ((base & 0xffffff) << 16) | (0x89ULL << 40) |
           (((limit >> 16) & 0xf) << 48) | (((base >> 24) & 0xff) << 56);
  gdt[6] = base >> 32;  /* 0x28 TSS, type 9 (available) */
  tss.ist[0] = (u64)df_stack + sizeof(df_stack);  /* IST1: #DF */
  tss.iomap_base = sizeof(tss);                   /* no I/O bitmap: CPL 3 has no port access */

  struct { u16 limit; u64 base; } __attribute__((packed)) gdtr = {sizeof(gdt) - 1, (u64)gdt};
  __asm__ volatile("lgdt %0" ::"m"(gdtr));
  load_segments();
  __asm__ volatile("ltr %w0" ::"r"((u16)SEL_TSS));
  percpu.self = (u64)&percpu;
  wrmsr(0xc0000101, (u64)&percpu);  /* GS_BASE in the kernel        */
  wrmsr(0xc0000102, 0);             /* KERNEL_GS_BASE: the user's   */
}
