// An independent audit of host frame accounting: walk every VM-pool frame's owner and every
// VM's p2m, and check they tell the same story as HostFrames' counters.
//   - frames owned by VM v = v's present, unshared p2m entries, each naming a frame v owns,
//     and no frame named by two entries (one VM never maps another's memory);
//   - shared p2m entries name frames owned by page sharing;
//   - owned by VMs + shared + free = the VM pool, frame for frame.
import { P2M, frameField } from '../../src/hypervisor/monitor/p2m.js';
import { FREE, SHARED_OWNER, type HostFrames } from '../../src/hypervisor/monitor/frames.js';
import type { Vm } from '../../src/hypervisor/monitor/vm.js';
import type { Gfn, Hfn } from '../../src/core/addr.js';

export interface FrameAudit {
  pool: number; free: number; shared: number;
  /** Frames owned per VM id, counted frame by frame. */
  owned: Record<number, number>;
  /** Problems found (empty when the accounting is exact). */
  problems: string[];
}

export function auditFrames(frames: HostFrames, vms: readonly Vm[]): FrameAudit {
  const pool = frames.hypervisorStart, problems: string[] = [];
  const owned: Record<number, number> = {};
  let free = 0, shared = 0;
  for (let h = 0; h < pool; h++) {
    const o = frames.ownerOf(h as Hfn);
    if (o === FREE) free++;
    else if (o === SHARED_OWNER) shared++;
    else owned[o] = (owned[o] ?? 0) + 1;
  }
  const c = frames.counts();
  if (free !== c.vmFree) problems.push(`free frames: ${free} by owner, ${c.vmFree} counted`);
  if (shared !== frames.usedBy(SHARED_OWNER)) problems.push(`shared frames: ${shared} by owner, ${frames.usedBy(SHARED_OWNER)} counted`);
  const mappedBy = new Map<number, string>();
  for (const vm of vms) {
    let priv = 0;
    vm.p2m.forEach((gfn: Gfn, w: number) => {
      const hfn = frameField(w), isShared = (w & P2M.SHARED) !== 0;
      const o = frames.ownerOf(hfn as Hfn);
      if (isShared ? o !== SHARED_OWNER : o !== vm.id) problems.push(`VM ${vm.id} gfn ${gfn} maps frame ${hfn} owned by ${o}`);
      if (isShared) return;
      priv++;
      const prev = mappedBy.get(hfn);
      if (prev) problems.push(`frame ${hfn} is mapped by ${prev} and by VM ${vm.id} gfn ${gfn}`);
      mappedBy.set(hfn, `VM ${vm.id} gfn ${gfn}`);
    }, P2M.PRESENT, P2M.PRESENT);
    if (priv !== (owned[vm.id] ?? 0)) problems.push(`VM ${vm.id}: ${priv} private mappings, ${owned[vm.id] ?? 0} frames owned`);
    if (priv !== frames.usedBy(vm.id)) problems.push(`VM ${vm.id}: ${priv} private mappings, usedBy says ${frames.usedBy(vm.id)}`);
  }
  const byVms = Object.values(owned).reduce((a, n) => a + n, 0);
  if (byVms + shared + free !== pool) problems.push(`VMs ${byVms} + shared ${shared} + free ${free} != pool ${pool}`);
  return { pool, free, shared, owned, problems };
}
