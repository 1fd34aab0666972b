/* IDT and trap dispatch: exceptions, the x2APIC timer, the balloon doorbell,
 * the memory hotplug event.
 *
 * Gate (16 bytes): 0..1 offset 15:0 | 2..3 selector | 4 IST (bits 2:0) |
 *   5 P DPL type (0x8E = present, DPL 0, 64-bit interrupt gate) | 6..7 offset 31:16 |
 *   8..11 offset 63:32 | 12..15 reserved. */
#include "proc.h"
#include "mm.h"
#include "balloon.h"
#include "hotplug.h"

struct gate { u16 off0, sel; u8 ist, type; u16 off1; u32 off2, zero; } __attribute__((packed));
static struct gate idt[256];

#define DECL(n) extern void isr_##n(void);
DECL(0) DECL(1) DECL(2) DECL(3) DECL(4) DECL(5) DECL(6) DECL(7) DECL(8) DECL(9) DECL(10)
DECL(11) DECL(12) DECL(13) DECL(14) DECL(15) DECL(16) DECL(17) DECL(18) DECL(19) DECL(20)
DECL(21) DECL(22) DECL(23) DECL(24) DECL(25) DECL(26) DECL(27) DECL(28) DECL(29) DECL(30)
DECL(31) DECL(64) DECL(65) DECL(66) DECL(255)
static void (*const exception_stubs[32])(void) = {
  isr_0, isr_1, isr_2, isr_3, isr_4, isr_5, isr_6, isr_7, isr_8, isr_9, isr_10, isr_11, isr_12,
  isr_13, isr_14, isr_15, isr_16, isr_17, isr_18, isr_19, isr_20, isr_21, isr_22, isr_23, isr_24,
  isr_25, isr_26, isr_27, isr_28, isr_29, isr_30, isr_31};

static const char *const exception_names[32] = {
  "#DE divide error", "#DB debug", "NMI", "#BP breakpoint", "#OF overflow", "#BR bound",
  "#UD invalid opcode", "#NM no FPU", "#DF double fault", "coprocessor overrun", "#TS invalid TSS",
  "#NP segment not present", "#SS stack fault", "#GP general protection", "#PF page fault",
  "reserved 15", "#MF x87 error", "#AC alignment check", "#MC machine check", "#XM SIMD error",
  "#VE virtualization", "#CP control protection", "reserved 22", "reserved 23", "reserved 24",
  "reserved 25", "reserved 26", "reserved 27", "#HV hypervisor injection", "#VC VMM communication",
  "#SX security", "reserved 31"};

static void set_gate(int vec, void (*fn)(void), int ist) {
  u64 a = (u64)fn;
  idt[vec] = (struct gate){(u16)a, SEL_KCODE, (u8)ist, 0x8e, (u16)(a >> 16), (u32)(a >> 32), 0};
}

void idt_init(void) {
  for (int v = 0; v < 32; v++) set_gate(v, exception_stubs[v], v == 8 ? 1 : 0);
  set_gate(VEC_TIMER, isr_64, 0);
  set_gate(VEC_DOORBELL, isr_65, 0);
  set_gate(VEC_HOTPLUG, isr_66, 0);
  set_gate(VEC_SPURIOUS, isr_255, 0);
  struct { u16 limit; u64 base; } __attribute__((packed)) idtr = {sizeof(idt) - 1, (u64)idt};
  __asm__ volatile("lidt %0" ::"m"(idtr));
}

static void dump_frame(struct trap_frame *f) {
  kprintf("  vector %lu (%s) error %lx cr2 %p\n", f->vector, f->vector < 32 ? exception_names[f->vector] : "?",
          f->error, read_cr2());
  kprintf("  rip %p cs %lx rflags %lx rsp %p ss %lx\n", f->rip, f->cs, f->rflags, f->rsp, f->ss);
  kprintf("  rax %p rbx %p rcx %p rdx %p\n", f->rax, f->rbx, f->rcx, f->rdx);
  kprintf("  rsi %p rdi %p rbp %p cr3 %p\n", f->rsi, f->rdi, f->rbp, read_cr3());
}

static void exception(struct trap_frame *f) {
  if (f->vector == 14 && page_fault(f, read_cr2())) return;
  struct proc *p = current_proc();
  if ((f->cs & 3) && p) {
    kprintf("[%d %s] exception:\n", p->pid, p->name);
    dump_frame(f);
    proc_kill_current(exception_names[f->vector]);
  }
  kprintf("\nkernel exception:\n");
  dump_frame(f);
  panic("unhandled %s in the kernel", exception_names[f->vector]);
}

void trap_dispatch(struct trap_frame *f) {
  if (f->vector < 32) { exception(f); return; }
  if (f->vector == VEC_TIMER) {
    apic_eoi();
    kernel_tick();
    proc_tick(f->cs & 3);
  } else if (f->vector == VEC_DOORBELL) {
    apic_eoi();
    balloon_doorbell();
  } else if (f->vector == VEC_HOTPLUG) {
    apic_eoi();
    hotplug_event();
  }
  /* spurious: no EOI */
}
