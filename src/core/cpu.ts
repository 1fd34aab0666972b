// A vCPU's translation state, TLBs and counters, wrapping the Wasm core.

import type { Core } from './wasm.js';
import type { PageSize } from './bits.js';
import { AccessBatch } from './batch.js';
import { hex } from './addr.js';
import { EXIT, XLATE } from './exit.js';
import {
  type X86Registers, type CpuExit, type RunOptions, SHARED_KEYS, readRegs, writeRegs, readExit, isX86Register, layoutOf,
  DEFAULT_MAX_INSTRUCTIONS,
} from './x86.js';

export interface CacheGeometry { entries: number; ways: number }

/** TLB and paging-structure-cache geometry; `false` or entries 0 disables one. */
export interface TlbConfig {
  l1i4k: CacheGeometry | false; l1i2m: CacheGeometry | false;
  l1d4k: CacheGeometry | false; l1d2m: CacheGeometry | false; l1d1g: CacheGeometry | false;
  /** Unified second-level TLB holding 4 KiB, 2 MiB and 1 GiB translations. */
  l2: CacheGeometry | false;
  /** Paging-structure caches (SDM 4.10.3), by the level of the cached entry. */
  pde: CacheGeometry | false; pdpte: CacheGeometry | false;
  pml4e: CacheGeometry | false; pml5e: CacheGeometry | false;
  /** Nested mode: the nested TLB (gpa → hpa, every EPT page size). */
  ntlb: CacheGeometry | false;
  /** Nested mode: EPT paging-structure caches, by the EPT level of the cached entry. */
  epde: CacheGeometry | false; epdpte: CacheGeometry | false;
  epml4e: CacheGeometry | false; epml5e: CacheGeometry | false;
}

// Order = the core's cache indices (assembly/cpu.ts T_*).
export const CACHE_ORDER = ['l1i4k', 'l1i2m', 'l1d4k', 'l1d2m', 'l1d1g', 'l2',
  'pde', 'pdpte', 'pml4e', 'pml5e', 'ntlb', 'epde', 'epdpte', 'epml4e', 'epml5e'] as const;
const TLB_KEYS = ['l1i4k', 'l1i2m', 'l1d4k', 'l1d2m', 'l1d1g', 'l2', 'ntlb'] as const;
const PSC_KEYS = ['pde', 'pdpte', 'pml4e', 'pml5e', 'epde', 'epdpte', 'epml4e', 'epml5e'] as const;

/** Defaults close to a recent Intel core (Skylake-class). */
export const DEFAULT_TLB: TlbConfig = {
  l1i4k: { entries: 128, ways: 8 }, l1i2m: { entries: 8, ways: 8 },
  l1d4k: { entries: 64, ways: 4 }, l1d2m: { entries: 32, ways: 4 }, l1d1g: { entries: 4, ways: 4 },
  l2: { entries: 1536, ways: 12 },
  pde: { entries: 32, ways: 4 }, pdpte: { entries: 4, ways: 4 },
  pml4e: { entries: 2, ways: 2 }, pml5e: { entries: 2, ways: 2 },
  ntlb: { entries: 64, ways: 4 },
  epde: { entries: 32, ways: 4 }, epdpte: { entries: 4, ways: 4 },
  epml4e: { entries: 2, ways: 2 }, epml5e: { entries: 2, ways: 2 },
};

/** Cost-model latencies in cycles. */
export interface Latencies {
  l1Hit: number; l2Hit: number; walkRef: number; pscHit: number; access: number; fault: number;
  /** Per retired instruction of the interpreter (also the virtual TSC's rate). */
  instruction: number;
}
const LAT_ORDER = ['l1Hit', 'l2Hit', 'walkRef', 'pscHit', 'access', 'fault', 'instruction'] as const;
/** Orders of magnitude of a recent core: L1 hit ~1, STLB hit ~7, a walk reference that
 * misses the data caches ~20, a paging-structure-cache hit ~2, #PF delivery ~200. */
