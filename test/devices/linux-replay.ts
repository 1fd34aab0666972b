// A replay of the Linux vmw_balloon driver's hypercalls (drivers/misc/vmw_balloon.c, the
// "CUR" behaviour of /work/shared/reference/vmw-balloon-driver.md §6–§9, §13) over the
// one-`inl` transport: reset with the doorbell clean-up, START, doorbell, GUEST_ID, then
// GET_TARGET and batched inflate (2 MiB first; ≥ 16 refusals split the refused 2 MiB pages
// into 4 KiB pages that are reused) or deflate (4 KiB list, then 2 MiB), and unload.
// A model of the driver's rules, written for the conformance test, not a driver to ship.
import type { GuestMemory } from '../../src/hypervisor/monitor/gmem.js';
import { BackdoorInl, type GprFile } from '../../src/devices/backdoor-inl.js';
import { BALLOON_MAGIC, CMD, CAP, STATUS } from '../../src/devices/balloon.js';
import type { TestAllocator } from './setup.js';

const INVALID = 0xffff_ffff_ffff_ffffn; // VMCI_INVALID_ID (~0) as the driver's unsigned long
const WITH_TARGET = new Set<number>([1, 2, 3, 6, 7, 8, 9]);
const MAX_REFUSED = 16, SLACK = 512, BATCH = 512;
export const LINUX_CAPS = 0x3e; // BASIC | BATCHED | 2M | SIGNALLED_WAKEUP | 64-bit target

export interface Call { cmd: number; rbx: bigint; rsi: bigint; rax: number; statuses?: number[]; pfnsKept?: boolean }

export class LinuxBalloonReplay {
  readonly calls: Call[] = [];
  size = 0; target = 0; resetRequired = true; caps = 0;
  private batchPfn = -1;
  private readonly pages: { 1: number[]; 512: number[] } = { 1: [], 512: [] };

  constructor(private readonly inl: BackdoorInl, private readonly mem: GuestMemory, private readonly alloc: TestAllocator,
              private readonly totalRam: number, private readonly batchPages: number[], private readonly vector = 0x40) {}

  /** `__vmballoon_cmd`: one inl; the status decides the target update and the reset flag. */
  hypercall(cmd: number, rbx: bigint, rsi: bigint): { rax: number; rbx: bigint; rcx: bigint; out: Partial<GprFile> } {
    const regs: GprFile = { rax: BigInt(BALLOON_MAGIC), rbx, rcx: BigInt(cmd), rdx: 0x5670n, rsi, rdi: 0x1234_5678_9abcn };
    const out = this.inl.handle({ port: 0x5670, size: 4, direction: 'in' }, regs);
    const rax = Number(out.rax!), rbxOut = out.rbx ?? regs.rbx;
    this.calls.push({ cmd, rbx, rsi, rax });
    if (rax === STATUS.SUCCESS && WITH_TARGET.has(cmd)) this.target = Number(rbxOut);
    if (rax === STATUS.ERROR_RESET) this.resetRequired = true;
    return { rax, rbx: rbxOut, rcx: out.rcx ?? regs.rcx, out };
  }

  /** One worker pass (vmballoon_work). */
  tick(): void {
    if (this.resetRequired) this.reset();
    const r = this.hypercall(CMD.GET_TARGET, BigInt(this.totalRam), 0n);
    const c = r.rax === 0 ? this.change() : 0;
    if (c > 0) this.inflate(); else if (c < 0) this.deflate();
  }

  /** vmballoon_reset: doorbell clean-up, pop without UNLOCK, START, batch page, doorbell, GUEST_ID. */
  reset(): void {
    this.hypercall(CMD.VMCI_DOORBELL_SET, INVALID, INVALID);
    this.pop();
    const s = this.hypercall(CMD.START, BigInt(LINUX_CAPS), 0n);
    if (s.rax === STATUS.SUCCESS_WITH_CAPABILITIES) this.caps = Number(s.rcx);
    else if (s.rax === STATUS.SUCCESS) this.caps = CAP.BASIC_CMDS;
    else return;
    this.batchPfn = this.batchPages.shift() ?? this.batchPfn; // a new zeroed page each reset (the old one leaks)
    this.resetRequired = false;
    if (this.caps & CAP.SIGNALLED_WAKEUP_CMD) {
      const d = this.hypercall(CMD.VMCI_DOORBELL_SET, 0n, BigInt(this.vector));
      if (d.rax !== 0) this.hypercall(CMD.VMCI_DOORBELL_SET, INVALID, INVALID);
    }
    this.hypercall(CMD.GUEST_ID, 1n, 0n);
  }

