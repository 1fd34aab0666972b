/* Physical frames and page tables. */
#ifndef MM_H
#define MM_H
#include "kernel.h"

/* Page-table entry (4-level, 4 KiB leaf):
 *   63 NX | 62..52 avail | 51..12 frame | 11..9 avail (bit 9 = COW here) | 8 G |
 *   7 PS (PDE/PDPTE: 2 MiB / 1 GiB leaf) | 6 D | 5 A | 4 PCD | 3 PWT | 2 U/S | 1 R/W | 0 P */
#define PTE_P   (1ULL << 0)
#define PTE_W   (1ULL << 1)
#define PTE_U   (1ULL << 2)
#define PTE_PS  (1ULL << 7)
#define PTE_G   (1ULL << 8)
#define PTE_COW (1ULL << 9)
#define PTE_NX  (1ULL << 63)
#define PTE_ADDR 0x000ffffffffff000ULL

/* pmm.c: bitmap frame allocator with a 16-bit reference count per frame. */
struct mem_range { u64 base, length, type; };
void pmm_init(const struct mem_range *map, int count);
void pmm_add_reclaimable(const struct mem_range *map, int count);
void pmm_randomize(u64 seed);  /* boot seed: randomized allocation order */
u64 pmm_alloc(void);          /* zeroed 4 KiB frame, 0 when out of memory */
u64 pmm_alloc_nozero(void);
u64 pmm_alloc_huge(void);     /* naturally aligned 2 MiB, not zeroed, 0 on failure */
void pmm_free(u64 pa);        /* drops a frame whatever its count (refcount 1 expected) */
void pmm_free_huge(u64 pa);
void frame_get(u64 pa);       /* one more mapping shares the frame       */
void frame_put(u64 pa);       /* one mapping less; frees at zero        */
u16 frame_refs(u64 pa);
u64 pmm_free_frames(void);
u64 pmm_total_frames(void);
u64 pmm_max_pfn(void);
extern u64 mem_reserved_frames;   /* demand-zero pages promised to processes */
int pmm_can_commit(u64 frames);   /* free - promised leaves room for frames */
int pmm_online(u64 end_pfn);      /* hot-add: frames [max pfn, end) online; 0, or -1 on failure */

/* vm.c */
#define DIRECT_MAP_MAX (1ULL << 39)  /* one PML4 slot: RAM the direct map can hold (512 GiB) */
extern u64 kernel_pml4;
extern int pcid_enabled;
void vm_init(u64 top_of_memory);
u64 *vm_pte(u64 pml4, u64 va, int create);  /* leaf PTE for va, or 0 */
u64 vm_new_space(void);                      /* a PML4 sharing the kernel half */
void vm_map_device_2m(u64 pa);               /* device registers into the direct map */
int vm_extend_direct(u64 from, u64 to);      /* hot-added RAM into the direct map; -1 on OOM */
void vm_free_user(u64 pml4);                 /* frees user pages and tables */
int vm_fork_cow(u64 parent, u64 child);      /* share user pages copy-on-write; -1 on OOM */
u16 pcid_alloc(int *fresh);
void pcid_free(u16 pcid);
void vm_switch(u64 pml4, u16 pcid, int flush);
#endif