export const DEFAULT_LATENCIES: Latencies = {
  l1Hit: 1, l2Hit: 7, walkRef: 20, pscHit: 2, access: 1, fault: 200, instruction: 1,
};

export interface CpuOptions {
  /** MAXPHYADDR, 36..52 (default 52). */
  maxPhysAddr?: number;
  /** Per-cache overrides, or false to disable every TLB (the PSCs stay). */
  tlb?: Partial<TlbConfig> | false;
  /** false disables every paging-structure cache. */
  psc?: boolean;
  latencies?: Partial<Latencies>;
  /** Report uses of stale translations (see Cpu.staleUses). */
  coherenceChecker?: boolean;
}

type RegValue = bigint | number;
export interface Registers extends Partial<Record<keyof X86Registers, RegValue>> {
  cr0: RegValue; cr3: RegValue; cr4: RegValue; efer: RegValue;
  rflags: RegValue; pkru: RegValue; cpl: RegValue;
}
/** The general registers a port hypercall carries (the VMware backdoor: RAX magic, RCX command, RBX/RSI arguments, RDX port). */
export type GeneralRegisters = Pick<X86Registers, 'rax' | 'rbx' | 'rcx' | 'rdx' | 'rsi' | 'rdi'>;

export const REG_ORDER = ['cr0', 'cr3', 'cr4', 'efer', 'rflags', 'pkru', 'cpl'] as const;
const R_CPL = REG_ORDER.indexOf('cpl');

export interface Access { write?: boolean; user?: boolean; fetch?: boolean; implicit?: boolean }

export type Translation =
  | { ok: true; pa: bigint; pageSize: PageSize }
  | { ok: false; fault: 'PF'; errorCode: number; cr2: bigint }
  | { ok: false; fault: 'GP' }
  /** Nested mode only: the EPT refused a guest-physical access (a VM exit). */
  | { ok: false; fault: 'EPT_VIOLATION'; gpa: bigint; qualification: number }
  | { ok: false; fault: 'EPT_MISCONFIG'; gpa: bigint };

export type Result = { ok: true } | { ok: false; fault: 'GP' };

/** A use of a cached translation whose leaf entry changed without invalidation. */
export interface StaleUse { va: bigint; entryPa: bigint; cached: bigint; now: bigint }

export type BatchExit =
  | { reason: 'end' }
  | { reason: 'PF'; index: number; errorCode: number; cr2: bigint }
  | { reason: 'GP'; index: number; va: bigint }
  | { reason: 'MMIO'; index: number; pa: bigint }
  | { reason: 'EPT_VIOLATION'; index: number; gpa: bigint; gva: bigint; qualification: number }
  | { reason: 'EPT_MISCONFIG'; index: number; gpa: bigint; gva: bigint }
  | { reason: 'IO'; index: number; port: number; size: number; direction: 'in' | 'out'; value: bigint }
  | { reason: 'HLT'; index: number }
  | { reason: 'CR3'; index: number; value: bigint }
  | { reason: 'INVLPG'; index: number; va: bigint }
  | { reason: 'unsupported'; index: number };

export type TranslationMode = 'native' | 'nested' | 'shadow';
export const MODES: Record<TranslationMode, number> = { native: 0, nested: 1, shadow: 2 };

/** VMCS-like translation controls. */
export interface Vmcs {
  mode: TranslationMode;
  /** Nested mode: EPT pointer (see eptp() in bits.ts). */
  eptp?: bigint;
  /** Tag of this vCPU's linear/combined TLB entries (0..65535; 0 = the host's). */
  vpid?: number;
}

export interface BatchResult { completed: number; exit: BatchExit }

const ACC_WRITE = 2, ACC_USER = 4, ACC_FETCH = 16, ACC_IMPLICIT = 256;
/** Access bits of translateStatus (the core's ACC_* in assembly/entry.ts). */
export const ACC = { WRITE: ACC_WRITE, USER: ACC_USER, FETCH: ACC_FETCH, IMPLICIT: ACC_IMPLICIT } as const;
const OK: Result = { ok: true };
const GP: Result = { ok: false, fault: 'GP' };

