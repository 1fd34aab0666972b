/* Physical frame allocator fed from the Limine memory map.
 *
 * One bit per 4 KiB frame (1 = in use) and a 16-bit reference count per frame
 * for copy-on-write sharing. Both arrays are carved out of the first usable
 * region big enough to hold them. Bootloader-reclaimable memory is added once
 * the kernel no longer needs Limine's responses, page tables and stack.
 *
 * Memory hot-add (pmm_online) grows the arrays rather than sizing them for a
 * maximum at boot: a larger copy goes to the start of the new memory, as Linux's
 * memmap_on_memory places a hot-added block's mem_map in the block itself (or,
 * when the block is too small for it, to a free run of the old memory), and the
 * old copy's frames are freed. Boot costs nothing for memory that may never come.
 *
 * With a boot seed (`seed=N`) the allocator randomizes its order, like Linux's
 * page allocator shuffling (page_alloc.shuffle): each allocation starts its
 * search at a pseudo-random bitmap word, so two machines booted alike with
 * different seeds place the same data in different frames (and their page
 * tables, which hold frame numbers, differ). */
#include "mm.h"

static u64 *bitmap;
static u16 *refcnt;
static u64 meta_pa, meta_frames;  /* where the two arrays live, to free them when they move */
static u64 max_pfn, free_frames, total_frames, search_hint;
static u64 shuffle_state;  /* 0: next-fit; else the splitmix64 state of the randomized order */
u64 mem_reserved_frames;

#define KERNEL_SLACK_FRAMES 64  /* page tables and other kernel needs */

static int bit_used(u64 pfn) { return (bitmap[pfn / 64] >> (pfn % 64)) & 1; }
static void bit_set(u64 pfn) { bitmap[pfn / 64] |= 1ULL << (pfn % 64); }
static void bit_clear(u64 pfn) { bitmap[pfn / 64] &= ~(1ULL << (pfn % 64)); }

static int is_ram(u64 type) {
  return type == 0 /* usable */ || type == 5 /* bootloader reclaimable */;
}

static void release_range(u64 base, u64 length) {
  u64 first = (base + PAGE_SIZE - 1) / PAGE_SIZE, end = (base + length) / PAGE_SIZE;
  if (first == 0) first = 1;  /* frame 0 is never handed out */
  for (u64 pfn = first; pfn < end && pfn < max_pfn; pfn++) {
    if (bit_used(pfn)) { bit_clear(pfn); free_frames++; total_frames++; }
  }
}

static u64 bitmap_bytes_for(u64 frames) { return (frames + 63) / 64 * 8; }

/* Bitmap then refcounts, in whole frames. */
static u64 meta_frames_for(u64 frames) {
  return (bitmap_bytes_for(frames) + frames * 2 + PAGE_SIZE - 1) / PAGE_SIZE;
}

/* Frames the allocator does not hand out and does not count in the total. */
static void claim_run(u64 first, u64 n) {
  for (u64 pfn = first; pfn < first + n; pfn++) { bit_set(pfn); free_frames--; total_frames--; }
}

