/* Test-only: a multiboot-1 entry that QEMU's -kernel can start, which switches
 * to long mode with the Limine page layout (identity + HHDM of 0..4 GiB, kernel
 * at 0xffffffff80000000 -> 0x200000) and calls shim_main (mbshim.c). */
  .set MB_MAGIC, 0x1BADB002
  .set MB_FLAGS, (1 << 1) | (1 << 16)
  .section .multiboot, "ax"
  .code32
  .balign 4
mb_header:
  .long MB_MAGIC, MB_FLAGS, -(MB_MAGIC + MB_FLAGS)
  .long mb_header, __shim_start, __load_end, __bss_end, mb_entry
  .global mb_entry
mb_entry:
  cli
  mov %ebx, %edi
  mov $pdpt_low, %ebx
  mov $pd_low + 3, %eax
  mov $4, %ecx
1: mov %eax, (%ebx)
  movl $0, 4(%ebx)
  add $4096, %eax
  add $8, %ebx
  loop 1b
  mov $pd_low, %ebx
  mov $0x83, %eax
  xor %edx, %edx
  mov $2048, %ecx
2: mov %eax, (%ebx)
  mov %edx, 4(%ebx)
  add $0x200000, %eax
  adc $0, %edx
  add $8, %ebx
  loop 2b
  mov $pdpt_low + 3, %eax
  mov %eax, pml4
  mov %eax, pml4 + 256 * 8
  mov $pdpt_hi + 3, %eax
  mov %eax, pml4 + 511 * 8
  mov $pd_k + 3, %eax
  mov %eax, pdpt_hi + 510 * 8
  mov $pd_k, %ebx
  mov $0x200083, %eax
  mov $64, %ecx
3: mov %eax, (%ebx)
  add $0x200000, %eax
  add $8, %ebx
  loop 3b
  mov %cr4, %eax
  or $0xa0, %eax              /* PAE | PGE */
  mov %eax, %cr4
  mov $pml4, %eax
  mov %eax, %cr3
  mov $0xc0000080, %ecx
  rdmsr
  or $0x900, %eax             /* LME | NXE */
  wrmsr
  mov %cr0, %eax
  or $0x80010001, %eax        /* PG | WP | PE */
  mov %eax, %cr0
  lgdt gdtr
  ljmp $0x28, $long_entry

  .code64
long_entry:
  mov $0x30, %ax
  mov %ax, %ds
  mov %ax, %es
  mov %ax, %ss
  mov %ax, %fs
  mov %ax, %gs
  mov $shim_stack_top, %esp
  mov %edi, %edi
  call shim_main
4: hlt
  jmp 4b

  .section .rodata
  .balign 8
gdt:
  .quad 0, 0x00009a000000ffff, 0x000092000000ffff, 0x00cf9a000000ffff, 0x00cf92000000ffff
  .quad 0x00209a0000000000, 0x0000920000000000
gdtr:
  .word gdtr - gdt - 1
  .long gdt

  .bss
  .balign 4096
  .global pml4
pml4: .skip 4096
pdpt_low: .skip 4096
pdpt_hi: .skip 4096
pd_k: .skip 4096
pd_low: .skip 4096 * 4
shim_stack: .skip 16384
shim_stack_top:
  .section .note.GNU-stack, "", @progbits