function geometry(name: string, g: CacheGeometry | false | undefined): [number, number] {
  if (!g || g.entries === 0) return [0, 0];
  const { entries, ways } = g;
  const sets = entries / ways;
  if (!Number.isInteger(entries) || !Number.isInteger(ways) || ways < 1 || !Number.isInteger(sets) ||
      (sets & (sets - 1)) !== 0 || entries > 1 << 20) {
    throw new RangeError(`tlb.${name}: ${entries} entries / ${ways} ways must give a power-of-two number of sets`);
  }
  return [entries, ways];
}

export class Cpu {
  /** Pointer of this vCPU's state inside the core. */
  readonly ptr: number;
  /** MAXPHYADDR (fixed at creation): every walker acting for this vCPU must use it. */
  readonly maxPhysAddr: number;
  private names: readonly string[];
  private lat: Latencies;

  constructor(private readonly core: Core, counterNames: readonly string[], opts: CpuOptions = {}) {
    const maxPhysAddr = opts.maxPhysAddr ?? 52;
    if (!Number.isInteger(maxPhysAddr) || maxPhysAddr < 32 || maxPhysAddr > 52) {
      throw new RangeError(`maxPhysAddr must be an integer in 32..52, got ${maxPhysAddr}`);
    }
    const cfg: Partial<TlbConfig> = { ...DEFAULT_TLB };
    if (opts.tlb === false) for (const k of TLB_KEYS) cfg[k] = false;
    else Object.assign(cfg, opts.tlb ?? {});
    if (opts.psc === false) for (const k of PSC_KEYS) cfg[k] = false;
    for (const k of Object.keys(opts.tlb || {})) {
      if (!(CACHE_ORDER as readonly string[]).includes(k)) throw new RangeError(`tlb.${k}: unknown cache`);
    }
    const geo = CACHE_ORDER.map((k) => geometry(k, cfg[k]));
    const geoPtr = core.allocBytes(BigInt(geo.length * 8));
    const u32 = new Uint32Array(core.memory.buffer, geoPtr, geo.length * 2);
    geo.forEach(([e, w], i) => { u32[2 * i] = e; u32[2 * i + 1] = w; });
    this.ptr = core.cpuNew(geoPtr, maxPhysAddr);
    this.maxPhysAddr = maxPhysAddr;
    if (this.ptr === 0) throw new RangeError('out of core memory creating a vCPU');
    this.names = counterNames;
    this.lat = { ...DEFAULT_LATENCIES };
    if (opts.latencies) this.setLatencies(opts.latencies);
    if (opts.coherenceChecker) this.setCoherenceChecker(true);
  }

  /**
   * Plain state load (like a VMCS load): no TLB flush, no #GP checks. Besides the
   * translation registers it takes the interpreter's (rax..r15, rip, segments, descriptor
   * tables, cr2, cr8, MSRs, tsc; see X86Registers).
   */
  setRegisters(r: Partial<Registers>): void {
    REG_ORDER.forEach((k, i) => {
      const v = r[k];
      if (v !== undefined) this.core.cpuSetReg(this.ptr, i, BigInt.asUintN(64, BigInt(v)));
    });
    const rest: Record<string, RegValue | undefined> = {};
    let any = false;
    for (const [k, v] of Object.entries(r)) {
      // Other keys are ignored, as they always were (callers pass wider objects).
      if (v === undefined || (REG_ORDER as readonly string[]).includes(k) || !isX86Register(this.core, k)) continue;
      rest[k] = v; any = true;
    }
    if (any) { this.x86(); writeRegs(this.core, this.ptr, rest); }
  }

