// The backdoor port's numbers (backdoor.ts has the register-window diagram): constants only,
// shared by the device and the guest's balloon driver (guests/kernel/balloon.ts).

export const BACKDOOR_PORT = 0x5670;
export const BACKDOOR_PORTS = 7; // 0x5670..0x5676

/** The register window's port offsets from BACKDOOR_PORT. */
export const REG = { EXECUTE: 0, EAX: 1, EBX: 2, ECX: 3, ESI: 4, EDI: 5, EBX_HIGH: 6 } as const;
