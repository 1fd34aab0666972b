/* User entry: RDI = argument string, RSI = its length, RSP 16-aligned. */
  .section .text.start, "ax"
  .global _start
_start:
  xor %ebp, %ebp
  call umain
  mov %eax, %edi
  xor %eax, %eax            /* SYS_EXIT */
  syscall
1: jmp 1b
  .section .note.GNU-stack, "", @progbits