void pmm_init(const struct mem_range *map, int count) {
  for (int i = 0; i < count; i++)
    if (is_ram(map[i].type) && (map[i].base + map[i].length) / PAGE_SIZE > max_pfn)
      max_pfn = (map[i].base + map[i].length) / PAGE_SIZE;
  u64 bitmap_bytes = bitmap_bytes_for(max_pfn);
  u64 meta = meta_frames_for(max_pfn) * PAGE_SIZE;
  for (int i = 0; i < count && !meta_pa; i++)
    if (map[i].type == 0 && map[i].length >= meta + PAGE_SIZE) meta_pa = (map[i].base + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
  if (!meta_pa) panic("pmm: no room for %lu bytes of frame metadata", meta);
  meta_frames = meta / PAGE_SIZE;
  bitmap = phys_to_virt(meta_pa);
  refcnt = (u16 *)((u8 *)bitmap + bitmap_bytes);
  memset(bitmap, 0xff, bitmap_bytes);
  memset(refcnt, 0, max_pfn * 2);
  for (int i = 0; i < count; i++)
    if (map[i].type == 0) release_range(map[i].base, map[i].length);
  claim_run(meta_pa / PAGE_SIZE, meta_frames);
  kprintf("pmm: %lu frames free of %lu (max pfn %lu), metadata %lu KiB at %p\n",
          free_frames, total_frames, max_pfn, meta / 1024, meta_pa);
}

void pmm_add_reclaimable(const struct mem_range *map, int count) {
  u64 before = free_frames;
  for (int i = 0; i < count; i++)
    if (map[i].type == 5) release_range(map[i].base, map[i].length);
  kprintf("pmm: reclaimed %lu bootloader frames, %lu free\n", free_frames - before, free_frames);
}

void pmm_randomize(u64 seed) {
  shuffle_state = seed ? seed : 1;
  kprintf("pmm: allocation order randomized (seed %lu)\n", seed);
}

static u64 next_random(void) {
  u64 x = (shuffle_state += 0x9e3779b97f4a7c15ULL);
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

u64 pmm_alloc_nozero(void) {
  if (shuffle_state) search_hint = next_random() % ((max_pfn + 63) / 64);
  for (u64 n = 0, w = search_hint; n < (max_pfn + 63) / 64; n++, w++) {
    if (w >= (max_pfn + 63) / 64) w = 0;
    if (bitmap[w] == ~0ULL) continue;
    u64 pfn = w * 64 + (u64)__builtin_ctzll(~bitmap[w]);
    if (pfn >= max_pfn) continue;
    bit_set(pfn); free_frames--; refcnt[pfn] = 1; search_hint = w;
    return pfn * PAGE_SIZE;
  }
  return 0;
}

u64 pmm_alloc(void) {
  u64 pa = pmm_alloc_nozero();
  if (pa) memset(phys_to_virt(pa), 0, PAGE_SIZE);
  return pa;
}

/* 512 free frames starting on a 2 MiB boundary = 8 zero bitmap words. */
u64 pmm_alloc_huge(void) {
  for (u64 w = 0; w + 8 <= max_pfn / 64; w += 8) {
    int ok = 1;
    for (int i = 0; i < 8 && ok; i++) ok = bitmap[w + i] == 0;
    if (!ok) continue;
    for (int i = 0; i < 8; i++) bitmap[w + i] = ~0ULL;
    for (u64 p = w * 64; p < w * 64 + 512; p++) refcnt[p] = 1;
    free_frames -= 512;
    return w * 64 * PAGE_SIZE;
  }
  return 0;
}

void pmm_free(u64 pa) {
  u64 pfn = pa / PAGE_SIZE;
  if (pfn == 0 || pfn >= max_pfn || !bit_used(pfn)) panic("pmm_free: bad frame %p", pa);
  refcnt[pfn] = 0; bit_clear(pfn); free_frames++;
}

void pmm_free_huge(u64 pa) { for (u64 i = 0; i < 512; i++) pmm_free(pa + i * PAGE_SIZE); }

void frame_get(u64 pa) { refcnt[pa / PAGE_SIZE]++; }
u16 frame_refs(u64 pa) { return refcnt[pa / PAGE_SIZE]; }
void frame_put(u64 pa) {
  u64 pfn = pa / PAGE_SIZE;
  if (refcnt[pfn] == 0) panic("frame_put: frame %p has no references", pa);
  if (--refcnt[pfn] == 0) { refcnt[pfn] = 1; pmm_free(pa); }
}

u64 pmm_free_frames(void) { return free_frames; }
u64 pmm_total_frames(void) { return total_frames; }
u64 pmm_max_pfn(void) { return max_pfn; }

/* ---- memory hot-add ---- */

/* First frame of a run of n free frames below max_pfn, or 0 (frame 0 is never free). */
static u64 free_run(u64 n) {
  for (u64 pfn = 1, len = 0; pfn < max_pfn; pfn++) {
    len = bit_used(pfn) ? 0 : len + 1;
    if (len == n) return pfn + 1 - n;
  }
  return 0;
}

/* Copies the arrays into a larger pair at frame `at` for frames [0, end); frames
 * past the old max stay "in use" until released. Frees the old pair's frames. */
static void move_meta(u64 at, u64 end) {
  u64 n = meta_frames_for(end), old_pa = meta_pa, old_n = meta_frames;
  u64 *nb = phys_to_virt(at * PAGE_SIZE);
  u16 *nr = (u16 *)((u8 *)nb + bitmap_bytes_for(end));
  memset(nb, 0xff, bitmap_bytes_for(end));
  memcpy(nb, bitmap, bitmap_bytes_for(max_pfn));
  memset(nr, 0, end * 2);
  memcpy(nr, refcnt, max_pfn * 2);
  bitmap = nb; refcnt = nr; meta_pa = at * PAGE_SIZE; meta_frames = n;
  if (at < max_pfn) claim_run(at, n);  /* else: new frames, left out of the release */
  for (u64 pfn = old_pa / PAGE_SIZE; pfn < old_pa / PAGE_SIZE + old_n; pfn++) {
    bit_clear(pfn); free_frames++; total_frames++;
  }
}

/* Frames [max_pfn, end) come online (the host's hotplug device said memory grew
 * to `end` frames). The direct map is extended first, so the new frames (and the
 * arrays that may move there) are reachable. Returns 0 on success (free frames
 * grew by the new ones less the arrays' growth), or -1 with nothing onlined (no
 * page table or no room for the arrays; direct-map entries already made stay,
 * unused). */
int pmm_online(u64 end) {
  if (end <= max_pfn) return 0;
  if (vm_extend_direct(max_pfn * PAGE_SIZE, end * PAGE_SIZE) < 0) return -1;
  u64 n = meta_frames_for(end), at = end - max_pfn >= n ? max_pfn : free_run(n);
  if (!at) return -1;
  u64 old_max = max_pfn;
  move_meta(at, end);
  max_pfn = end;
  for (u64 pfn = old_max; pfn < end; pfn++)
    if (pfn < at || pfn >= at + n) { bit_clear(pfn); free_frames++; total_frames++; }
  return 0;
}

int pmm_can_commit(u64 frames) {
  return free_frames >= mem_reserved_frames + KERNEL_SLACK_FRAMES + frames;
}
