// A small machine for exploring walks (the browser's walk explorer and TLB view): one vCPU
// with guest page tables and, in nested mode, an EPT built by the hypervisor's Ept. The
// walk itself is the core's (cpu.translate, cpu.execute); explainWalk (core/walk-explain.ts)
// says reference by reference what it did.
//
// Layout (host-physical memory is 64 MiB):
//   native: page tables at 4 MiB, data at 8 MiB (1 GiB pages: at 0)
//   nested: gpa [0, 16 MiB) at hpa 16 MiB (1 GiB EPT pages: identity from 0); guest page
//           tables at gpa 4 MiB; data at gpa 8 MiB; gpa [12, 14) MiB read-only in the EPT,
//           [14, 16) MiB absent from it; EPT tables at hpa 48 MiB.
// The named addresses (LAB_ADDRESSES) cover a hit, a write to read-only memory, a
// supervisor page, a no-execute page, a hole, and in nested mode an EPT violation.

import { Machine } from '../core/machine.js';
import type { Cpu, Access } from '../core/cpu.js';
import { PageTableBuilder, FrameBump } from '../core/pagetable.js';
import type { PhysicalMemory } from '../core/memory.js';
import { CR0, CR4, EFER, EPT, PAGE_4K, PAGE_2M, PAGE_1G, type PageSize } from '../core/bits.js';
import { type Gfn, type Hfn, hfnOf, hpa } from '../core/addr.js';
import { Ept, RWX } from '../hypervisor/monitor/ept.js';
import { explainWalk, type WalkExplanation } from '../core/walk-explain.js';
import { ShadowMmu, type ShadowOutcome } from '../hypervisor/monitor/shadow.js';
import { fillBatch, type Pattern } from '../workload/patterns.js';
import type { AccessBatch } from '../core/batch.js';

const MiB = 2 ** 20;
export type LabPageSize = '4K' | '2M' | '1G';
const SIZE: Record<LabPageSize, PageSize> = { '4K': PAGE_4K, '2M': PAGE_2M, '1G': PAGE_1G };

export interface WalkLabOptions {
  /** shadow: the hypervisor's ShadowMmu keeps shadow tables; its guest walker uses the lab's EPT. */
  mode: 'native' | 'nested' | 'shadow';
  guestLevels: 4 | 5;
  guestPage: LabPageSize;
  eptLevels: 4 | 5;
  eptPage: LabPageSize;
  /** false: no TLBs and no paging-structure caches (every walk is the full walk). */
  caches: boolean;
}

export const DEFAULT_LAB: WalkLabOptions = { mode: 'nested', guestLevels: 4, guestPage: '4K', eptLevels: 4, eptPage: '4K', caches: true };

export interface LabAddress { label: string; va: bigint; access: Access }

/** The region a workload runs over (4 MiB at gpa/pa 8 MiB). */
export const WORK_VA = 0x5555_0000_0000n;
export const WORK_BYTES = 4 * MiB;

export const LAB_ADDRESSES: readonly LabAddress[] = [
  { label: 'user data, read', va: 0x7f12_0012_3458n, access: { user: true } },
  { label: 'user data, write', va: 0x7f12_0012_3458n, access: { user: true, write: true } },
  { label: 'read-only page, write', va: 0x7f12_8000_0010n, access: { user: true, write: true } },
  { label: 'kernel page, user read', va: 0xffff_8000_0000_1000n, access: { user: true } },
  { label: 'no-execute page, fetch', va: 0x7f13_0000_0040n, access: { user: true, fetch: true } },
  { label: 'unmapped address', va: 0x7f14_0000_0000n, access: { user: true } },
  { label: 'EPT read-only gpa, write (nested)', va: 0x7f15_0000_0008n, access: { user: true, write: true } },
  { label: 'gpa absent from the EPT (nested)', va: 0x7f16_0000_0000n, access: { user: true } },
  { label: 'workload region', va: WORK_VA + 0x1000n, access: { user: true } },
];

/** A guest-physical view of host memory at `base` (identity EPT map of the lab). */
function shifted(mem: PhysicalMemory, base: bigint): PhysicalMemory {
  return {
    read64: (a: bigint) => mem.read64(a + base),
    write64: (a: bigint, v: bigint) => mem.write64(a + base, v),
    fill: (a: bigint, b: number, n: number) => mem.fill(a + base, b, n),
  } as unknown as PhysicalMemory;
}

/** Shadow mode: what happened between the hardware's fault on the shadow table and the retry. */
export interface ShadowSteps {
  /** The hardware access on the shadow table that faulted (a VM exit). */
  hidden: WalkExplanation;
  /** The shadow MMU's guest walk (its walker: nested mode over the EPT, no caches). */
  guest: WalkExplanation;
  outcome: ShadowOutcome | { action: 'step' };
}

export type LabWalk = WalkExplanation & { shadow?: ShadowSteps };

export class WalkLab {
  private constructor(readonly machine: Machine, readonly cpu: Cpu, readonly options: WalkLabOptions,
    readonly eptp: bigint | undefined, private batch: AccessBatch, readonly shadow?: ShadowMmu) {}

