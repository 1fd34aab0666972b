/* Test-only Limine-subset loader for QEMU: loads the kernel ELF passed as the
 * first multiboot module at its p_paddr, answers the requests memvisor-os
 * uses, and jumps to the entry in the Limine state (see BOOT.md). */
#include <stdint.h>
typedef uint64_t u64; typedef uint32_t u32; typedef uint16_t u16; typedef uint8_t u8;
#define HHDM 0xffff800000000000ULL
#define H(p) ((u64)(p) + HHDM)

struct mb_info { u32 flags, mem_lower, mem_upper, boot_device, cmdline, mods_count, mods_addr, syms[4], mmap_length, mmap_addr; };
struct mb_mod { u32 start, end, string, reserved; };
struct mb_mmap { u32 size; u64 addr, len; u32 type; } __attribute__((packed));
struct elf_hdr { u8 ident[16]; u16 type, machine; u32 version; u64 entry, phoff, shoff; u32 flags; u16 ehsize, phentsize, phnum, shentsize, shnum, shstrndx; };
struct elf_phdr { u32 type, flags; u64 offset, vaddr, paddr, filesz, memsz, align; };
struct entry { u64 base, length, type; };

extern char __shim_start[], __bss_end[];
static void outb(u16 p, u8 v) { __asm__ volatile("outb %0, %1" ::"a"(v), "Nd"(p)); }
static void puts_(const char *s) { while (*s) outb(0x3f8, (u8)*s++); }
static void die(const char *s) { puts_("mbshim: "); puts_(s); puts_("\n"); outb(0xf4, 2); for (;;) __asm__ volatile("hlt"); }
static void copy(void *d, const void *s, u64 n) { u8 *a = d; const u8 *b = s; while (n--) *a++ = *b++; }
static void zero(void *d, u64 n) { u8 *a = d; while (n--) *a++ = 0; }
static u64 up(u64 x) { return (x + 4095) & ~4095ULL; }

static struct entry entries[64]; static u64 entry_ptrs[64]; static int nent;
static u64 resp[8][8];
static char cmdline[1024];
static u8 kstack[65536] __attribute__((aligned(16)));
static u64 file_resp[16];

static void add(u64 b, u64 e, u64 type) {
  if (type == 0 || type == 5) { b = up(b); e &= ~4095ULL; }
  if (e <= b || nent == 64) return;
  entries[nent] = (struct entry){b, e - b, type};
  entry_ptrs[nent] = H(&entries[nent]);
  nent++;
}

/* Usable RAM [b, e) minus the carve-outs, which must be sorted. */
static u64 cut[4][3]; static int ncut;
static void add_ram(u64 b, u64 e) {
  for (int i = 0; i < ncut && b < e; i++) {
    u64 cb = cut[i][0], ce = cut[i][1];
    if (ce <= b || cb >= e) continue;
    if (cb > b) add(b, cb, 0);
    add(cb > b ? cb : b, ce < e ? ce : e, cut[i][2]);
    b = ce;
  }
  if (b < e) add(b, e, 0);
}

