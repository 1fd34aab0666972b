// Host side of the x86-64 interpreter (assembly/x86/): the register file, run() exits,
// interrupt injection. Register order, exit reasons and the exit record layout come from
// the core (REG_NAMES, EXIT_NAMES in assembly/x86/state.ts), never from copies here.

import type { Core } from './wasm.js';

/** Registers of the interpreter beyond the translation registers (all 64-bit). */
export interface X86Registers {
  rax: bigint; rcx: bigint; rdx: bigint; rbx: bigint; rsp: bigint; rbp: bigint; rsi: bigint; rdi: bigint;
  r8: bigint; r9: bigint; r10: bigint; r11: bigint; r12: bigint; r13: bigint; r14: bigint; r15: bigint;
  rip: bigint;
  /** Segment selectors (CS/SS/DS/ES bases are 0 in 64-bit mode). */
  cs: bigint; ss: bigint; ds: bigint; es: bigint; fs: bigint; gs: bigint;
  fsBase: bigint; gsBase: bigint; kernelGsBase: bigint;
  gdtrBase: bigint; gdtrLimit: bigint; idtrBase: bigint; idtrLimit: bigint;
  tr: bigint; trBase: bigint; trLimit: bigint;
  cr2: bigint; cr8: bigint;
  star: bigint; lstar: bigint; cstar: bigint; fmask: bigint; tscAux: bigint; pat: bigint;
  /** The virtual time-stamp counter. */
  tsc: bigint;
}

/** Keys the translation state owns (set through Cpu.setRegisters' plain path). */
export const SHARED_KEYS = new Set(['rflags', 'cr0', 'cr3', 'cr4', 'efer', 'cpl']);

/** What Cpu.run returns: the first event the host must see (KVM_RUN's exit). */
export type CpuExit = ({
  /** Port I/O. 'out': the instruction completed, value = data. 'in': RIP is still on the
   * instruction; give the data with setIoData(), the next run completes it. */
  reason: 'IO'; port: number; size: number; direction: 'in' | 'out'; value: bigint;
} | { reason: 'HLT' }
  /** Instruction budget exhausted: RIP is the next instruction. */
  | { reason: 'BUDGET' }
  /** Triple fault. */
  | { reason: 'SHUTDOWN' }
  /** An exception whose vector is in the exception bitmap; RIP is where the frame would point. */
  | { reason: 'EXCEPTION'; vector: number; errorCode?: number; cr2?: bigint; length: number }
  /** A physical address outside memory; the instruction did not execute (RIP on it). */
  | { reason: 'MMIO'; pa: bigint; size: number; write: boolean; value: bigint; length: number }
  /** Shadow paging: a #PF on the shadow tables; RIP on the instruction. */
  | { reason: 'PF'; cr2: bigint; errorCode: number; access: number }
  /** size/value: the data access (for an access outside the VM, the MMIO it becomes). */
  | { reason: 'EPT_VIOLATION'; gpa: bigint; gva: bigint; qualification: number; size: number; value: bigint }
  | { reason: 'EPT_MISCONFIG'; gpa: bigint; gva: bigint }
  /** Shadow paging: MOV to CR3 retired; the hypervisor loads `value`. */
  | { reason: 'CR3'; value: bigint }
  /** Shadow paging: INVLPG (or INVPCID with invpcidType) retired. */
  | { reason: 'INVLPG'; va: bigint; invpcidType?: number; invpcidPcid?: number }
  /** Shadow paging: MOV to CR0/CR4 or WRMSR EFER retired; the hypervisor applies `value`. */
  | { reason: 'CR_WRITE'; register: 'cr0' | 'cr4' | 'efer'; value: bigint }
  | { reason: 'unsupported' }) & { instructions: number };

export interface RunOptions {
  /** Instructions to run at most before a BUDGET exit (default 1e7). */
  maxInstructions?: number;
}

function names(core: Core, ptr: number, len: number): string[] {
  return String.fromCharCode(...new Uint16Array(core.memory.buffer, ptr, len)).split(',');
}

