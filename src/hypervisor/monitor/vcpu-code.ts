// The run loop of a vCPU executing guest machine code (Cpu.run, the core's interpreter),
// as KVM_RUN's loop in the kernel: the core runs until an exit; the hypervisor handles
// what it owns and re-enters; everything else goes back to the caller.
//
// Handled here (never seen by the caller):
// - nested: EPT violations on unbacked gfns (first-touch backing) and on gfns a pager
//   resolves (swap-in, copy-on-write break, sampling trap);
// - shadow: hidden #PFs (shadow fills), guest #PFs (reflected into the guest through its
//   IDT with the guest's error code and CR2), MOV CR3 / INVLPG / INVPCID intercepts, and
//   writes to guest page-table pages: the instruction runs once (single-stepped, no
//   interrupts) with its page opened, then the shadows of every guest entry it changed
//   are zapped — KVM's emulate-then-zap, with the interpreter as the emulator.
// Returned: IO, HLT, MMIO, SHUTDOWN, BUDGET, EXCEPTION (vectors in the exception bitmap),
// EPT exits the hypervisor cannot resolve, OUT_OF_FRAMES.
//
// Cost model: every exit adds costs.exit to the vCPU's hypervisor cycles plus the work
// done (page allocation and zeroing, shadow fills, emulation); the guest's virtual TSC
// advances by the same amount, as time passes for the guest while the host works.

import type { CpuExit } from '../../core/x86.js';
import { EPT_QUAL } from '../../core/bits.js';
import { type Gpa, gfnOf, gpa as toGpa } from '../../core/addr.js';
import { OutOfFramesError } from './frames.js';
import { isUnbacked, needsResolve } from './p2m.js';
import type { Vcpu } from './vcpu.js';

export interface CodeRunOptions { maxInstructions?: number }

export type CodeExit = CpuExit | { reason: 'OUT_OF_FRAMES'; pool: 'vm' | 'hypervisor'; gpa?: Gpa; instructions: number };

const ACC = { WRITE: 2, USER: 4, FETCH: 16, IMPLICIT: 256 } as const;
/** Re-entries without retiring an instruction before we call it a hypervisor bug. */
const MAX_STUCK = 64;

export function isCodeRunOptions(a: unknown): a is CodeRunOptions {
  return typeof a === 'object' && a !== null && !('opPtr' in a);
}

/** Runs guest code on `v` until an exit the hypervisor does not handle itself. */
export function runCode(v: Vcpu, opts: CodeRunOptions = {}): CodeExit {
  if (v.vm.isDestroyed) throw new Error(`VM ${v.vm.id} was destroyed: its vCPUs cannot run`);
  let left = opts.maxInstructions ?? 10_000_000;
  let total = 0, stuck = 0, lastKey = '';
  if (v.shadow) {
    v.cpu.setShadowGuestCr3(v.shadow.guestRegisters().cr3);
    v.cpu.setShadowGuestCr0(v.shadow.guestRegisters().cr0);
  }
  for (;;) {
    const x = v.cpu.run({ maxInstructions: left });
    left -= x.instructions;
    total += x.instructions;
    // Progress is a retired instruction or an exit at a new place: one REP STOS over many
    // unbacked pages retires nothing until it ends, but each exit backs another page.
    const key = exitKey(x);
    stuck = x.instructions > 0 || key !== lastKey ? 0 : stuck + 1;
    lastKey = key;
    if (stuck > MAX_STUCK) {
      throw new Error(`vCPU ${v.vm.id}.${v.id}: no progress (${x.reason} ${JSON.stringify(x, (_k, val) => typeof val === 'bigint' ? val.toString(16) : val)}): a hypervisor bug`);
    }
    v.exits[x.reason] = (v.exits[x.reason] ?? 0) + 1;
    let handled: boolean | CpuExit;
    try {
      handled = handle(v, x);
    } catch (e) {
      if (!(e instanceof OutOfFramesError)) throw e;
      const gpa = x.reason === 'EPT_VIOLATION' ? toGpa(x.gpa) : undefined;
      return { reason: 'OUT_OF_FRAMES', pool: e.pool, gpa, instructions: total };
    }
    if (handled === false) return { ...x, instructions: total };
    if (handled !== true) return { ...handled, instructions: total };
    v.stats.handled++;
  }
}

/** What an exit is about: its reason and the address it names. */
function exitKey(x: CpuExit): string {
  const a = 'gpa' in x ? x.gpa : 'cr2' in x ? x.cr2 : 'pa' in x ? x.pa : 'port' in x ? x.port : '';
  return `${x.reason}:${String(a)}`;
}

function charge(v: Vcpu, cycles: number): void {
  v.stats.vmExits++;
  v.stats.hvCycles += cycles;
  v.cpu.advanceTsc(BigInt(Math.round(cycles)));
}

