/* Freestanding string helpers (gcc may emit calls to memset/memcpy itself). */
#include "kernel.h"

/* REP STOS/MOVS: one instruction per call for page zeroing and copying, which
 * an instruction-counting CPU model charges far less than a byte loop. Large
 * ranges go one page per REP, so each REP instruction retires after at most one
 * page of first-touch faults (memvisor's hypervisor treats a long run of exits
 * without a retired instruction as a hang). */
#define REP_CHUNK 4096

void *memset(void *d, int c, size_t n) {
  u8 *p = d;
  u64 v = 0x0101010101010101ULL * (u8)c;
  while (n) {
    size_t k = n < REP_CHUNK ? n : REP_CHUNK;
    void *q = p;
    if ((((u64)p | k) & 7) == 0) {
      u64 words = k / 8;
      __asm__ volatile("rep stosq" : "+D"(q), "+c"(words) : "a"(v) : "memory");
    } else {
      size_t bytes = k;
      __asm__ volatile("rep stosb" : "+D"(q), "+c"(bytes) : "a"(c) : "memory");
    }
    p += k; n -= k;
  }
  return d;
}

void *memcpy(void *d, const void *s, size_t n) {
  u8 *dp = d; const u8 *sp = s;
  while (n) {
    size_t k = n < REP_CHUNK ? n : REP_CHUNK;
    void *q = dp; const void *r = sp;
    if ((((u64)dp | (u64)sp | k) & 7) == 0) {
      u64 words = k / 8;
      __asm__ volatile("rep movsq" : "+D"(q), "+S"(r), "+c"(words) : : "memory");
    } else {
      size_t bytes = k;
      __asm__ volatile("rep movsb" : "+D"(q), "+S"(r), "+c"(bytes) : : "memory");
    }
    dp += k; sp += k; n -= k;
  }
  return d;
}

int memcmp(const void *a, const void *b, size_t n) {
  const u8 *x = a, *y = b;
  for (; n; n--, x++, y++) if (*x != *y) return *x < *y ? -1 : 1;
  return 0;
}

size_t strlen(const char *s) { size_t n = 0; while (s[n]) n++; return n; }

int strncmp(const char *a, const char *b, size_t n) {
  for (; n; n--, a++, b++) {
    if (*a != *b) return (u8)*a < (u8)*b ? -1 : 1;
    if (!*a) return 0;
  }
  return 0;
}

/* Decimal (or 0x-prefixed hex) number at *s; advances *s past it. */
u64 parse_u64(const char **s) {
  const char *p = *s; u64 v = 0;
  if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
    for (p += 2;; p++) {
      int d = (*p >= '0' && *p <= '9') ? *p - '0' : (*p >= 'a' && *p <= 'f') ? *p - 'a' + 10
            : (*p >= 'A' && *p <= 'F') ? *p - 'A' + 10 : -1;
      if (d < 0) break;
      v = v * 16 + (u64)d;
    }
  } else {
    for (; *p >= '0' && *p <= '9'; p++) v = v * 10 + (u64)(*p - '0');
  }
  *s = p;
  return v;
}