  getRegisters(): { cr0: bigint; cr3: bigint; cr4: bigint; efer: bigint; rflags: bigint; pkru: number; cpl: number } & X86Registers {
    const g = (i: number) => BigInt.asUintN(64, this.core.cpuGetReg(this.ptr, i));
    // Without interpreter state (a batch-engine vCPU) the interpreter's registers read 0.
    const x = this.x86Ready ? readRegs(this.core, this.ptr) : Object.fromEntries(layoutOf(this.core).regNames.map((n) => [n, 0n]));
    for (const k of SHARED_KEYS) delete x[k];
    return { ...(x as unknown as X86Registers), cr0: g(0), cr3: g(1), cr4: g(2), efer: g(3), rflags: g(4) | 2n,
      pkru: Number(g(5)), cpl: Number(g(6)) };
  }

  /** RFLAGS, PKRU and CPL alone (three core reads; getRegisters reads everything). */
  flagsState(): { rflags: bigint; pkru: number; cpl: number } {
    const g = (i: number) => BigInt.asUintN(64, this.core.cpuGetReg(this.ptr, i));
    return { rflags: g(4) | 2n, pkru: Number(g(5)), cpl: Number(g(6)) };
  }

  private x86Ready = false;
  /** Creates the interpreter state on first use. */
  private x86(): void {
    if (this.x86Ready) return;
    if (!this.core.x86Create(this.ptr)) throw new RangeError('out of core memory creating the interpreter state');
    this.core.x86SetInsnCycles(this.ptr, BigInt(Math.round(this.lat.instruction)));
    this.core.x86SetTscHz(this.ptr, BigInt(this.tscHz));
    this.x86Ready = true;
  }

  /**
   * Runs guest code from RIP (KVM_RUN): returns at the first exit the host must handle.
   * IO 'in': supply the data with setIoData before the next run.
   */
  run(opts: RunOptions = {}): CpuExit {
    const max = opts.maxInstructions ?? DEFAULT_MAX_INSTRUCTIONS;
    if (!Number.isInteger(max) || max < 0) throw new RangeError(`maxInstructions must be a non-negative integer, got ${max}`);
    this.x86();
    this.core.x86Run(this.ptr, BigInt(max));
    return readExit(this.core, this.ptr);
  }

  /** Data for the pending IN/INS (default all ones, as a floating bus reads). */
  setIoData(value: RegValue): void { this.x86(); this.core.x86SetIoData(this.ptr, BigInt.asUintN(64, BigInt(value))); }

  /**
   * Answers the last MMIO exit (native and nested paging): the next run executes the
   * instruction again and its access to that address reads `value` (a read) or is
   * skipped (a write the device model performed). Without it the instruction exits again.
   */
  completeMmio(value: RegValue = 0n): void { this.x86(); this.core.x86CompleteMmio(this.ptr, BigInt.asUintN(64, BigInt(value))); }

  /** Exception vectors (bit n = vector n) that exit (EXCEPTION) instead of being delivered. */
  setExceptionBitmap(bits: number): void {
    if (!Number.isInteger(bits) || bits < 0 || bits > 0xffff_ffff) throw new RangeError(`exception bitmap must be a u32, got ${bits}`);
    this.x86();
    this.core.x86SetExcBitmap(this.ptr, bits >>> 0);
    this.excBitmap = bits >>> 0;
  }

  /** The exception bitmap last set (setExceptionBitmap). */
  get exceptionBitmap(): number { return this.excBitmap; }
  private excBitmap = 0;

  /** Raises an external interrupt (sets the local APIC's IRR bit for vector 16..255). */
  injectInterrupt(vector: number): void {
    this.x86();
    if (!Number.isInteger(vector) || !this.core.x86Inject(this.ptr, vector)) {
      throw new RangeError(`interrupt vector must be an integer in 16..255, got ${vector}`);
    }
  }

  /** Queues an exception for delivery through the guest's IDT at the next run (a fault: RIP is pushed as is). */
  injectException(vector: number, errorCode?: number, cr2: bigint = 0n): void {
    if (!Number.isInteger(vector) || vector < 0 || vector > 31) throw new RangeError(`exception vector must be 0..31, got ${vector}`);
    this.x86();
    this.core.x86InjectException(this.ptr, vector, errorCode !== undefined, (errorCode ?? 0) >>> 0, BigInt.asUintN(64, cr2));
  }

