/* A small subset of the Limine boot protocol (limine.h, base revisions 0..3).
 * Ids and layouts follow upstream limine-bootloader/limine PROTOCOL.md / limine.h;
 * only the requests memvisor-os uses are declared. All response pointers are
 * HHDM (higher-half direct map) addresses. */
#ifndef LIMINE_H
#define LIMINE_H
#include <stdint.h>

#define LIMINE_COMMON_MAGIC 0xc7b1dd30df4c8b88ULL, 0x0a82e883a194f07bULL

/* Base revision tag: {magic, magic, N}; the loader writes 0 into word 2 when it
 * supports N. */
#define LIMINE_BASE_REVISION(N) \
  volatile uint64_t limine_base_revision[3] = {0xf9562b2d5c95a6c8ULL, 0x6a7b384944536bdcULL, (N)}
#define LIMINE_REQUESTS_START_MARKER \
  volatile uint64_t limine_requests_start_marker[4] = {0xf6b8f4b39de7d1aeULL, 0xfab91a6940fcb9cfULL, \
                                                       0x785c6ed015d3e316ULL, 0x181e920a7852b9d9ULL}
#define LIMINE_REQUESTS_END_MARKER \
  volatile uint64_t limine_requests_end_marker[2] = {0xadc0e0531bb10d03ULL, 0x9572709f31764c62ULL}

#define LIMINE_BOOTLOADER_INFO_REQUEST {LIMINE_COMMON_MAGIC, 0xf55038d8e2a1202fULL, 0x279426fcf5f59740ULL}
#define LIMINE_HHDM_REQUEST            {LIMINE_COMMON_MAGIC, 0x48dcf1cb8ad2b852ULL, 0x63984e959a98244bULL}
#define LIMINE_MEMMAP_REQUEST          {LIMINE_COMMON_MAGIC, 0x67cf3d9d378a806fULL, 0xe304acdfc50c3c62ULL}
#define LIMINE_EXECUTABLE_ADDRESS_REQUEST {LIMINE_COMMON_MAGIC, 0x71ba76863cc55f63ULL, 0xb2644a48c516a487ULL}
#define LIMINE_EXECUTABLE_CMDLINE_REQUEST {LIMINE_COMMON_MAGIC, 0x4b161536e598651eULL, 0xb390ad4a2f1f303aULL}
#define LIMINE_EXECUTABLE_FILE_REQUEST {LIMINE_COMMON_MAGIC, 0xad97e90e83f1ed67ULL, 0x31eb5d1c5ff23b69ULL}
#define LIMINE_STACK_SIZE_REQUEST      {LIMINE_COMMON_MAGIC, 0x224ef0460a8e8926ULL, 0xe1cb0fc25f46ea3dULL}
#define LIMINE_PAGING_MODE_REQUEST     {LIMINE_COMMON_MAGIC, 0x95c1a0edab0944cbULL, 0xa4e5cb3842f7488aULL}

struct limine_bootloader_info_response { uint64_t revision; char *name; char *version; };
struct limine_bootloader_info_request { uint64_t id[4]; uint64_t revision; struct limine_bootloader_info_response *response; };

struct limine_hhdm_response { uint64_t revision; uint64_t offset; };
struct limine_hhdm_request { uint64_t id[4]; uint64_t revision; struct limine_hhdm_response *response; };

#define LIMINE_MEMMAP_USABLE 0
#define LIMINE_MEMMAP_RESERVED 1
#define LIMINE_MEMMAP_ACPI_RECLAIMABLE 2
#define LIMINE_MEMMAP_ACPI_NVS 3
#define LIMINE_MEMMAP_BAD_MEMORY 4
#define LIMINE_MEMMAP_BOOTLOADER_RECLAIMABLE 5
#define LIMINE_MEMMAP_EXECUTABLE_AND_MODULES 6
#define LIMINE_MEMMAP_FRAMEBUFFER 7
struct limine_memmap_entry { uint64_t base; uint64_t length; uint64_t type; };
struct limine_memmap_response { uint64_t revision; uint64_t entry_count; struct limine_memmap_entry **entries; };
struct limine_memmap_request { uint64_t id[4]; uint64_t revision; struct limine_memmap_response *response; };

struct limine_executable_address_response { uint64_t revision; uint64_t physical_base; uint64_t virtual_base; };
struct limine_executable_address_request { uint64_t id[4]; uint64_t revision; struct limine_executable_address_response *response; };

struct limine_executable_cmdline_response { uint64_t revision; char *cmdline; };
struct limine_executable_cmdline_request { uint64_t id[4]; uint64_t revision; struct limine_executable_cmdline_response *response; };

/* struct limine_file up to its cmdline field (the rest is media/partition info). */
struct limine_file { uint64_t revision; void *address; uint64_t size; char *path; char *cmdline; };
struct limine_executable_file_response { uint64_t revision; struct limine_file *executable_file; };
struct limine_executable_file_request { uint64_t id[4]; uint64_t revision; struct limine_executable_file_response *response; };

struct limine_stack_size_response { uint64_t revision; };
struct limine_stack_size_request { uint64_t id[4]; uint64_t revision; struct limine_stack_size_response *response; uint64_t stack_size; };

#define LIMINE_PAGING_MODE_X86_64_4LVL 0
struct limine_paging_mode_response { uint64_t revision; uint64_t mode; };
/* We send request revision 0 and only fill `mode` (+48). Upstream headers then
 * differ: older ones have a `flags` word after mode (and in the response), newer
 * ones add max_mode/min_mode for request revision 1; none of those are read. */
struct limine_paging_mode_request { uint64_t id[4]; uint64_t revision; struct limine_paging_mode_response *response; uint64_t mode; };

#endif