/** The core's register order and exit names, read once per core. */
export class X86Layout {
  readonly regNames: readonly string[];
  readonly exitNames: readonly string[];
  readonly recCount: number;
  constructor(core: Core) {
    this.regNames = names(core, core.x86RegNamesPtr(), core.x86RegNamesLen());
    this.exitNames = names(core, core.x86ExitNamesPtr(), core.x86ExitNamesLen());
    this.recCount = core.x86ExitRecCount();
    if (this.regNames.length !== core.x86RegCount()) throw new Error('core register table is inconsistent');
  }
}

const layouts = new WeakMap<Core, X86Layout>();
export function layoutOf(core: Core): X86Layout {
  let l = layouts.get(core);
  if (!l) { l = new X86Layout(core); layouts.set(core, l); }
  return l;
}

/** Reads the register file (after x86SyncOut). */
export function readRegs(core: Core, cpuPtr: number): Record<string, bigint> {
  const l = layoutOf(core);
  core.x86SyncOut(cpuPtr);
  const v = new BigUint64Array(core.memory.buffer, core.x86Regs(cpuPtr), l.regNames.length);
  const out: Record<string, bigint> = {};
  l.regNames.forEach((n, i) => { out[n] = v[i]; });
  return out;
}

/** Whether `name` is a register of the interpreter's register file. */
export function isX86Register(core: Core, name: string): boolean {
  return layoutOf(core).regNames.includes(name);
}

/** Writes the given registers (a plain load, like a VMCS load: no flush, no checks). */
export function writeRegs(core: Core, cpuPtr: number, regs: Record<string, bigint | number | undefined>): void {
  const l = layoutOf(core);
  core.x86SyncOut(cpuPtr);
  const v = new BigUint64Array(core.memory.buffer, core.x86Regs(cpuPtr), l.regNames.length);
  for (const [k, val] of Object.entries(regs)) {
    if (val === undefined) continue;
    const i = l.regNames.indexOf(k);
    if (i < 0) throw new RangeError(`unknown register ${k}`);
    v[i] = BigInt.asUintN(64, BigInt(val));
  }
  core.x86SyncIn(cpuPtr);
}

/** Decodes the exit record of the last run. */
export function readExit(core: Core, cpuPtr: number): CpuExit {
  const l = layoutOf(core);
  const r = new BigUint64Array(core.memory.buffer, core.x86ExitRec(cpuPtr), l.recCount);
  const reason = l.exitNames[Number(r[0])] ?? 'unsupported';
  const instructions = Number(r[14]);
  const n = (i: number) => Number(r[i]);
  switch (reason) {
    case 'IO': {
      const dirIn = (n(5) & 0x100) !== 0;
      return { reason, port: n(1), size: n(2), direction: dirIn ? 'in' : 'out', value: dirIn ? 0n : r[4], instructions };
    }
    case 'HLT': case 'BUDGET': case 'SHUTDOWN': return { reason, instructions };
    case 'EXCEPTION': {
      const x: CpuExit = { reason, vector: n(8), length: n(12), instructions };
      if (n(9)) x.errorCode = n(10);
      if (n(8) === 14) x.cr2 = r[11];
      return x;
    }
    case 'MMIO': return { reason, pa: r[1], size: n(2), write: n(3) !== 0, value: r[4], length: n(12), instructions };
    case 'PF': return { reason, cr2: r[1], errorCode: n(5), access: n(13), instructions };
    case 'EPT_VIOLATION': return { reason, gpa: r[6], gva: r[1], qualification: n(7), size: n(2), value: r[4], instructions };
    case 'EPT_MISCONFIG': return { reason, gpa: r[6], gva: r[1], instructions };
    case 'CR3': return { reason, value: r[4], instructions };
    case 'INVLPG': {
      const x: CpuExit = { reason, va: r[1], instructions };
      if (n(4) & 0x100) { x.invpcidType = n(4) & 3; x.invpcidPcid = (n(4) >>> 12) & 0xfff; }
      return x;
    }
    case 'CR_WRITE': {
      const reg = n(1) === 0 ? 'cr0' : n(1) === 4 ? 'cr4' : 'efer';
      return { reason, register: reg, value: r[4], instructions };
    }
    default: return { reason: 'unsupported', instructions };
  }
}

export const DEFAULT_MAX_INSTRUCTIONS = 10_000_000;
