/* The kernel's own page tables and user address spaces.
 *
 * Kernel half (shared by every address space, PML4 slots 256..511, global):
 *   0xffff800000000000 + pa : direct map of all RAM, 2 MiB pages, RW, NX (plus the
 *                             xAPIC page, uncached, on CPUs without x2APIC)
 *   0xffffffff80000000 + off: the kernel ELF, 4 KiB pages, text RX, rodata R, data RW
 * User half: 4 KiB pages only, PTE_U, copy-on-write marked by PTE_COW. */
#include "mm.h"

u64 kernel_pml4;
int pcid_enabled;
static u64 loaded_pml4;  /* what CR3 points at */

extern char __kernel_start[], __text_end[], __rodata_end[], __kernel_end[];

static u64 *table(u64 pa) { return phys_to_virt(pa & PTE_ADDR); }

static u64 alloc_table(void) {
  u64 pa = pmm_alloc();
  if (!pa) panic("vm: out of memory for a page table");
  return pa;
}

/* Entry for va at the given level (3 = PML4 .. 0 = PT), creating tables on the way. */
static u64 *walk(u64 pml4, u64 va, int level, int create, u64 table_flags) {
  u64 *t = table(pml4);
  for (int l = 3; l > level; l--) {
    u64 *e = &t[(va >> (12 + 9 * l)) & 511];
    if (!(*e & PTE_P)) {
      if (!create) return 0;
      u64 pa = pmm_alloc();
      if (!pa) return 0;
      *e = pa | table_flags;
    }
    if (*e & PTE_PS) return 0;
    t = table(*e);
  }
  return &t[(va >> (12 + 9 * level)) & 511];
}

u64 *vm_pte(u64 pml4, u64 va, int create) {
  return walk(pml4, va, 0, create, PTE_P | PTE_W | PTE_U);
}

static void map_kernel_image(u64 pml4) {
  u64 start = (u64)__kernel_start, end = (u64)__kernel_end;
  for (u64 va = start; va < end; va += PAGE_SIZE) {
    u64 flags = PTE_P | PTE_G;
    if (va >= (u64)__rodata_end) flags |= PTE_W | PTE_NX;
    else if (va >= (u64)__text_end) flags |= PTE_NX;
    u64 *pte = walk(pml4, va, 0, 1, PTE_P | PTE_W);
    if (!pte) panic("vm: cannot map the kernel");
    *pte = (va - KERNEL_VBASE + kernel_phys_base) | flags;
  }
}

/* 2 MiB pages for [from, to), both 2 MiB-aligned; entries already present stay.
 * -1 when a page table cannot be had. */
static int map_direct(u64 pml4, u64 from, u64 to) {
  for (u64 pa = from; pa < to; pa += HUGE_SIZE) {
    u64 *pde = walk(pml4, HHDM_BASE + pa, 1, 1, PTE_P | PTE_W);
    if (!pde) return -1;
    if (!(*pde & PTE_P)) *pde = pa | PTE_P | PTE_W | PTE_PS | PTE_G | PTE_NX;
  }
  return 0;
}

static int cpu_has_pcid(void) {
  u32 a, b, c, d;
  cpuid(1, 0, &a, &b, &c, &d);
  return (c >> 17) & 1;
}

void vm_init(u64 top_of_memory) {
  kernel_pml4 = alloc_table();
  /* RAM only: under memvisor's native mode guest-physical is host-physical, so
   * nothing beyond the VM's memory is mapped (Limine maps 0..4 GiB at least). */
  u64 top = (top_of_memory + HUGE_SIZE - 1) & ~(HUGE_SIZE - 1);
  if (map_direct(kernel_pml4, 0, top) < 0) panic("vm: cannot build the direct map");
  map_kernel_image(kernel_pml4);
  /* The kernel half never changes after this, so user PML4s copy slots 256..511 once. */
  if (cpu_has_pcid()) {
    write_cr3(kernel_pml4);          /* CR3[11:0] must be 0 when setting PCIDE */
    write_cr4(read_cr4() | (1ULL << 17));
    pcid_enabled = 1;
  }
  write_cr3(kernel_pml4);            /* PCID 0, flushing: our tables from here on */
  loaded_pml4 = kernel_pml4;
  /* Global entries survive CR3 loads: toggle CR4.PGE so none of the loader's
   * translations (same addresses, other permissions) outlive its tables. */
  u64 cr4 = read_cr4();
  write_cr4(cr4 & ~(1ULL << 7));
  write_cr4(cr4 | (1ULL << 7));
  kprintf("vm: own page tables at %p, direct map %lu MiB in 2 MiB pages, PCIDs %s\n",
          kernel_pml4, top >> 20, pcid_enabled ? "on" : "off (CPUID.1:ECX.PCID=0)");
}

/* One more 2 MiB of the direct map for device registers: uncached (PCD|PWT). Only
 * before the first process, as user PML4s copy the kernel half when created. */
