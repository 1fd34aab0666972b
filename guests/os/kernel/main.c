/* memvisor-os: boot (Limine protocol), the command line, the console shell and
 * power-off. */
#include "../include/limine.h"
#include "proc.h"
#include "mm.h"
#include "balloon.h"
#include "hotplug.h"

/* ---- Limine requests (between the start and end markers) ---- */
__attribute__((used, section(".limine_requests_start"))) static LIMINE_REQUESTS_START_MARKER;
__attribute__((used, section(".limine_requests"))) static LIMINE_BASE_REVISION(3);
__attribute__((used, section(".limine_requests"))) static volatile struct limine_bootloader_info_request info_req = {LIMINE_BOOTLOADER_INFO_REQUEST, 0, 0};
__attribute__((used, section(".limine_requests"))) static volatile struct limine_hhdm_request hhdm_req = {LIMINE_HHDM_REQUEST, 0, 0};
__attribute__((used, section(".limine_requests"))) static volatile struct limine_memmap_request memmap_req = {LIMINE_MEMMAP_REQUEST, 0, 0};
__attribute__((used, section(".limine_requests"))) static volatile struct limine_executable_address_request addr_req = {LIMINE_EXECUTABLE_ADDRESS_REQUEST, 0, 0};
__attribute__((used, section(".limine_requests"))) static volatile struct limine_executable_cmdline_request cmdline_req = {LIMINE_EXECUTABLE_CMDLINE_REQUEST, 0, 0};
__attribute__((used, section(".limine_requests"))) static volatile struct limine_executable_file_request file_req = {LIMINE_EXECUTABLE_FILE_REQUEST, 0, 0};
__attribute__((used, section(".limine_requests"))) static volatile struct limine_paging_mode_request paging_req = {LIMINE_PAGING_MODE_REQUEST, 0, 0, LIMINE_PAGING_MODE_X86_64_4LVL};
__attribute__((used, section(".limine_requests_end"))) static LIMINE_REQUESTS_END_MARKER;

#define LINK_PHYS_BASE 0x200000ULL  /* AT() in linker.ld */
#define MAX_RANGES 128

char boot_cmdline[256];
u64 kernel_phys_base = LINK_PHYS_BASE;
static struct mem_range ranges[MAX_RANGES];
static int nranges, shell_mode, shell_waiting;
static u64 linger_ticks, idle_start;
static int idle_armed;
static char line[128];
static int line_len;

void syscall_init(void);
extern u64 syscall_counts[];

static void copy_str(char *dst, const char *src, size_t cap) {
  size_t n = 0;
  if (src) for (; src[n] && n + 1 < cap; n++) dst[n] = src[n];
  dst[n] = 0;
}

static void read_boot_info(void) {
  if (limine_base_revision[2] != 0) kprintf("boot: loader did not accept base revision 3; continuing\n");
  if (info_req.response) kprintf("boot: loader %s %s\n", info_req.response->name, info_req.response->version);
  if (!hhdm_req.response || hhdm_req.response->offset != HHDM_BASE) panic("boot: need the HHDM at %p", HHDM_BASE);
  if (paging_req.response && paging_req.response->mode != LIMINE_PAGING_MODE_X86_64_4LVL) panic("boot: need 4-level paging");
  if (addr_req.response) kernel_phys_base = addr_req.response->physical_base;
  if (cmdline_req.response) copy_str(boot_cmdline, cmdline_req.response->cmdline, sizeof(boot_cmdline));
  else if (file_req.response && file_req.response->executable_file)
    copy_str(boot_cmdline, file_req.response->executable_file->cmdline, sizeof(boot_cmdline));
  struct limine_memmap_response *mm = memmap_req.response;
  if (!mm) panic("boot: no memory map");
  for (u64 i = 0; i < mm->entry_count && nranges < MAX_RANGES; i++) {
    struct limine_memmap_entry *e = mm->entries[i];
    ranges[nranges++] = (struct mem_range){e->base, e->length, e->type};
    kprintf("  mem %p-%p type %lu\n", e->base, e->base + e->length, e->type);
  }
}

static u64 top_of_ram(void) {
  u64 top = 0;
  for (int i = 0; i < nranges; i++) {
    u64 t = ranges[i].type;
    if ((t == 0 || t == 5 || t == 6) && ranges[i].base + ranges[i].length > top) top = ranges[i].base + ranges[i].length;
  }
  return top;
}

/* ---- program specs: name[:args], separated by ',' or spaces ---- */

static void spawn_spec(const char *s, size_t len) {
  char name[32], args[128];
  size_t i = 0;
  for (; i < len && s[i] != ':' && i < sizeof(name) - 1; i++) name[i] = s[i];
  name[i] = 0;
  size_t a = 0;
  if (i < len && s[i] == ':') for (i++; i < len && a < sizeof(args) - 1; i++) args[a++] = s[i];
  args[a] = 0;
  if (!name[0]) return;
  int pid = proc_spawn(name, args, 0);
  if (pid > 0) kprintf("[%d %s] started (%s)\n", pid, name, args);
}

static void spawn_list(const char *s) {
  while (*s) {
    const char *e = s;
    while (*e && *e != ',' && *e != ' ') e++;
    spawn_spec(s, (size_t)(e - s));
    s = *e ? e + 1 : e;
  }
}

