// The interpreting x86-64 vCPU (vcpu.run({ maxInstructions }), src/hypervisor/vcpu-code.ts)
// as the board's GuestCpu (os-machine.ts).
//
// The last exception before a triple fault: the vCPU has no record of it, so the adapter
// intercepts #DF (exception bitmap bit 8, as a VMM does with its exception bitmap), notes
// it with RIP and CR2 (CR2 names the page of a #PF that escalated), and re-injects it
// unchanged. A healthy guest never takes a #DF, so this costs nothing otherwise.

import type { Vm } from '../hypervisor/monitor/vm.js';
import type { CodeExit } from '../hypervisor/monitor/vcpu-code.js';
import { P2M } from '../hypervisor/monitor/p2m.js';
import type { Gfn } from '../core/addr.js';
import type { GprFile } from '../devices/backdoor-inl.js';
import type { GuestCpu, CpuExit } from './os-machine.js';
import type { BootRegisters } from './loader.js';

const V_DF = 8;
const hex = (v: bigint | number): string => '0x' + BigInt(v).toString(16);

export interface LastException { vector: number; errorCode?: number; rip: bigint; cr2: bigint; instruction: number }

export function interpretingCpu(vm: Vm): GuestCpu & { lastException: LastException | null } {
  const vcpu = vm.vcpus[0];
  const cpu = vcpu.cpu;
  let instructions = 0;
  // An exit the board handles (IO, HLT, ...) is a VM exit too: it costs what the hypervisor's own do, in cycles and guest time.
  const chargeExit = () => {
    vcpu.stats.vmExits++;
    vcpu.stats.hvCycles += vm.costs.exit;
    cpu.advanceTsc(BigInt(vm.costs.exit));
  };
  const self = {
    lastException: null as LastException | null,
    boot(r: BootRegisters): void {
      vcpu.setRegisters({
        cr0: r.cr0, cr3: r.cr3, cr4: r.cr4, efer: r.efer, rflags: r.rflags, cpl: r.cpl,
        rip: r.rip, rsp: r.rsp, cs: BigInt(r.cs), ds: BigInt(r.ds), es: BigInt(r.es), ss: BigInt(r.ss),
        fs: BigInt(r.fs), gs: BigInt(r.gs), gdtrBase: r.gdtr.base, gdtrLimit: BigInt(r.gdtr.limit),
        idtrBase: r.idtr.base, idtrLimit: BigInt(r.idtr.limit),
      });
      cpu.setExceptionBitmap(1 << V_DF);
    },
    run(max: number): CpuExit {
      for (;;) {
        const x = vcpu.run({ maxInstructions: max }) as CodeExit;
        instructions += x.instructions;
        max -= x.instructions;
        if (x.reason === 'EXCEPTION' && x.vector === V_DF) {
          const r = cpu.getRegisters();
          self.lastException = { vector: x.vector, errorCode: x.errorCode, rip: r.rip, cr2: r.cr2, instruction: instructions };
          cpu.injectException(V_DF, x.errorCode ?? 0);
          if (max <= 0) return { reason: 'BUDGET' };
          continue;
        }
        if (vm.mode !== 'native' && x.reason !== 'BUDGET') chargeExit();
        return exitOf(vm, x, () => vcpu.guestRegisters().cr3);
      }
    },
    // General registers live in the CPU in every mode; in shadow mode only CR0/CR3 differ (the guest's are the shadow MMU's).
    gprs(): GprFile & { rip: bigint; rflags: bigint } {
      const r = cpu.getRegisters();
      return { rax: r.rax, rbx: r.rbx, rcx: r.rcx, rdx: r.rdx, rsi: r.rsi, rdi: r.rdi, rip: r.rip, rflags: r.rflags };
    },
    setGprs(r: Partial<GprFile>): void { cpu.setRegisters(r); },
    setIoData(v: bigint): void { cpu.setIoData(v); },
    setTscHz(hz: number): void { cpu.setTscFrequency(hz); },
    injectInterrupt(v: number): void { cpu.injectInterrupt(v); },
    instructions: () => instructions,
    tsc: () => cpu.getRegisters().tsc,
    advanceTo(t: bigint): void { const now = cpu.getRegisters().tsc; if (t > now) cpu.advanceTsc(t - now); },
    nextTimer: () => cpu.nextTimer() ?? null,
    dump(): Record<string, string> {
      const r = { ...cpu.getRegisters(), ...vcpu.guestRegisters() } as unknown as Record<string, bigint | number>;
      const out: Record<string, string> = {};
      for (const k of ['rip', 'rsp', 'rflags', 'rax', 'rbx', 'rcx', 'rdx', 'rsi', 'rdi', 'rbp', 'r8', 'r9', 'r10', 'r11',
        'r12', 'r13', 'r14', 'r15', 'cs', 'ss', 'cpl', 'cr0', 'cr2', 'cr3', 'cr4', 'efer', 'gdtrBase', 'gdtrLimit', 'idtrBase',
        'idtrLimit', 'trBase', 'tsc']) if (r[k] !== undefined) out[k] = hex(r[k]);
      const e = self.lastException;
      out.lastException = e ? `#DF (error ${e.errorCode ?? 0}) at rip ${hex(e.rip)}, cr2 ${hex(e.cr2)}, instruction ${e.instruction}`
        : 'none intercepted (no #DF before the shutdown)';
      return out;
    },
    counters(): Record<string, number> {
      const c = vcpu.counters();
      c.instructions = instructions;
      c.tlbMisses = c.walks ?? 0;
      c.staleUses = cpu.staleUses().length;
      return c;
    },
  };
  return self;
}