void vm_map_device_2m(u64 pa) {
  pa &= ~(HUGE_SIZE - 1);
  u64 *pde = walk(kernel_pml4, HHDM_BASE + pa, 1, 1, PTE_P | PTE_W);
  if (!pde) panic("vm: cannot map device memory at %p", pa);
  if (!(*pde & PTE_P)) *pde = pa | PTE_P | PTE_W | PTE_PS | PTE_G | PTE_NX | (1ULL << 3) | (1ULL << 4);
}

/* Memory hot-add: RAM [from, to) joins the direct map. The new entries go into
 * the PDPT under PML4 slot 256, which every address space shares (user PML4s
 * copied the slot, not the table), so all see them; not-present entries are
 * never cached, so a 0 -> 1 P flag needs no invalidation (SDM 4.10.4.3). Tables come from
 * memory already online, as Linux's arch_add_memory. Partial 2 MiB pages at
 * the old top are already mapped (the boot map rounds up). Past 512 GiB the
 * map would need a second PML4 slot, which user PML4s copied before it existed:
 * refused. */
int vm_extend_direct(u64 from, u64 to) {
  if (to > DIRECT_MAP_MAX) return -1;
  from &= ~(HUGE_SIZE - 1);
  to = (to + HUGE_SIZE - 1) & ~(HUGE_SIZE - 1);
  return map_direct(kernel_pml4, from, to);
}

u64 vm_new_space(void) {
  u64 pa = pmm_alloc();
  if (!pa) return 0;
  for (int i = 256; i < 512; i++) table(pa)[i] = table(kernel_pml4)[i];
  return pa;
}

static void free_level(u64 tpa, int level) {
  u64 *t = table(tpa);
  for (int i = 0; i < 512; i++) {
    if (!(t[i] & PTE_P)) continue;
    if (level == 0) frame_put(t[i] & PTE_ADDR);
    else free_level(t[i] & PTE_ADDR, level - 1);
  }
  pmm_free(tpa & PTE_ADDR);
}

void vm_free_user(u64 pml4) {
  u64 *t = table(pml4);
  for (int i = 0; i < 256; i++)
    if (t[i] & PTE_P) free_level(t[i] & PTE_ADDR, 2);
  pmm_free(pml4);
}

/* Copy the user half into child, making every writable page read-only and
 * COW in both. The parent is the current address space: INVLPG each page whose
 * write permission it loses. */
int vm_fork_cow(u64 parent, u64 child) {
  u64 *p4 = table(parent);
  for (u64 i4 = 0; i4 < 256; i4++) {
    if (!(p4[i4] & PTE_P)) continue;
    u64 *p3 = table(p4[i4]);
    for (u64 i3 = 0; i3 < 512; i3++) {
      if (!(p3[i3] & PTE_P)) continue;
      u64 *p2 = table(p3[i3]);
      for (u64 i2 = 0; i2 < 512; i2++) {
        if (!(p2[i2] & PTE_P)) continue;
        u64 *p1 = table(p2[i2]);
        for (u64 i1 = 0; i1 < 512; i1++) {
          u64 e = p1[i1];
          if (!(e & PTE_P)) continue;
          u64 va = (i4 << 39) | (i3 << 30) | (i2 << 21) | (i1 << 12);
          if (e & PTE_W) {
            e = (e & ~PTE_W) | PTE_COW;
            p1[i1] = e;
            invlpg(va);
          }
          u64 *c = vm_pte(child, va, 1);
          if (!c) return -1;
          *c = e & ~(u64)(1 << 5 | 1 << 6);  /* child starts with A and D clear */
          frame_get(e & PTE_ADDR);
        }
      }
    }
  }
  return 0;
}

/* PCIDs 1..4095 for user address spaces, handed out round-robin. A PCID that
 * was used before may still tag TLB entries of a dead address space, so the
 * first CR3 load of a fresh PCID is a flushing one (bit 63 clear). */
static u64 pcid_used[4096 / 64];
static u16 pcid_next = 1;

u16 pcid_alloc(int *fresh) {
  *fresh = 1;
  if (!pcid_enabled) return 0;
  for (int n = 0; n < 4095; n++) {
    u16 p = pcid_next;
    pcid_next = pcid_next == 4095 ? 1 : pcid_next + 1;
    if (!((pcid_used[p / 64] >> (p % 64)) & 1)) { pcid_used[p / 64] |= 1ULL << (p % 64); return p; }
  }
  panic("vm: out of PCIDs");
}

void pcid_free(u16 pcid) { if (pcid) pcid_used[pcid / 64] &= ~(1ULL << (pcid % 64)); }

/* Load an address space; a no-op when it is already loaded and needs no flush
 * (the scheduler often resumes the process it just ran). */
void vm_switch(u64 pml4, u16 pcid, int flush) {
  if (pml4 == loaded_pml4 && !flush) return;
  loaded_pml4 = pml4;
  u64 cr3 = pml4 | pcid;
  if (pcid_enabled && !flush) cr3 |= 1ULL << 63;  /* keep this PCID's TLB entries */
  write_cr3(cr3);
}