  static async create(o: WalkLabOptions = DEFAULT_LAB): Promise<WalkLab> {
    const m = await Machine.create({ memoryBytes: 64 * MiB });
    const nested = o.mode !== 'native'; // shadow: guest-physical memory and an EPT for the walker
    const base = nested && o.eptPage !== '1G' ? 16n * BigInt(MiB) : 0n;
    const gmem = nested ? shifted(m.memory, base) : m.memory;
    const gpt = new PageTableBuilder(gmem, new FrameBump(gmem, 4n * BigInt(MiB), 8n * BigInt(MiB)), o.guestLevels);
    mapGuest(gpt, SIZE[o.guestPage]);
    let eptp: bigint | undefined;
    if (nested) eptp = buildEpt(m, base, o).eptp;
    const cpu = m.createCpu(o.caches ? {} : { tlb: false, psc: false });
    const regs = {
      cr0: CR0.PE | CR0.PG | CR0.WP, cr3: gpt.root, efer: EFER.LME | EFER.LMA | EFER.NXE, cpl: 3,
      cr4: CR4.PAE | CR4.PGE | (o.guestLevels === 5 ? CR4.LA57 : 0n),
    };
    let shadow: ShadowMmu | undefined;
    if (o.mode === 'shadow') {
      const tables = new FrameBump(m.memory, 40n * BigInt(MiB), 48n * BigInt(MiB));
      shadow = new ShadowMmu(m, cpu, { allocTableFrame: () => tables.alloc(), freeTableFrame: () => {}, walkerEptp: eptp!, backGpa: () => false });
      shadow.setGuestRegisters(regs);
    } else {
      cpu.setRegisters(regs);
      if (nested) cpu.setVmcs({ mode: 'nested', eptp, vpid: 1 });
    }
    return new WalkLab(m, cpu, o, eptp, m.createBatch(4096), shadow);
  }

  /**
   * One access at va, performed by the core and explained. Shadow mode: when the hardware
   * faults on the shadow table, the shadow MMU handles it as the run loop would (cpuFault:
   * guest walk, shadow fill) and the access is retried; `shadow` tells the steps.
   */
  walk(va: bigint, access: Access = { user: true }): LabWalk {
    const mode = this.options.mode;
    const first = explainWalk(this.machine, this.cpu, { mode, eptp: mode === 'nested' ? this.eptp : undefined }, va, access);
    if (!this.shadow || first.result.ok || first.result.fault !== 'PF') return first;
    const acc = { write: !!access.write, fetch: !!access.fetch, user: access.user ?? true, implicit: !!access.implicit };
    const guest = explainWalk(this.machine, this.shadow.walker, { mode: 'nested', eptp: this.eptp }, va, access);
    const outcome = this.shadow.cpuFault(va, acc);
    const steps: ShadowSteps = { hidden: first, guest, outcome: outcome.action === 'step' ? { action: 'step' } : outcome };
    if (outcome.action === 'retry') {
      return { ...explainWalk(this.machine, this.cpu, { mode }, va, access), shadow: steps };
    }
    // The guest's own fault (reflected to the guest kernel) or an exit the lab does not resolve.
    return { ...guest, mode: 'shadow', shadow: steps };
  }

  /** Runs `count` loads of a pattern over the workload region (one batch per 4096). */
  runWorkload(pattern: Pattern, count: number, seed: number): void {
    for (let done = 0; done < count;) {
      const n = Math.min(this.batch.capacity, count - done);
      fillBatch(this.batch, { pattern, base: Number(WORK_VA), bytes: WORK_BYTES, seed: seed + done }, n);
      const r = this.cpu.execute(this.batch, 0, n);
      if (r.exit.reason !== 'end') throw new Error(`workload stopped: ${r.exit.reason}`);
      done += n;
    }
  }

  flush(): void { this.cpu.flushTlb(); }
}

/** The guest's (or native) mappings: every LAB_ADDRESSES page, with pages of `size`. */
function mapGuest(pt: PageTableBuilder, size: PageSize): void {
  const s = BigInt(size);
  const down = (va: bigint) => va & ~(s - 1n);
  const data = size === PAGE_1G ? 0n : 8n * BigInt(MiB);
  const map = (va: bigint, pa: bigint, f = {}) => pt.map(down(va), size === PAGE_1G ? 0n : pa, size, f);
  map(0x7f12_0012_3458n, data);
  map(0x7f12_8000_0010n, data, { write: false });
  map(0xffff_8000_0000_1000n, data, { user: false, global: true });
  map(0x7f13_0000_0040n, data, { nx: true });
  map(0x7f15_0000_0008n, 12n * BigInt(MiB));
  map(0x7f16_0000_0000n, 14n * BigInt(MiB));
  if (size === PAGE_1G) map(WORK_VA, 0n);
  else pt.mapRange(WORK_VA, data, WORK_BYTES, size);
}

/** The EPT: gpa [0, 16 MiB) → hpa base + gpa, [12, 14) MiB read-only, [14, 16) MiB absent. */
function buildEpt(m: Machine, base: bigint, o: WalkLabOptions): Ept {
  const bump = new FrameBump(m.memory, 48n * BigInt(MiB), 56n * BigInt(MiB));
  const ept = new Ept(m.memory, { alloc: () => hfnOf(hpa(bump.alloc())), free: () => {} }, { levels: o.eptLevels });
  const size = SIZE[o.eptPage];
  const frames = size / PAGE_4K;
  const gfn = (a: number) => a / PAGE_4K as Gfn;
  if (size === PAGE_1G) { ept.map(0 as Gfn, 0 as Hfn, RWX, PAGE_1G); return ept; }
  for (let a = 0; a < 14 * MiB; a += size) {
    ept.map(gfn(a), (gfn(a) + Number(base) / PAGE_4K) as Hfn, a >= 12 * MiB ? EPT.R : RWX, size);
  }
  void frames;
  return ept;
}