/** Handles an exit; false when it goes to the caller (or the exit the caller gets instead). */
function handle(v: Vcpu, x: CpuExit): boolean | CpuExit {
  const costs = v.vm.costs;
  switch (x.reason) {
    case 'EPT_VIOLATION': {
      const gpa = toGpa(x.gpa), q = x.qualification;
      if (!v.vm.contains(gpa)) { // outside the VM: MMIO, for the caller's device model
        const write = (q & EPT_QUAL.WRITE) !== 0;
        return { reason: 'MMIO', pa: gpa, size: x.size, write, value: write ? x.value : 0n, length: 0, instructions: 0 };
      }
      const gfn = gfnOf(gpa), w = v.vm.p2m.raw(gfn), write = (q & EPT_QUAL.WRITE) !== 0;
      if (isUnbacked(w)) {
        v.vm.backGfn(gfn, true);
        v.stats.pagesBacked++;
        charge(v, costs.exit + costs.pageAlloc + costs.pageZero);
        return true;
      }
      if (needsResolve(w, write)) {
        const c = v.vm.resolve(gfn, write);
        if (c !== null) { v.stats.resolved++; charge(v, costs.exit + c); return true; }
      }
      return false;
    }
    case 'PF': return v.shadow ? shadowFault(v, x.cr2, x.access) : false;
    case 'CR3': {
      if (!v.shadow) return false;
      shadowWork(v, () => v.shadow!.handle({ reason: 'CR3', index: 0, value: x.value }, undefined as never));
      v.cpu.setShadowGuestCr3(v.shadow.guestRegisters().cr3); // bit 63 (no flush) is not stored
      return true;
    }
    case 'CR_WRITE': {
      if (!v.shadow) return false;
      // Shadow entries encode rights under the guest's CR0.WP, CR4 and EFER.NXE: the
      // shadow MMU reloads them (and rebuilds its tables when they change).
      shadowWork(v, () => v.shadow!.setGuestRegisters({ [x.register]: x.value }));
      v.cpu.setShadowGuestCr0(v.shadow.guestRegisters().cr0);
      charge(v, costs.cr3Emulation);
      return true;
    }
    case 'INVLPG': {
      if (!v.shadow) return false;
      if (x.invpcidType !== undefined) {
        shadowWork(v, () => v.shadow!.invpcid(x.invpcidType!, x.invpcidPcid ?? 0, x.va));
        return true;
      }
      shadowWork(v, () => v.shadow!.handle({ reason: 'INVLPG', index: 0, va: x.va }, undefined as never));
      return true;
    }
    default: return false;
  }
}

/** Runs shadow-MMU work and charges it (exit, fills, emulation, pages backed). */
function shadowWork<T>(v: Vcpu, f: () => T): T {
  const sh = v.shadow!, c = v.vm.costs;
  const a = { ...sh.stats }, backed = v.vm.stats.pagesBacked, paged = v.vm.stats.pagerCycles;
  try {
    return f();
  } finally {
    const b = sh.stats, pages = v.vm.stats.pagesBacked - backed;
    v.stats.pagesBacked += pages;
    charge(v, c.exit + pages * (c.pageAlloc + c.pageZero) +
      (b.hiddenFaults - a.hiddenFaults) * c.shadowFill +
      (b.ptWritesEmulated - a.ptWritesEmulated + b.emulated - a.emulated) * c.ptWriteEmulation +
      (b.cr3Switches - a.cr3Switches + b.invlpgs - a.invlpgs) * c.cr3Emulation +
      (v.vm.stats.pagerCycles - paged));
  }
}

const accOf = (bits: number) => ({
  write: (bits & ACC.WRITE) !== 0, fetch: (bits & ACC.FETCH) !== 0,
  implicit: (bits & ACC.IMPLICIT) !== 0, user: (bits & ACC.USER) !== 0,
});

/** A guest #PF found by the shadow MMU: into the guest's IDT, or to the caller when #PF is
 * in the exception bitmap (as it would exit under native or nested paging). */
function reflect(v: Vcpu, errorCode: number, cr2: bigint): boolean | CpuExit {
  if ((v.cpu.exceptionBitmap >>> 14) & 1) return { reason: 'EXCEPTION', vector: 14, errorCode, cr2, length: 0, instructions: 0 };
  v.cpu.injectException(14, errorCode, cr2);
  return true;
}

/** A #PF on the shadow tables: fill, reflect, or single-step a page-table write. */
function shadowFault(v: Vcpu, cr2: bigint, access: number): boolean | CpuExit {
  const sh = v.shadow!;
  const o = shadowWork(v, () => sh.cpuFault(cr2, accOf(access)));
  if (o.action === 'retry') return true;
  if (o.action === 'guestFault') return reflect(v, o.errorCode, o.cr2);
  if (o.action === 'outside') {
    // A gpa inside the VM that the host refuses (a ballooned page): the same exit nested
    // paging gives, so callers classify it once; beyond the VM's memory: MMIO.
    if (v.vm.contains(toGpa(o.gpa))) {
      return { reason: 'EPT_VIOLATION', gpa: o.gpa, gva: cr2, qualification: o.qualification, size: 0, value: 0n, instructions: 0 };
    }
    return { reason: 'MMIO', pa: o.gpa, size: 0, write: (access & ACC.WRITE) !== 0, value: 0n, length: 0, instructions: 0 };
  }
  if (o.action !== 'step') return true;
  // Run the faulting instruction once with the page open; other pages it touches fault
  // and are filled (or opened) as usual.
  const closers = [sh.openForStep(o.va, o.hpa, o.gfn)];
  v.cpu.setInterruptsBlocked(true);
  try {
    for (let i = 0; i < MAX_STUCK; i++) {
      const x = v.cpu.run({ maxInstructions: 1 });
      // Done (or stopped for another reason): a fault re-executes, anything else is seen
      // again by the main loop.
      if (x.instructions > 0 || x.reason !== 'PF') { if (x.reason !== 'BUDGET') handle(v, x); return true; }
      const o2 = shadowWork(v, () => sh.cpuFault(x.cr2, accOf(x.access)));
      if (o2.action === 'guestFault') { reflect(v, o2.errorCode, o2.cr2); return true; }
      if (o2.action === 'outside') return true;
      if (o2.action === 'step') closers.push(sh.openForStep(o2.va, o2.hpa, o2.gfn));
    }
    throw new Error(`vCPU ${v.vm.id}.${v.id}: page-table write at ${cr2.toString(16)} makes no progress`);
  } finally {
    v.cpu.setInterruptsBlocked(false);
    for (const close of closers.reverse()) close();
  }
}
