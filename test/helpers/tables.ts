// A tiny page-table builder for hand-written tests: tables are allocated from a bump
// pointer in guest physical memory and filled with plain write64s, so every test
// controls each entry bit by bit.

import {
  Machine, CR0, CR4, EFER, PTE, PAGE_4K, PAGE_2M, PAGE_1G,
  type Cpu, type CpuOptions, type PhysicalMemory,
} from '../../src/index.js';

export const MiB = 1024 * 1024;
/** P|W|U: the most permissive flags, the default for tables and leaves. */
export const PWU = PTE.P | PTE.W | PTE.U;

export interface MapOptions {
  /** Page size (default 4 KiB). */
  size?: number;
  /** Leaf flags without PS (default P|W|U). */
  flags?: bigint;
  /** Flags of paging structures created on the way (default P|W|U). */
  tableFlags?: bigint;
  /** Protection key stored in the leaf's bits 62:59. */
  pkey?: number;
}

const leafLevel = (size: number): number =>
  size === PAGE_4K ? 1 : size === PAGE_2M ? 2 : size === PAGE_1G ? 3 : (() => {
    throw new Error(`bad page size ${size}`);
  })();

export class Tables {
  private next: bigint;
  readonly root: bigint;

  /**
   * presetAD: entries map() writes already have A (and the leaf D), as after earlier
   * accesses; walks through them then take the core's quick walk, which writes nothing.
   * Otherwise they have A = D = 0 and every first walk is the careful one that sets them.
   */
  constructor(readonly mem: PhysicalMemory, readonly levels: 4 | 5 = 4, base = 0x10_0000n, readonly presetAD = false) {
    this.next = base;
    this.root = this.alloc();
  }

  /** A zeroed 4 KiB page for a paging structure. */
  alloc(): bigint {
    const p = this.next;
    this.next += 0x1000n;
    this.mem.fill(p, 0, 4096);
    return p;
  }

  static index(va: bigint, level: number): bigint {
    return (va >> BigInt(3 + 9 * level)) & 511n;
  }

  /** Address of the entry for va at `level` (5..1); the tables above must exist. */
  entryPa(va: bigint, level: number): bigint {
    let table = this.root;
    for (let l = this.levels; l > level; l--) {
      const e = this.mem.read64(table + Tables.index(va, l) * 8n);
      if ((e & PTE.P) === 0n || (l <= 3 && (e & PTE.PS) !== 0n)) {
        throw new Error(`no table below level ${l} for va 0x${va.toString(16)}`);
      }
      table = e & 0x000f_ffff_ffff_f000n;
    }
    return table + Tables.index(va, level) * 8n;
  }

  get(va: bigint, level: number): bigint { return this.mem.read64(this.entryPa(va, level)); }
  set(va: bigint, level: number, v: bigint): void { this.mem.write64(this.entryPa(va, level), v); }
  /** Sets and clears bits of the entry for va at level. */
  modify(va: bigint, level: number, set: bigint, clear = 0n): void {
    this.set(va, level, (this.get(va, level) | set) & ~clear);
  }

  /** Maps va to pa; returns the entry addresses, root level first, leaf last. */
  map(va: bigint, pa: bigint, o: MapOptions = {}): bigint[] {
    const leaf = leafLevel(o.size ?? PAGE_4K);
    const tableFlags = o.tableFlags ?? PWU;
    const path: bigint[] = [];
    let table = this.root;
    for (let l = this.levels; l > leaf; l--) {
      const epa = table + Tables.index(va, l) * 8n;
      path.push(epa);
      let e = this.mem.read64(epa);
      if ((e & PTE.P) === 0n) {
        e = this.alloc() | tableFlags | (this.presetAD ? PTE.A : 0n);
        this.mem.write64(epa, e);
      }
      table = e & 0x000f_ffff_ffff_f000n;
    }
    const epa = table + Tables.index(va, leaf) * 8n;
    path.push(epa);
    const pkey = BigInt(o.pkey ?? 0) << 59n;
    const ad = this.presetAD ? PTE.A | PTE.D : 0n;
    this.mem.write64(epa, pa | (o.flags ?? PWU) | ad | pkey | (leaf > 1 ? PTE.PS : 0n));
    return path;
  }
}

export interface EnvOptions {
  memoryBytes?: number;
  levels?: 4 | 5;
  cpu?: CpuOptions;
  /** Extra bits for CR0 (PE|PG|WP always set unless noWp). */
  cr0?: bigint;
  noWp?: boolean;
  /** Extra CR4 bits (PAE, and LA57 for 5 levels, always set). */
  cr4?: bigint;
  /** EFER (default LME|NXE). */
  efer?: bigint;
  rflags?: bigint;
  pkru?: number;
  cpl?: number;
  /** Tables.presetAD: mapped entries start with A (leaf: A and D) set. */
  presetAD?: boolean;
}

export interface Env { m: Machine; cpu: Cpu; t: Tables }

/** A machine with one vCPU in long mode on a fresh, empty set of tables. */
export async function env(o: EnvOptions = {}): Promise<Env> {
  const m = await Machine.create({ memoryBytes: o.memoryBytes ?? 16 * MiB });
  const cpu = m.createCpu(o.cpu);
  const levels = o.levels ?? 4;
  const t = new Tables(m.memory, levels, 0x10_0000n, o.presetAD ?? false);
  cpu.setRegisters({
    cr0: CR0.PE | CR0.PG | (o.noWp ? 0n : CR0.WP) | (o.cr0 ?? 0n),
    cr3: t.root,
    cr4: CR4.PAE | (levels === 5 ? CR4.LA57 : 0n) | (o.cr4 ?? 0n),
    efer: o.efer ?? (EFER.LME | EFER.NXE),
    rflags: o.rflags ?? 0n,
    pkru: o.pkru ?? 0,
    cpl: o.cpl ?? 0,
  });
  return { m, cpu, t };
}

/** The physical address a translation must give, or throws with the fault. */
export function paOf(cpu: Cpu, va: bigint, access = {}): bigint {
  const r = cpu.translate(va, access);
  if (!r.ok) throw new Error(`translate 0x${va.toString(16)} faulted: ${JSON.stringify(r, (_, v) => typeof v === 'bigint' ? '0x' + v.toString(16) : v)}`);
  return r.pa;
}
