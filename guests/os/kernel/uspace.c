/* User memory: demand-zero regions (VMAs), mmap/munmap with commit accounting,
 * and the #PF handler (demand-zero and copy-on-write). */
#include "proc.h"
#include "mm.h"
#include "../include/syscall.h"

#define USER_PTE (PTE_P | PTE_W | PTE_U)

struct vma *vma_find(struct mm *mm, u64 va) {
  for (int i = 0; i < mm->nvma; i++)
    if (va >= mm->vma[i].start && va < mm->vma[i].end) return &mm->vma[i];
  return 0;
}

/* Promise (len / 4 KiB) zero pages at start; they are backed on first touch.
 * Fails when free memory minus earlier promises cannot cover them. */
i64 mm_map_anon(struct mm *mm, u64 start, u64 len) {
  u64 pages = len / PAGE_SIZE;
  if (!pmm_can_commit(pages)) return -E_NOMEM;
  struct vma *prev = 0;
  for (int i = 0; i < mm->nvma; i++) if (mm->vma[i].end == start) prev = &mm->vma[i];
  if (prev) prev->end = start + len;               /* grow the region just below */
  else if (mm->nvma == MAX_VMAS) return -E_NOMEM;
  else mm->vma[mm->nvma++] = (struct vma){start, start + len};
  mm->reserved += pages;
  mem_reserved_frames += pages;
  return (i64)start;
}

i64 sys_mmap(u64 len) {
  struct mm *mm = &current_proc()->mm;
  if (len == 0 || len > USER_MMAP_END - USER_MMAP_BASE) return -E_INVAL;
  len = (len + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
  if (mm->mmap_next + len > USER_MMAP_END) return -E_NOMEM;
  i64 r = mm_map_anon(mm, mm->mmap_next, len);
  if (r >= 0) mm->mmap_next += len;
  return r;
}

/* Drop one page of a region: free its frame if it was touched, else its promise. */
static void unmap_page(struct mm *mm, u64 va) {
  u64 *pte = vm_pte(mm->pml4, va, 0);
  if (pte && (*pte & PTE_P)) {
    u64 pa = *pte & PTE_ADDR;
    *pte = 0;
    invlpg(va);  /* munmap runs in the owner's address space */
    frame_put(pa);
  } else {
    mm->reserved--;
    mem_reserved_frames--;
  }
}

i64 sys_munmap(u64 addr, u64 len) {
  struct mm *mm = &current_proc()->mm;
  if ((addr & (PAGE_SIZE - 1)) || len == 0) return -E_INVAL;
  len = (len + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
  struct vma *v = vma_find(mm, addr);
  if (!v || addr + len > v->end) return -E_INVAL;
  for (u64 va = addr; va < addr + len; va += PAGE_SIZE) unmap_page(mm, va);
  u64 old_end = v->end;
  if (addr == v->start && addr + len == old_end) {
    *v = mm->vma[--mm->nvma];
  } else if (addr == v->start) {
    v->start = addr + len;
  } else if (addr + len == old_end) {
    v->end = addr;
  } else {
    if (mm->nvma == MAX_VMAS) return -E_NOMEM;  /* pages are gone; the hole stays promised */
    v->end = addr;
    mm->vma[mm->nvma++] = (struct vma){addr + len, old_end};
  }
  return 0;
}

void mm_destroy(struct mm *mm) {
  vm_free_user(mm->pml4);
  mem_reserved_frames -= mm->reserved;
  mm->reserved = 0;
  mm->nvma = 0;
  pcid_free(mm->pcid);
  mm->pml4 = 0;
}

static void report_fault(struct proc *p, struct trap_frame *f, u64 cr2, const char *what) {
  kprintf("[%d %s] %s at %p (error %lx, rip %p)\n", p->pid, p->name, what, cr2, f->error, f->rip);
}

/* Returns 1 when the fault was resolved; kills the process or returns 0
 * (kernel bug) otherwise. Error code: bit 0 P, bit 1 W, bit 2 U, bit 4 I/D. */
int page_fault(struct trap_frame *f, u64 cr2) {
  struct proc *p = current_proc();
  if (!p || cr2 >= 0x800000000000ULL) return 0;
  struct mm *mm = &p->mm;
  u64 va = cr2 & ~(PAGE_SIZE - 1);
  if (!vma_find(mm, va)) {
    if (!(f->cs & 3)) return 0;
    report_fault(p, f, cr2, "segmentation fault");
    proc_kill_current("page fault outside any region");
  }
  u64 *pte = vm_pte(mm->pml4, va, 1);
  if (!pte) { report_fault(p, f, cr2, "out of memory (page table)"); proc_kill_current("OOM"); }
  if (!(*pte & PTE_P)) {                    /* demand-zero */
    u64 pa = pmm_alloc();
    if (!pa) { report_fault(p, f, cr2, "out of memory"); proc_kill_current("OOM"); }
    mm->reserved--;
    mem_reserved_frames--;
    *pte = pa | USER_PTE;
    p->faults_zero++;
    return 1;
  }
  if ((f->error & 2) && (*pte & PTE_COW)) { /* copy-on-write */
    u64 old = *pte & PTE_ADDR;
    if (frame_refs(old) == 1) {
      *pte = (*pte & ~PTE_COW) | PTE_W;     /* last sharer keeps the frame */
    } else {
      u64 pa = pmm_alloc_nozero();
      if (!pa) { report_fault(p, f, cr2, "out of memory (COW)"); proc_kill_current("OOM"); }
      memcpy(phys_to_virt(pa), phys_to_virt(old), PAGE_SIZE);
      *pte = pa | USER_PTE;
      frame_put(old);
    }
    invlpg(va);                             /* the read-only translation may be cached */
    p->faults_cow++;
    return 1;
  }
  if (!(f->cs & 3)) return 0;
  report_fault(p, f, cr2, "protection fault");
  proc_kill_current("page protection");
}