  /**
   * The TSC's rate in cycles per virtual second, which CPUID leaves 0x15 (TSC / core crystal
   * clock, 1:1 here since the APIC timer counts TSC cycles) and 0x16 (base, maximum and bus
   * MHz) report; 0 (the default) reports neither. Guests derive their timer periods from it.
   */
  setTscFrequency(hz: number): void {
    if (!Number.isInteger(hz) || hz < 0 || hz > 0xffff_ffff) throw new RangeError(`TSC frequency must be an integer in 0..2^32-1 Hz, got ${hz}`);
    this.tscHz = hz;
    if (this.x86Ready) this.core.x86SetTscHz(this.ptr, BigInt(hz));
  }
  private tscHz = 0;

  /** Advances the virtual TSC (time the vCPU spent halted or in the host). */
  advanceTsc(cycles: bigint | number): void { this.x86(); this.core.x86AdvanceTsc(this.ptr, BigInt(cycles)); }

  /** TSC of the APIC timer's next expiry, or undefined when it is not armed. */
  nextTimer(): bigint | undefined {
    this.x86();
    const t = BigInt.asUintN(64, this.core.x86NextTimer(this.ptr));
    return t === 0xffff_ffff_ffff_ffffn ? undefined : t;
  }

  /** Shadow mode: the guest's CR3, which guest MOV from CR3 reads (CR3 holds the shadow root). */
  setShadowGuestCr3(v: bigint): void { this.x86(); this.core.x86SetGuestCr3(this.ptr, BigInt.asUintN(64, v)); }
  /** Shadow mode: the guest's CR0, which guest MOV from CR0 reads (the vCPU runs with WP forced on). */
  setShadowGuestCr0(v: bigint): void { this.x86(); this.core.x86SetGuestCr0(this.ptr, BigInt.asUintN(64, v)); }

  /** While set, no interrupt is delivered (the hypervisor single-steps an instruction). */
  setInterruptsBlocked(on: boolean): void { this.x86(); this.core.x86SetNoIrq(this.ptr, on); }

  /**
   * The interpreter's state beyond the register file, for moving a vCPU to another core
   * (live migration): pending IN / MMIO completion, interrupt shadow, HLT, a pending
   * event, and the local APIC with its timer (layout: assembly/x86/migrate.ts). TLBs and
   * counters are not included. Load it on the destination after its registers.
   */
  saveHiddenState(): bigint[] {
    this.x86();
    const n = this.core.x86StateCount(), p = this.stateBuffer(n);
    this.core.x86SaveState(this.ptr, p);
    return Array.from(new BigUint64Array(this.core.memory.buffer, p, n));
  }

  loadHiddenState(s: readonly bigint[]): void {
    this.x86();
    const n = this.core.x86StateCount();
    if (s.length !== n) throw new RangeError(`a vCPU state record has ${n} slots, got ${s.length}`);
    const p = this.stateBuffer(n);
    new BigUint64Array(this.core.memory.buffer, p, n).set(s.map((v) => BigInt.asUintN(64, v)));
    this.core.x86LoadState(this.ptr, p);
  }

  private statePtr = 0;
  private stateBuffer(n: number): number {
    if (this.statePtr === 0) this.statePtr = this.core.allocBytes(BigInt(n * 8));
    if (this.statePtr === 0) throw new RangeError('out of core memory for a vCPU state record');
    return this.statePtr;
  }

  /** Whether the vCPU is halted (HLT, waiting for an interrupt). */
  get halted(): boolean { this.x86(); return this.core.x86Halted(this.ptr); }

