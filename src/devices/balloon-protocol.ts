// The VMware balloon protocol (fact sheet §1), as the Linux vmw_balloon driver speaks it:
// constants and formats only. Both sides import this file: the guest driver
// (guests/kernel/balloon.ts) and the host device (balloon.ts). Like Firecracker's
// balloon/mod.rs, it holds no behaviour.
//
// Batch page (BATCHED_*: EBX = its PFN, ESI = entry count 1..512), 512 little-endian u64:
//
//   63                                              12 11        5 4      0
//  ┌──────────────────────────────────────────────────┬───────────┬────────┐
//  │ PFN (4 KiB frame; for 2 MiB pages the first,     │ reserved  │ status │
//  │      512-aligned frame of the page)              │ must be 0 │ (host) │
//  └──────────────────────────────────────────────────┴───────────┴────────┘
//  The driver writes {pfn, status 0}; the host writes each entry's status back.

export const BALLOON_MAGIC = 0x456c6d6f;

export const CMD = {
  START: 0, GET_TARGET: 1, LOCK: 2, UNLOCK: 3, GUEST_ID: 4, BATCHED_LOCK: 6, BATCHED_UNLOCK: 7,
  BATCHED_2M_LOCK: 8, BATCHED_2M_UNLOCK: 9, VMCI_DOORBELL_SET: 10,
} as const;

export const CAP = {
  BASIC_CMDS: 1 << 1, BATCHED_CMDS: 1 << 2, BATCHED_2M_CMDS: 1 << 3, SIGNALLED_WAKEUP_CMD: 1 << 4, TARGET_64: 1 << 5,
} as const;

export const STATUS = {
  SUCCESS: 0, ERROR_CMD_INVALID: 1, ERROR_PPN_INVALID: 2, ERROR_PPN_LOCKED: 3, ERROR_PPN_UNLOCKED: 4,
  ERROR_PPN_PINNED: 5, ERROR_PPN_NOTNEEDED: 6, ERROR_RESET: 7, ERROR_BUSY: 8, SUCCESS_WITH_CAPABILITIES: 0x0300_0000,
} as const;

export const BATCH_MAX_ENTRIES = 512;
export const FRAMES_2M = 512;
/** Batch entry fields (diagram above). */
export const ENTRY_STATUS_MASK = 0x1fn;
export const ENTRY_RESERVED_MASK = 0xfe0n;

/** Commands whose success answer carries the target in EBX. */
export const WITH_TARGET: ReadonlySet<number> = new Set([CMD.GET_TARGET, CMD.LOCK, CMD.UNLOCK, CMD.BATCHED_LOCK,
  CMD.BATCHED_UNLOCK, CMD.BATCHED_2M_LOCK, CMD.BATCHED_2M_UNLOCK]);

const CMD_NAMES = ['start', 'target', 'lock', 'unlock', 'guestType', '(unused 5)', 'batchLock', 'batchUnlock',
  '2m-lock', '2m-unlock', 'doorbellSet'];

/** True if cmd is a command of the protocol (5 is unused). */
export const isCommand = (cmd: number): boolean => cmd in CMD_NAMES && cmd !== 5;
export const cmdName = (cmd: number): string => CMD_NAMES[cmd] ?? `command ${cmd}`;