/** The vCPU's exit as the board sees it; a touch of a ballooned gfn is its own reason. */
function exitOf(vm: Vm, x: CodeExit, guestCr3: () => bigint): CpuExit {
  const ballooned = (gpa: bigint) => vm.contains(gpa) && (vm.p2m.raw(Number(gpa >> 12n) as Gfn) & P2M.BALLOONED) !== 0;
  switch (x.reason) {
    case 'IO': return { reason: 'IO', port: x.port, size: x.size, direction: x.direction, value: x.value };
    case 'HLT': case 'BUDGET': case 'SHUTDOWN': return { reason: x.reason };
    case 'PF': {
      // Shadow paging: a fault the shadow MMU could not fill (the guest's own faults are
      // reflected into the guest): the guest's tables map cr2 to a ballooned or absent gpa.
      const gpa = guestGpa(vm, guestCr3(), x.cr2);
      if (gpa !== null && ballooned(gpa)) return { reason: 'BALLOON_TOUCH', gpa, gva: x.cr2 };
      return { reason: 'OTHER', name: x.reason, detail: `cr2 ${hex(x.cr2)} → gpa ${gpa === null ? 'unmapped' : hex(gpa)}` };
    }
    case 'EPT_VIOLATION': {
      if (ballooned(x.gpa)) return { reason: 'BALLOON_TOUCH', gpa: x.gpa, gva: x.gva };
      return { reason: 'OTHER', name: x.reason, detail: `gpa ${hex(x.gpa)} gva ${hex(x.gva)} qualification ${hex(x.qualification)}` };
    }
    case 'OUT_OF_FRAMES': return { reason: 'OUT_OF_FRAMES', pool: x.pool, ...(x.gpa !== undefined ? { gpa: BigInt(x.gpa) } : {}) };
    case 'MMIO':
      // Shadow paging reports a guest mapping that leads to a gpa it cannot back (a
      // ballooned one) as MMIO at that gpa.
      if (vm.mode !== 'native' && ballooned(x.pa)) return { reason: 'BALLOON_TOUCH', gpa: x.pa };
      return { reason: 'OTHER', name: x.reason, detail: `${x.write ? 'write' : 'read'} of ${x.size} bytes at ${hex(x.pa)}: no device there` };
    case 'EXCEPTION': return { reason: 'OTHER', name: x.reason, detail: `vector ${x.vector}` };
    default: return { reason: 'OTHER', name: x.reason };
  }
}

/**
 * The gpa the guest's 4-level tables map gva to (rights ignored), or null: a plain software
 * walk through guest memory, used only to classify an exit.
 *   entry: bit 0 P, bit 7 PS (at PDPTE / PDE), bits 51..12 the next table or the page
 */
export function guestGpa(vm: Vm, cr3: bigint, gva: bigint): bigint | null {
  const ADDR = 0x000f_ffff_ffff_f000n;
  let table = cr3 & ADDR;
  for (let level = 4; level >= 1; level--) {
    const at = table + ((gva >> BigInt(3 + 9 * level)) & 511n) * 8n;
    if (!vm.contains(at)) return null;
    const e = vm.memory.read64(at);
    if (!(e & 1n)) return null;
    const shift = BigInt(3 + 9 * level);
    if (level === 1 || (level <= 3 && e & 0x80n)) return (e & ADDR & ~((1n << shift) - 1n)) | (gva & ((1n << shift) - 1n));
    table = e & ADDR;
  }
  return null;
}