  /** Module unload: doorbell clean-up, START(0), pages freed without UNLOCK. */
  unload(): void {
    this.hypercall(CMD.VMCI_DOORBELL_SET, INVALID, INVALID);
    this.hypercall(CMD.START, 0n, 0n);
    this.pop();
  }

  /** vmballoon_change. */
  change(): number {
    if (this.resetRequired) return 0;
    if (this.target < this.size && this.target !== 0 && this.size - this.target < SLACK) return 0;
    return this.target - this.size;
  }

  private inflate(): void {
    let f: 1 | 512 = this.caps & CAP.BATCHED_2M_CMDS && this.caps & CAP.BATCHED_CMDS ? 512 : 1;
    let refused: { g: number; f: 1 | 512 }[] = [], nRefused = 0;
    const prealloc: number[] = [];
    while (this.change() > 0) {
      const n = Math.min(BATCH, Math.ceil(this.change() / f));
      const got: number[] = [];
      while (got.length < n) {
        const g = f === 512 ? this.alloc.allocPinned2M() : prealloc.shift() ?? this.alloc.allocPinned();
        if (g === null) break;
        got.push(g);
      }
      if (got.length === 0) { if (f === 512) { f = 1; continue; } break; }
      const { rax, statuses } = this.batch(f === 512 ? CMD.BATCHED_2M_LOCK : CMD.BATCHED_LOCK, got);
      got.forEach((g, i) => {
        if (statuses[i] === 0) { this.pages[f].push(g); this.size += f; } else { refused.push({ g, f }); nRefused++; }
      });
      if (rax !== 0) break;
      if (nRefused >= MAX_REFUSED) {
        if (f === 1) break;
        for (const { g } of refused) for (let i = 0; i < 512; i++) prealloc.push(g + i); // split_page
        refused = []; nRefused = 0; f = 1;
      }
    }
    for (const r of refused) this.freeAny(r.g, r.f); // refused pages are freed at the end of the pass
    for (const g of prealloc) this.alloc.free(g);
  }

  private freeAny(g: number, f: number): void { if (f === 512) this.alloc.free2M(g); else this.alloc.free(g); }

  private deflate(): void {
    for (const f of [1, 512] as const) {
      while (this.change() < 0) {
        const n = Math.min(BATCH, Math.ceil(-this.change() / f), this.pages[f].length);
        if (n === 0) break;
        const got = this.pages[f].splice(0, n);
        const { rax, statuses } = this.batch(f === 512 ? CMD.BATCHED_2M_UNLOCK : CMD.BATCHED_UNLOCK, got);
        got.forEach((g, i) => {
          if (statuses[i] === 0) { this.size -= f; this.freeAny(g, f); } else this.pages[f].push(g);
        });
        if (rax !== 0) return;
      }
    }
  }

  /** Writes the batch page, makes the call, reads each entry's status back (RAX overrides). */
  private batch(cmd: number, gfns: number[]): { rax: number; statuses: number[] } {
    const at = BigInt(this.batchPfn) << 12n;
    gfns.forEach((g, i) => this.mem.write64(at + 8n * BigInt(i), BigInt(g) << 12n));
    const r = this.hypercall(cmd, BigInt(this.batchPfn), BigInt(gfns.length));
    const entries = gfns.map((_, i) => this.mem.read64(at + 8n * BigInt(i)));
    const call = this.calls[this.calls.length - 1];
    call.statuses = entries.map((e) => r.rax !== 0 ? r.rax : Number(e & 0x1fn));
    call.pfnsKept = entries.every((e, i) => e >> 12n === BigInt(gfns[i]));
    return { rax: r.rax, statuses: call.statuses };
  }

  private pop(): void {
    for (const g of this.pages[1].splice(0)) this.alloc.free(g);
    for (const g of this.pages[512].splice(0)) this.alloc.free2M(g);
    this.size = 0;
  }
}
