/* Freestanding string helpers (gcc may emit calls to memset/memcpy itself). */
#include "kernel.h"

void *memset(void *d, int c, size_t n) {
  u8 *p = d;
  while (n--) *p++ = (u8)c;
  return d;
}

void *memcpy(void *d, const void *s, size_t n) {
  u8 *dp = d; const u8 *sp = s;
  while (n--) *dp++ = *sp++;
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
