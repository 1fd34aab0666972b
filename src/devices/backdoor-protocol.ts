// The backdoor port's numbers: constants only, shared by the devices and the guests' balloon
// driver (guests/kernel/balloon.ts uses BACKDOOR_PORT, the one `inl` port). BACKDOOR_PORTS
// and REG describe the legacy register window (backdoor.ts has its diagram).

export const BACKDOOR_PORT = 0x5670;
export const BACKDOOR_PORTS = 7; // 0x5670..0x5676

/** The register window's port offsets from BACKDOOR_PORT. */
export const REG = { EXECUTE: 0, EAX: 1, EBX: 2, ECX: 3, ESI: 4, EDI: 5, EBX_HIGH: 6 } as const;
