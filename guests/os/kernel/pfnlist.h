/* A stack of page frame numbers kept in chunk frames of its own, so pages in a
 * balloon list are never written to (a ballooned page must not be touched).
 * Chunk (one 4 KiB frame): u64 next chunk | u32 count | u32 pfn[1021]. */
#ifndef PFNLIST_H
#define PFNLIST_H
#include "mm.h"

#define PFN_CHUNK_CAP 1021
struct pfn_chunk { u64 next_pa; u32 count; u32 pfn[PFN_CHUNK_CAP]; };
struct pfn_list { u64 head_pa; u64 count; };

static inline int pfn_push(struct pfn_list *l, u64 pfn) {
  struct pfn_chunk *c = l->head_pa ? phys_to_virt(l->head_pa) : 0;
  if (!c || c->count == PFN_CHUNK_CAP) {
    u64 pa = pmm_alloc_nozero();
    if (!pa) return -1;
    struct pfn_chunk *n = phys_to_virt(pa);
    n->next_pa = l->head_pa; n->count = 0;
    l->head_pa = pa; c = n;
  }
  c->pfn[c->count++] = (u32)pfn;
  l->count++;
  return 0;
}

/* Room for n more pushes (n <= PFN_CHUNK_CAP) without allocating; -1 if out of memory. */
static inline int pfn_reserve(struct pfn_list *l, u64 n) {
  struct pfn_chunk *c = l->head_pa ? phys_to_virt(l->head_pa) : 0;
  if (c && PFN_CHUNK_CAP - c->count >= n) return 0;
  u64 pa = pmm_alloc_nozero();
  if (!pa) return -1;
  struct pfn_chunk *fresh = phys_to_virt(pa);
  fresh->next_pa = l->head_pa; fresh->count = 0;   /* a partly filled chunk may follow */
  l->head_pa = pa;
  return 0;
}

static inline i64 pfn_pop(struct pfn_list *l) {
  while (l->head_pa) {
    struct pfn_chunk *c = phys_to_virt(l->head_pa);
    if (c->count == 0) { u64 pa = l->head_pa; l->head_pa = c->next_pa; pmm_free(pa); continue; }  /* reserved, unused */
    u64 pfn = c->pfn[--c->count];
    if (c->count == 0) { u64 pa = l->head_pa; l->head_pa = c->next_pa; pmm_free(pa); }
    l->count--;
    return (i64)pfn;
  }
  return -1;
}

/* The most recently pushed PFN, or -1. */
static inline i64 pfn_peek(const struct pfn_list *l) {
  for (u64 pa = l->head_pa; pa;) {
    const struct pfn_chunk *c = phys_to_virt(pa);
    if (c->count) return c->pfn[c->count - 1];
    pa = c->next_pa;
  }
  return -1;
}
#endif