  /** MOV to CR0 (PG changes flush everything). */
  writeCr0(v: RegValue): Result { return this.core.cpuWriteCr0(this.ptr, BigInt(v)) ? OK : GP; }
  /** MOV to CR3: flushes the PCID's non-global entries unless PCIDE and bit 63 are set. */
  writeCr3(v: RegValue): Result { return this.core.cpuWriteCr3(this.ptr, BigInt.asUintN(64, BigInt(v))) ? OK : GP; }
  /** MOV to CR4: PGE changes and PCIDE 1→0 flush everything, globals included. */
  writeCr4(v: RegValue): Result { return this.core.cpuWriteCr4(this.ptr, BigInt(v)) ? OK : GP; }
  invlpg(va: RegValue): void { this.core.cpuInvlpg(this.ptr, BigInt.asUintN(64, BigInt(va))); }
  invpcid(type: number, pcid: RegValue, va: RegValue = 0n): Result {
    return this.core.cpuInvpcid(this.ptr, type, BigInt(pcid), BigInt.asUintN(64, BigInt(va))) ? OK : GP;
  }
  /** Drops every cached translation of every kind and VPID, PSCs and the nested TLB included. */
  flushTlb(): void { this.core.cpuFlush(this.ptr); }

  /**
   * Loads the translation mode (no flush). Nested: the guest's CR3 and page tables are
   * guest-physical and every reference goes through the EPT at eptp. Shadow: CR3 is the
   * shadow root the hypervisor built; guest MOV CR3 and INVLPG ops exit.
   */
  setVmcs(v: Vmcs): void {
    const mode = MODES[v.mode];
    if (mode === undefined) throw new RangeError(`unknown translation mode ${String(v.mode)}`);
    if (!this.core.cpuSetVmcs(this.ptr, mode, BigInt.asUintN(64, v.eptp ?? 0n), v.vpid ?? 0)) {
      throw new RangeError(`invalid VMCS controls: mode ${v.mode}, eptp ${hex(v.eptp ?? 0n)}, vpid ${v.vpid ?? 0} ` +
        '(EPTP needs memory type 0 or 6, walk length 4 or 5, reserved bits 0; VPID 0..65535)');
    }
  }

  /** INVEPT type 1 (single context) or 2 (global); false for VMfail. */
  invept(type: number): boolean { return this.core.cpuInvept(this.ptr, type); }
  /** INVVPID types 0..3; false for VMfail. */
  invvpid(type: number, vpid: number, va: RegValue = 0n): boolean {
    return this.core.cpuInvvpid(this.ptr, type, vpid, BigInt.asUintN(64, BigInt(va)));
  }

  /** One access's translation: uses and fills the TLBs and sets A/D like a real access. */
  translate(va: bigint, access: Access = {}): Translation {
    let acc = 0;
    if (access.write) acc |= ACC_WRITE;
    if (access.fetch) acc |= ACC_FETCH;
    if (access.implicit) acc |= ACC_IMPLICIT;
    else if (access.user ?? this.core.cpuGetReg(this.ptr, R_CPL) === 3n) acc |= ACC_USER;
    return this.lastTranslation(this.translateStatus(va, acc));
  }

  /**
   * translate() without building its result: the core's status (XLATE) for access bits
   * `acc` (ACC in this file). The details stay in the core until the next translation or
   * batch: lastTranslation(status) reads them; exitGpa/exitQualification an EPT violation's.
   */
  translateStatus(va: bigint, acc: number): number {
    return this.core.cpuTranslate(this.ptr, BigInt.asUintN(64, va), acc);
  }

  /** The physical address the last successful translateStatus gave. */
  resultPa(): bigint { return BigInt.asUintN(64, this.core.cpuResPa(this.ptr)); }

  /** The EPT violation of the last translateStatus: the gpa refused and its qualification. */
  exitGpa(): bigint { return BigInt.asUintN(64, this.core.cpuExitGpa(this.ptr)); }
  exitQualification(): number { return this.core.cpuExitQual(this.ptr); }