void shim_main(u32 mbi_pa) {
  struct mb_info *mbi = (void *)(u64)mbi_pa;
  if (!(mbi->flags & (1 << 3)) || mbi->mods_count < 1) die("no kernel module (-initrd kernel.elf)");
  if (!(mbi->flags & (1 << 6))) die("no memory map");
  struct mb_mod *mod = (void *)(u64)mbi->mods_addr;
  const u8 *file = (const u8 *)(u64)mod->start;
  const struct elf_hdr *eh = (const void *)file;
  if (eh->ident[0] != 0x7f || eh->ident[4] != 2 || eh->machine != 62) die("module is not an x86-64 ELF");
  /* command line: multiboot gives "<kernel path> <append>" */
  if (mbi->flags & (1 << 2)) {
    const char *c = (const char *)(u64)mbi->cmdline;
    while (*c && *c != ' ') c++;
    while (*c == ' ') c++;
    int n = 0; while (c[n] && n < 1023) { cmdline[n] = c[n]; n++; }
  }
  u64 lo = ~0ULL, hi = 0, file_hi = 0;
  for (int i = 0; i < eh->phnum; i++) {
    const struct elf_phdr *ph = (const void *)(file + eh->phoff + (u64)i * eh->phentsize);
    if (ph->type != 1) continue;
    copy((void *)ph->paddr, file + ph->offset, ph->filesz);
    zero((void *)(ph->paddr + ph->filesz), ph->memsz - ph->filesz);
    if (ph->paddr < lo) lo = ph->paddr;
    if (ph->paddr + ph->memsz > hi) hi = ph->paddr + ph->memsz;
    if (ph->paddr + ph->filesz > file_hi) file_hi = ph->paddr + ph->filesz;
  }
  cut[ncut][0] = 0; cut[ncut][1] = 0x1000; cut[ncut++][2] = 1;
  cut[ncut][0] = (u64)__shim_start; cut[ncut][1] = up(mod->end); cut[ncut++][2] = 5;  /* shim + module */
  cut[ncut][0] = lo; cut[ncut][1] = up(hi); cut[ncut++][2] = 6;
  for (u64 off = 0; off < mbi->mmap_length;) {
    struct mb_mmap *m = (void *)(u64)(mbi->mmap_addr + off);
    if (m->type == 1) add_ram(m->addr, m->addr + m->len); else add(m->addr, m->addr + m->len, 1);
    off += m->size + 4;
  }
  /* responses */
  static const char name[] = "mbshim", version[] = "test";
  u64 kaddr_virt = 0xffffffff80000000ULL;
  file_resp[0] = 0; file_resp[1] = H(file); file_resp[2] = mod->end - mod->start; file_resp[3] = H(cmdline); file_resp[4] = H(cmdline);
  for (u64 a = lo; a + 48 <= file_hi; a += 8) {
    u64 *w = (u64 *)a;
    if (w[0] == 0xf9562b2d5c95a6c8ULL && w[1] == 0x6a7b384944536bdcULL) { if (w[2] <= 3) w[2] = 0; continue; }
    if (w[0] != 0xc7b1dd30df4c8b88ULL || w[1] != 0x0a82e883a194f07bULL) continue;
    u64 *r = 0;
    if (w[2] == 0xf55038d8e2a1202fULL) { r = resp[0]; r[1] = H(name); r[2] = H(version); }
    else if (w[2] == 0x48dcf1cb8ad2b852ULL) { r = resp[1]; r[1] = HHDM; }
    else if (w[2] == 0x67cf3d9d378a806fULL) { r = resp[2]; r[1] = (u64)nent; r[2] = H(entry_ptrs); }
    else if (w[2] == 0x71ba76863cc55f63ULL) { r = resp[3]; r[1] = lo; r[2] = kaddr_virt; }
    else if (w[2] == 0x4b161536e598651eULL) { r = resp[4]; r[1] = H(cmdline); }
    else if (w[2] == 0xad97e90e83f1ed67ULL) { r = resp[5]; r[1] = H(file_resp); }
    else if (w[2] == 0x95c1a0edab0944cbULL) { r = resp[6]; r[1] = 0; }
    if (r) { r[0] = 0; w[5] = H(r); }
  }
  outb(0x21, 0xff); outb(0xa1, 0xff);  /* 8259 PICs masked, as Limine leaves them */
  /* x2APIC on, as the memvisor board hands over */
  u32 alo, ahi;
  __asm__ volatile("rdmsr" : "=a"(alo), "=d"(ahi) : "c"(0x1b));
  alo |= 0xc00;
  __asm__ volatile("wrmsr" ::"a"(alo), "d"(ahi), "c"(0x1b));
  u64 sp = H(kstack) + sizeof(kstack);
  __asm__ volatile("mov %0, %%rsp; push $0; xor %%ebp, %%ebp; jmp *%1" ::"r"(sp), "r"(eh->entry) : "memory");
  for (;;) {}
}
