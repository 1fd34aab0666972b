/* x2APIC timer in periodic mode, HZ ticks per second.
 *
 * LVT timer (MSR 0x832): 7:0 vector | 12 delivery pending | 16 mask | 18:17 mode
 * (00 one-shot, 01 periodic, 10 TSC deadline). The APIC clock comes from CPUID
 * leaf 0x15 (core crystal) when the CPU reports it; otherwise an assumed
 * constant, so tick lengths are then only nominal. */
#include "kernel.h"

#define MSR_APIC_BASE 0x1b
#define X2APIC_EOI 0x80b
#define X2APIC_SVR 0x80f
#define X2APIC_LVT_TIMER 0x832
#define X2APIC_INIT_COUNT 0x838
#define X2APIC_DIVIDE 0x83e
#define ASSUMED_APIC_HZ 100000000ULL  /* 100 MHz */

volatile u64 ticks;
u64 apic_hz;

static u64 apic_clock_hz(void) {
  u32 a, b, c, d;
  cpuid(0, 0, &a, &b, &c, &d);
  if (a >= 0x15) {
    cpuid(0x15, 0, &a, &b, &c, &d);
    if (c) return c;               /* ECX = core crystal clock (Hz) = APIC timer clock */
  }
  return ASSUMED_APIC_HZ;
}

void apic_init(void) {
  u64 base = rdmsr(MSR_APIC_BASE);
  if ((base & 0xc00) != 0xc00) wrmsr(MSR_APIC_BASE, base | 0xc00);  /* x2APIC + enable */
  wrmsr(X2APIC_SVR, 0x100 | 0xff);                  /* software enable, spurious vector 0xFF */
  apic_hz = apic_clock_hz();
  wrmsr(X2APIC_DIVIDE, 0xb);                        /* divide by 1 */
  wrmsr(X2APIC_LVT_TIMER, (1u << 17) | VEC_TIMER);  /* periodic, unmasked */
  wrmsr(X2APIC_INIT_COUNT, apic_hz / HZ);
  kprintf("apic: x2APIC timer periodic at %d Hz, clock %lu Hz (%s)\n", HZ, apic_hz,
          apic_hz == ASSUMED_APIC_HZ ? "assumed" : "CPUID 0x15");
}

void apic_eoi(void) { wrmsr(X2APIC_EOI, 0); }