  /** The result of the last translation, whose status was st. */
  lastTranslation(st: number): Translation {
    if (st === XLATE.ok) {
      return { ok: true, pa: BigInt.asUintN(64, this.core.cpuResPa(this.ptr)),
        pageSize: Number(this.core.cpuResSize(this.ptr)) as PageSize };
    }
    if (st === XLATE.PF) {
      return { ok: false, fault: 'PF', errorCode: this.core.cpuErrorCode(this.ptr),
        cr2: BigInt.asUintN(64, this.core.cpuExitAddr(this.ptr)) };
    }
    if (st === XLATE.GP) return GP as Translation;
    if (st === XLATE.EPT_VIOLATION) {
      return { ok: false, fault: 'EPT_VIOLATION', gpa: BigInt.asUintN(64, this.core.cpuExitGpa(this.ptr)),
        qualification: this.core.cpuExitQual(this.ptr) };
    }
    if (st === XLATE.EPT_MISCONFIG) return { ok: false, fault: 'EPT_MISCONFIG', gpa: BigInt.asUintN(64, this.core.cpuExitGpa(this.ptr)) };
    throw new Error('legacy 32-bit and PAE paging are not modeled: set EFER.LME with CR4.PAE and CR0.PG');
  }

  /** Runs batch ops [start, start+count) until the end or an exit. */
  execute(batch: AccessBatch, start = 0, count = batch.length - start): BatchResult {
    if (start < 0 || count < 0 || start + count > batch.length) {
      throw new RangeError(`batch range ${start}+${count} is outside 0..${batch.length}`);
    }
    const done = this.core.runBatch(this.ptr, batch.opPtr(start), count);
    if (done === count) return { completed: done, exit: { reason: 'end' } };
    const index = start + done;
    const reason = this.core.cpuExitReason(this.ptr);
    const addr = BigInt.asUintN(64, this.core.cpuExitAddr(this.ptr));
    if (reason === EXIT.PF) return { completed: done, exit: { reason: 'PF', index, errorCode: this.core.cpuErrorCode(this.ptr), cr2: addr } };
    if (reason === EXIT.GP) return { completed: done, exit: { reason: 'GP', index, va: addr } };
    if (reason === EXIT.MMIO) return { completed: done, exit: { reason: 'MMIO', index, pa: addr } };
    const gpa = () => BigInt.asUintN(64, this.core.cpuExitGpa(this.ptr));
    const value = () => BigInt.asUintN(64, this.core.cpuExitValue(this.ptr));
    if (reason === EXIT.EPT_VIOLATION) {
      return { completed: done, exit: { reason: 'EPT_VIOLATION', index, gpa: gpa(), gva: addr, qualification: this.core.cpuExitQual(this.ptr) } };
    }
    if (reason === EXIT.EPT_MISCONFIG) return { completed: done, exit: { reason: 'EPT_MISCONFIG', index, gpa: gpa(), gva: addr } };
    if (reason === EXIT.IO) {
      const e = this.core.cpuErrorCode(this.ptr);
      return { completed: done, exit: { reason: 'IO', index, port: Number(addr), size: e & 0xff, direction: e & 0x100 ? 'in' : 'out', value: value() } };
    }
    if (reason === EXIT.HLT) return { completed: done, exit: { reason: 'HLT', index } };
    if (reason === EXIT.CR3) return { completed: done, exit: { reason: 'CR3', index, value: value() } };
    if (reason === EXIT.INVLPG) return { completed: done, exit: { reason: 'INVLPG', index, va: addr } };
    return { completed: done, exit: { reason: 'unsupported', index } };
  }

  /**
   * The entries of the last page walk, by level (index 0 = level 1): their values as
   * read (before A/D updates) and their host-physical addresses. Levels the walk did
   * not read (served by a paging-structure cache) hold stale data: read this after a
   * walk on a vCPU without TLBs or PSCs (as the shadow MMU's guest walker is).
   */
  walkPath(): { values: bigint[]; entryHpas: bigint[] } {
    const v = this.pathView();
    return { values: Array.from(v.subarray(0, 5)), entryHpas: Array.from(v.subarray(5, 10)) };
  }

