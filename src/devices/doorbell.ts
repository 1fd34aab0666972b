// The balloon's doorbell (SIGNALLED_WAKEUP, command 10 VMCI_DOORBELL_SET), host side.
//
// Linux registers a VMCI doorbell with DOORBELL_SET(context id, resource id) and clears it
// with DOORBELL_SET(VMCI_INVALID_ID, VMCI_INVALID_ID) — unconditionally, at the start of
// every reset (even before the first START) and at unload. VMCI_INVALID_ID is the int ~0,
// so RBX/RSI arrive as 0xFFFF_FFFF_FFFF_FFFF; only the low 32 bits count (fact sheet §2).
//
// memvisor has no VMCI device: the guest passes the interrupt vector it wants rung as the
// resource id (RSI, 32..255; context id free, e.g. 0). When the host changes the target the
// board injects that vector, which is what pulls Linux's worker forward.

import type { BackdoorRegs } from './backdoor.js';

export const VMCI_INVALID_ID = 0xffff_ffff;

export interface Doorbell { context: number; resource: number }

/** DOORBELL_SET(~0, ~0): the clear form, accepted in every protocol state. */
export function isDoorbellClear(r: Readonly<BackdoorRegs>): boolean {
  return Number(r.rbx & 0xffff_ffffn) === VMCI_INVALID_ID && r.esi >>> 0 === VMCI_INVALID_ID;
}

/** The vector a registered doorbell rings, or null if its resource id is not one (32..255). */
export function doorbellVector(d: Doorbell): number | null {
  return d.resource >= 32 && d.resource <= 255 ? d.resource : null;
}