static const char *opt(const char *name) {
  size_t n = strlen(name);
  for (const char *p = boot_cmdline; *p;) {
    while (*p == ' ') p++;
    if (!strncmp(p, name, n) && (p[n] == '=' || p[n] == ' ' || p[n] == 0)) return p + n;
    while (*p && *p != ' ') p++;
  }
  return 0;
}

/* ---- memory and shutdown ---- */

static void print_mem(void) {
  kprintf("mem: %lu frames total, %lu free, %lu promised to processes, balloon %lu frames\n",
          pmm_total_frames(), pmm_free_frames(), mem_reserved_frames, balloon_size_frames());
}

static void shutdown(const char *why) {
  kprintf("memvisor-os: %s, powering off\n", why);
  balloon_unload();
  kprintf("--- balloon statistics ---\n");
  balloon_print_stats();
  kprintf("--- syscalls: exit %lu write %lu mmap %lu munmap %lu fork %lu yield %lu getpid %lu sleep %lu wait %lu\n",
          syscall_counts[0], syscall_counts[1], syscall_counts[2], syscall_counts[3], syscall_counts[4],
          syscall_counts[5], syscall_counts[6], syscall_counts[7], syscall_counts[8]);
  print_mem();
  kprintf("memvisor-os: power off\n");
  power_off(0);
}

/* ---- console shell ---- */

static void prompt(void) { kprintf("memvisor-os> "); }

static void run_command(char *cmdl) {
  while (*cmdl == ' ') cmdl++;
  if (!*cmdl) return;
  if (!strncmp(cmdl, "run ", 4)) spawn_list(cmdl + 4);
  else if (!strncmp(cmdl, "ps", 3)) procs_list();
  else if (!strncmp(cmdl, "mem", 4)) print_mem();
  else if (!strncmp(cmdl, "memory", 7)) hotplug_print();
  else if (!strncmp(cmdl, "balloon", 8)) balloon_print_stats();
  else if (!strncmp(cmdl, "balloon touch", 14)) balloon_touch();
  else if (!strncmp(cmdl, "programs", 9)) programs_list();
  else if (!strncmp(cmdl, "poweroff", 9)) shutdown("poweroff command");
  else if (!strncmp(cmdl, "wait", 5)) shell_waiting = 1;
  else if (!strncmp(cmdl, "help", 5))
    kprintf("commands: run prog[:args][,prog[:args]...] | wait | ps | mem | memory | balloon | balloon touch | programs | poweroff\n");
  else kprintf("unknown command: %s (try help)\n", cmdl);
}

/* At most one command per call, none while `wait` waits for the processes. */
static void poll_console(void) {
  int c;
  if (shell_waiting && procs_alive()) return;
  shell_waiting = 0;
  while ((c = serial_getc()) >= 0) {
    if (c == '\r' || c == '\n') {
      serial_putc('\n');
      line[line_len] = 0;
      line_len = 0;
      run_command(line);
      prompt();
      return;
    } else if ((c == 8 || c == 127) && line_len) {
      line_len--;
    } else if (c >= ' ' && line_len < (int)sizeof(line) - 1) {
      line[line_len++] = (char)c;
      serial_putc((char)c);
    }
  }
}

void kernel_tick(void) {
  ticks++;
  if (ticks % HZ == 0) balloon_work();  /* the worker's once-a-second pass */
  if (shell_mode) poll_console();
}

/* Called by the scheduler when nothing is runnable. */
void idle_hook(void) {
  if (shell_mode) poll_console();
  if (shell_mode || procs_alive()) { idle_armed = 0; return; }
  if (!idle_armed) { idle_armed = 1; idle_start = ticks; }
  if (ticks - idle_start >= linger_ticks) shutdown("all processes exited");
}

void kmain(void) {
  serial_init();
  kprintf("memvisor-os booting\n");
  read_boot_info();
  kprintf("boot: cmdline \"%s\", kernel at physical %p\n", boot_cmdline, kernel_phys_base);
  gdt_init();
  idt_init();
  pmm_init(ranges, nranges);
  const char *seed = opt("seed");
  if (seed && *seed == '=') { seed++; pmm_randomize(parse_u64(&seed)); }
  vm_init(top_of_ram());
  pmm_add_reclaimable(ranges, nranges);  /* Limine's responses were copied above */
  syscall_init();
  const char *o;
  if ((o = opt("balloon")) && !strncmp(o, "=off", 4)) balloon_enabled = 0;
  if ((o = opt("linger")) && *o == '=') { o++; linger_ticks = parse_u64(&o) * HZ; }
  shell_mode = opt("shell") != 0;
  balloon_init();
  apic_init();
  hotplug_init();  /* after the IDT and the allocator: an event may come at once */
  print_mem();
  o = opt("run");
  if (o && *o == '=') {
    char list[256];
    copy_str(list, o + 1, sizeof(list));
    for (char *p = list; *p; p++) if (*p == ' ') { *p = 0; break; }
    spawn_list(list);
  } else if (!shell_mode) {
    spawn_list("hello,toucher:4,random:4:20000,forktree:3,crash,pagecache:16");
    if (!opt("linger")) linger_ticks = 2 * HZ;  /* let the balloon worker show a few passes */
  }
  if (shell_mode) prompt();
  scheduler();
}
