// The one run loop of guest code (kernel batches, workload batches, balloon hypercalls):
// run ops on the vCPU until the batch ends, send port I/O to the ports, give guest
// events (#PF, HLT) to the caller, and everything else to the host (platform.hostExit).

import type { AccessBatch } from '../../src/core/batch.js';
import type { GuestExit, GuestPlatform } from '../platform.js';

type Pf = Extract<GuestExit, { reason: 'PF' }>;

export interface GuestEvents {
  /** Names the caller in errors: "kernel", "balloon driver". */
  readonly who: string;
  /** A guest #PF: returns the op to resume at. Absent: the host sees it. */
  pageFault?(x: Pf): number;
  /** Stop at a HLT (return its index + 1). Absent: the host sees it. */
  halt?: boolean;
  /** Counts each IO exit. */
  io?(): void;
  /** Runs allowed before the loop is declared stuck (default unlimited). */
  maxRuns?: number;
  /** The error for an exit nobody handles (default: "<who>: exit X at op N needs the hypervisor"). */
  unhandled?(x: GuestExit): Error;
}

/** Runs b from op `at`; returns null at its end, or the op after a HLT (with events.halt). */
export function runOps(p: GuestPlatform, b: AccessBatch, at: number, ev: GuestEvents): number | null {
  for (let runs = 0; ; runs++) {
    if (ev.maxRuns !== undefined && runs > ev.maxRuns) throw new Error(`${ev.who}: the batch makes no progress`);
    const x = p.vcpu.run(b, at);
    if (x.reason === 'end') return null;
    if (x.reason === 'IO') { ev.io?.(); p.ports.dispatch(x, b); at = x.index + 1; continue; }
    if (x.reason === 'PF' && ev.pageFault) { at = ev.pageFault(x); continue; }
    if (x.reason === 'HLT' && ev.halt) return x.index + 1;
    if (p.hostExit) { at = p.hostExit(x, b); continue; }
    throw ev.unhandled?.(x) ?? new Error(`${ev.who}: exit ${x.reason} at op ${x.index} needs the hypervisor`);
  }
}