  /**
   * The last walk's guest entry values, level l at [l - 1] (as walkPath().values), read in
   * place: the view is live, so read it before the next walk. No allocation per walk (the
   * shadow MMU reads it once per fill).
   */
  walkValue(level: number): bigint { return this.pathView()[level - 1]; }

  private path: BigUint64Array | null = null;
  private pathView(): BigUint64Array {
    // A grown memory detaches the old view; the path's address never changes.
    if (this.path === null || this.path.length === 0) { // a detached view (memory grew) has length 0
      this.path = new BigUint64Array(this.core.memory.buffer, this.core.cpuPath(this.ptr), 10);
    }
    return this.path;
  }

  /** Counter values by name (see assembly/counters.ts). */
  counters(): Record<string, number> {
    const p = this.core.cpuCounters(this.ptr);
    const v = new BigUint64Array(this.core.memory.buffer, p, this.names.length);
    const out: Record<string, number> = {};
    this.names.forEach((n, i) => { out[n] = Number(v[i]); });
    out.cycles = this.cycles(out);
    return out;
  }

  resetCounters(): void {
    const p = this.core.cpuCounters(this.ptr);
    new BigUint64Array(this.core.memory.buffer, p, this.names.length).fill(0n);
  }

  setLatencies(l: Partial<Latencies>): void {
    for (const k of LAT_ORDER) {
      const x = l[k];
      if (x === undefined) continue;
      if (!Number.isFinite(x) || x < 0) throw new RangeError(`latencies.${k} must be a non-negative number`);
      this.lat[k] = x;
    }
    if (l.instruction !== undefined && this.x86Ready) this.core.x86SetInsnCycles(this.ptr, BigInt(Math.round(this.lat.instruction)));
  }

  latencies(): Latencies { return { ...this.lat }; }

  /**
   * Modeled cycles: each event count times its latency. Computed from the counters
   * (with the current latencies) so the hot path pays nothing for the cost model.
   */
  cycles(c: Record<string, number> = this.counters()): number {
    const l = this.lat;
    return c.accesses * l.access +
      (c.l1Hit4k + c.l1Hit2m + c.l1Hit1g) * l.l1Hit +
      (c.l2Hit4k + c.l2Hit2m + c.l2Hit1g) * l.l2Hit +
      c.walkRefs * l.walkRef +
      (c.pscHitPde + c.pscHitPdpte + c.pscHitPml4e + c.pscHitPml5e) * l.pscHit +
      (c.pfNotPresent + c.pfProtection + c.pfReserved + c.pfProtectionKey + c.gp) * l.fault +
      (c.instructions ?? 0) * l.instruction;
  }

  setCoherenceChecker(on: boolean): void { this.core.cpuSetChecker(this.ptr, on); }
  /**
   * Off: execute() runs every op on the batch engine's general path, never its fast paths
   * (the hit streak, the miss loop). Same results by design; for differential tests.
   */
  setFastPaths(on: boolean): void { this.core.cpuSetFastPaths(this.ptr, on); }

  /** The most recent stale-translation uses (up to the core's ring size), oldest first. */
  staleUses(): StaleUse[] {
    const total = this.counters().staleUses;
    const cap = this.core.maxEvents();
    const v = new BigUint64Array(this.core.memory.buffer, this.core.cpuEvents(this.ptr), cap * 4);
    const out: StaleUse[] = [];
    for (let n = Math.max(0, total - cap); n < total; n++) {
      const i = (n % cap) * 4;
      out.push({ va: v[i], entryPa: v[i + 1], cached: v[i + 2], now: v[i + 3] });
    }
    return out;
  }

  /** Human-readable description of a stale use, for reports. */
  static describeStale(s: StaleUse): string {
    return `stale translation used for va ${hex(s.va)}: entry at ${hex(s.entryPa)} changed from ` +
      `${hex(s.cached)} to ${hex(s.now)} without INVLPG`;
  }
}
