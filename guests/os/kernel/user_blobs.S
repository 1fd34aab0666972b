/* The user programs' flat binaries (built from user/ by build.mjs). */
.macro BLOB name
  .section .rodata.blobs, "a"
  .balign 16
  .global blob_\name\()_start, blob_\name\()_end
blob_\name\()_start:
  .incbin "\name\().bin"
blob_\name\()_end:
.endm

BLOB hello
BLOB toucher
BLOB random
BLOB forktree
BLOB pagecache
BLOB sleeper
BLOB crash

  .section .note.GNU-stack, "", @progbits
