// Test-only GuestCpu over the VM's vCPU 0 (vcpu.run({ maxInstructions }): the
// hypervisor handles EPT first touches, shadow fills and intercepts), so the kernel
// can be booted on the board before the board's own adapter (src/board/cpu-adapter.ts,
// branch oshost) is wired up.
import type { Vm } from '../../src/hypervisor/vm.js';
import type { GuestCpu, CpuExit } from '../../src/board/os-machine.js';
import { P2M } from '../../src/hypervisor/p2m.js';

/** onBallooned: the guest touched a ballooned gfn (nested EPT violation); the run retries. */
export interface TestCpuHooks { onBallooned?(gpa: bigint, gva: bigint): void }

const hexify = (_k: string, v: unknown) => (typeof v === 'bigint' ? `0x${v.toString(16)}` : v);

export function testCpu(vm: Vm, hooks: TestCpuHooks = {}): GuestCpu {
  const vcpu = vm.vcpus[0], cpu = vcpu.cpu;
  let lastExit = '';
  return {
    boot(r) {
      cpu.setExceptionBitmap(0);
      vcpu.setRegisters({
        rip: r.rip, rsp: r.rsp, rflags: r.rflags, cr0: r.cr0, cr3: r.cr3, cr4: r.cr4, efer: r.efer, cpl: r.cpl,
        cs: BigInt(r.cs), ds: BigInt(r.ds), es: BigInt(r.es), ss: BigInt(r.ss), fs: BigInt(r.fs), gs: BigInt(r.gs),
        gdtrBase: r.gdtr.base, gdtrLimit: BigInt(r.gdtr.limit), idtrBase: r.idtr.base, idtrLimit: BigInt(r.idtr.limit),
      } as never);
    },
    run(max) {
      let x = vcpu.run({ maxInstructions: max });
      while (x.reason === 'EPT_VIOLATION' && hooks.onBallooned && vm.contains(x.gpa as never) &&
             vm.p2m.raw(Number(x.gpa >> 12n) as never) & P2M.BALLOONED) {
        hooks.onBallooned(x.gpa, x.gva);
        x = vcpu.run({ maxInstructions: Math.max(1, max - x.instructions) });
      }
      lastExit = JSON.stringify(x, hexify);
      switch (x.reason) {
        case 'IO': return { reason: 'IO', port: x.port, size: x.size, direction: x.direction, value: x.value };
        case 'HLT': case 'SHUTDOWN': case 'BUDGET': return { reason: x.reason } as CpuExit;
        default: return { reason: 'OTHER', name: x.reason, detail: lastExit };
      }
    },
    gprs() {
      const g = cpu.getRegisters() as unknown as Record<string, bigint>;  // GPRs live in the interpreter
      return { rax: g.rax, rbx: g.rbx, rcx: g.rcx, rdx: g.rdx, rsi: g.rsi, rdi: g.rdi, rbp: g.rbp, rsp: g.rsp,
        r8: g.r8, r9: g.r9, r10: g.r10, r11: g.r11, r12: g.r12, r13: g.r13, r14: g.r14, r15: g.r15, rip: g.rip, rflags: g.rflags } as never;
    },
    setGprs(r) { cpu.setRegisters(r as never); },
    setIoData(v) { cpu.setIoData(v); },
    injectInterrupt(v) { cpu.injectInterrupt(v); },
    instructions() { return cpu.counters().instructions ?? 0; },
    tsc() { return cpu.getRegisters().tsc; },
    advanceTo(t) { const now = cpu.getRegisters().tsc; if (t > now) cpu.advanceTsc(t - now); },
    nextTimer() { return cpu.nextTimer() ?? null; },
    dump() {
      const g = { ...cpu.getRegisters(), ...vcpu.guestRegisters() } as unknown as Record<string, bigint | number>;
      const d: Record<string, string> = { lastExit };
      for (const [k, v] of Object.entries(g)) d[k] = typeof v === 'bigint' ? `0x${v.toString(16)}` : String(v);
      return d;
    },
    counters() { return cpu.counters(); },
  };
}
