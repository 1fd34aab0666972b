#include <stdarg.h>
#include "ulib.h"

void *memset(void *d, int c, size_t n) { u8 *p = d; while (n--) *p++ = (u8)c; return d; }
void *memcpy(void *d, const void *s, size_t n) { u8 *a = d; const u8 *b = s; while (n--) *a++ = *b++; return d; }

u64 mix64(u64 x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

u64 arg_u64(const char **args, u64 dflt) {
  const char *p = *args;
  if (!p || !*p) return dflt;
  if (*p == ':') p++;
  if (*p < '0' || *p > '9') { *args = p; return dflt; }
  u64 v = 0;
  for (; *p >= '0' && *p <= '9'; p++) v = v * 10 + (u64)(*p - '0');
  *args = p;
  return v;
}

struct buf { char b[256]; int n; };
static void put(struct buf *o, char c) { if (o->n < (int)sizeof(o->b)) o->b[o->n++] = c; }
static void num(struct buf *o, u64 v, int base, int width, char pad, int neg) {
  char t[24]; int i = 0;
  do { t[i++] = "0123456789abcdef"[v % (u64)base]; v /= (u64)base; } while (v);
  if (neg) t[i++] = '-';
  for (; width > i; width--) put(o, pad);
  while (i) put(o, t[--i]);
}

void uprintf(const char *fmt, ...) {
  struct buf o; o.n = 0;
  va_list ap; va_start(ap, fmt);
  for (; *fmt; fmt++) {
    if (*fmt != '%') { put(&o, *fmt); continue; }
    fmt++;
    char pad = ' '; int width = 0, lng = 0;
    if (*fmt == '0') { pad = '0'; fmt++; }
    while (*fmt >= '0' && *fmt <= '9') width = width * 10 + (*fmt++ - '0');
    while (*fmt == 'l') { lng = 1; fmt++; }
    switch (*fmt) {
    case 's': for (const char *s = va_arg(ap, const char *); *s; s++) put(&o, *s); break;
    case 'c': put(&o, (char)va_arg(ap, int)); break;
    case 'd': { i64 v = lng ? va_arg(ap, i64) : va_arg(ap, int); num(&o, v < 0 ? (u64)-v : (u64)v, 10, width, pad, v < 0); break; }
    case 'u': num(&o, lng ? va_arg(ap, u64) : va_arg(ap, unsigned), 10, width, pad, 0); break;
    case 'x': num(&o, lng ? va_arg(ap, u64) : va_arg(ap, unsigned), 16, width, pad, 0); break;
    default: put(&o, *fmt); break;
    }
  }
  va_end(ap);
  sys_write(o.b, (u64)o.n);  /* one write per line keeps lines whole across processes */
}
