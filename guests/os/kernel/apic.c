/* Local APIC timer in periodic mode, HZ ticks per second.
 *
 * memvisor's board has an x2APIC (registers are MSRs 0x800 + offset/16). CPUs
 * without x2APIC (CPUID.1:ECX bit 21 clear, e.g. QEMU's TCG) get the same
 * registers as xAPIC MMIO at APIC_BASE, reached through the direct map.
 *
 * LVT timer (x2APIC MSR 0x832, MMIO 0x320): 7:0 vector | 12 delivery pending |
 * 16 mask | 18:17 mode (00 one-shot, 01 periodic, 10 TSC deadline). The APIC
 * clock comes from CPUID leaf 0x15 (core crystal) when the CPU reports it;
 * otherwise an assumed constant, so tick lengths are then only nominal. */
#include "kernel.h"
#include "mm.h"

#define MSR_APIC_BASE 0x1b
#define REG_EOI 0x0b0
#define REG_SVR 0x0f0
#define REG_LVT_TIMER 0x320
#define REG_INIT_COUNT 0x380
#define REG_DIVIDE 0x3e0
#define ASSUMED_APIC_HZ 2000000000ULL  /* 2 GHz: the memvisor board's default TSC, which clocks its APIC timer */

volatile u64 ticks;
u64 apic_hz;
u64 tsc_hz;                        /* 0 when the CPU does not enumerate it */
static int x2apic;
static volatile u32 *xapic_mmio;

static void apic_write(u32 reg, u32 v) {
  if (x2apic) wrmsr(0x800 + (reg >> 4), v);
  else xapic_mmio[reg / 4] = v;
}

/* The APIC timer's input clock (SDM vol. 3A 10.5.4: the core crystal clock when CPUID
 * leaf 0x15 enumerates the TSC/crystal ratio), as Linux's native_calibrate_tsc reads it:
 *   leaf 0x15: EAX = ratio denominator, EBX = numerator (0: not enumerated), ECX = crystal Hz
 *              (0: not enumerated); TSC Hz = ECX * EBX / EAX
 *   leaf 0x16: EAX 15:0 = base MHz; without ECX of 0x15, crystal = base * EAX / EBX
 * Otherwise an assumed constant; *how says which. */
static u64 apic_clock_hz(const char **how) {
  u32 max, a, b, c, d;
  cpuid(0, 0, &max, &b, &c, &d);
  if (max >= 0x15) {
    u32 den, num, crystal;
    cpuid(0x15, 0, &den, &num, &crystal, &d);
    if (num && den) {
      *how = "CPUID 0x15";
      if (!crystal && max >= 0x16) {
        cpuid(0x16, 0, &a, &b, &c, &d);
        crystal = (u32)((u64)(a & 0xffff) * 1000000 * den / num);
        *how = "CPUID 0x15 ratio, 0x16 base";
      }
      if (crystal) {
        tsc_hz = (u64)crystal * num / den;
        return crystal;
      }
    }
  }
  *how = "assumed";
  return ASSUMED_APIC_HZ;
}

void apic_init(void) {
  u32 a, b, c, d;
  cpuid(1, 0, &a, &b, &c, &d);
  u64 base = rdmsr(MSR_APIC_BASE);
  x2apic = ((c >> 21) & 1) || (base & 0x400);  /* advertised, or already on (the memvisor board) */
  if (x2apic) {
    if ((base & 0xc00) != 0xc00) wrmsr(MSR_APIC_BASE, base | 0xc00);  /* x2APIC + enable */
  } else {
    if (!(base & 0x800)) wrmsr(MSR_APIC_BASE, base | 0x800);
    vm_map_device_2m(base & 0xfffff000ULL);
    xapic_mmio = phys_to_virt(base & 0xfffff000ULL);
  }
  apic_write(REG_SVR, 0x100 | VEC_SPURIOUS);           /* software enable */
  const char *how;
  apic_hz = apic_clock_hz(&how);
  apic_write(REG_DIVIDE, 0xb);                         /* divide by 1 */
  apic_write(REG_LVT_TIMER, (1u << 17) | VEC_TIMER);   /* periodic, unmasked */
  apic_write(REG_INIT_COUNT, (u32)(apic_hz / HZ));
  kprintf("apic: %s timer periodic at %d Hz, clock %lu Hz (%s), TSC %lu Hz\n", x2apic ? "x2APIC" : "xAPIC (MMIO)", HZ,
          apic_hz, how, tsc_hz);
}

void apic_eoi(void) { apic_write(REG_EOI, 0); }
