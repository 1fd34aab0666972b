// The random sequence generator's core: emits instructions into one code buffer, sets up
// memory operands that land in scratch, and tracks which arithmetic flags are undefined
// (per the SDM) at every instruction boundary, so that
//   - an instruction that reads flags is only emitted when those flags are defined
//     (otherwise a CMP that defines all six goes first), and
//   - the comparison masks exactly the flags that are undefined where the case stopped.
// Values are never simulated: every data-dependent choice that would make a result
// undefined (a shift count, BSF of 0, a SHLD count above the width) is pinned by a setup
// instruction emitted right before, so the generator knows it.

import { Rng } from '../../../src/util/rng.js';
import { CODE_BASE, CODE_SIZE, DATA_BASE, SCRATCH_SIZE, STACK_BASE, STACK_SIZE, GS_BASE, RSP, RBP, ARITH } from '../layout.js';
import { encode, reg, type Encoding, type Mem, type Reg, type Size } from './encode.js';

export interface Meta {
  /** Offset of the instruction in the snippet. */
  off: number;
  len: number;
  /** Coverage class, e.g. "add Ev,Gv/64"; setup instructions are "setup". */
  cls: string;
  /** Flags undefined before this instruction. */
  uBefore: number;
  /** Not a place to cut the snippet (between a self-modifying store and its target). */
  noCut?: boolean;
}

/** Host CPU features that decide which forms may be generated. */
export interface Features {
  popcnt: boolean; lzcnt: boolean; bmi1: boolean;
  /** AMD does not write a failed CMPXCHG's 32-bit register destination back (Intel does, zero-extending). */
  amd: boolean;
}

export interface FlagEffect { reads?: number; writes?: number; undef?: number }

export class Gen {
  readonly bytes: number[] = [];
  readonly meta: Meta[] = [];
  /** Arithmetic flags undefined at the current point. */
  U = 0;
  /** Bytes pushed below the initial RSP (negative: popped above it). */
  depth = 0;
  /** Registers the current form must not use as scratch (RSP always; RBP inside ENTER/LEAVE). */
  readonly reserved = new Set<number>([RSP]);
  /** Inside a skippable block or a subroutine: no stack traffic, no branches, no RSP-based operands. */
  inBlock = false;
  /** Set once a terminal (deliberately faulting) instruction was emitted. */
  ended = false;

  constructor(readonly rng: Rng, readonly features: Features) {}

  at(): number { return CODE_BASE + this.bytes.length; }
  room(): number { return CODE_SIZE - 2 - this.bytes.length; }

  // ---- randomness ----
  below(n: number): number { return this.rng.below(n); }
  chance(p: number): boolean { return this.rng.next() < p; }
  pick<T>(xs: readonly T[]): T { return xs[this.rng.below(xs.length)]; }
  u64(): bigint { return (BigInt(this.rng.u32()) << 32n) | BigInt(this.rng.u32()); }
  /** A value with the edge cases over-represented: 0, ±1, sign boundaries, small, random. */
  value(size: Size): bigint {
    const bits = BigInt(size * 8);
    const top = 1n << (bits - 1n);
    switch (this.below(10)) {
      case 0: return 0n;
      case 1: return 1n;
      case 2: return BigInt.asUintN(Number(bits), -1n);
      case 3: return top;
      case 4: return top - 1n;
      case 5: return BigInt(this.below(256));
      default: return BigInt.asUintN(Number(bits), this.u64());
    }
  }

  // ---- emission ----
  /** Emits one instruction with its flag effect; a read of undefined flags first gets a CMP. */
  emit(e: Encoding, cls: string, fx: FlagEffect = {}): void {
    if ((fx.reads ?? 0) & this.U) this.defineFlags();
    if (cls !== 'setup' && !hasHigh(e) && this.chance(0.04)) e = { ...e, rex: true }; // a redundant REX (40) now and then
    this.raw(encodeLoose(e, this.at()), cls);
    this.U = (this.U & ~(fx.writes ?? 0)) | (fx.undef ?? 0);
  }

  /** Appends already-encoded bytes as one instruction (no flag change). */
  raw(b: number[], cls: string): void {
    if (b.length > this.room()) throw new RoomError();
    this.meta.push({ off: this.bytes.length, len: b.length, cls, uBefore: this.U });
    this.bytes.push(...b);
  }

  /** CMP of two random registers or a register and an immediate: all six flags defined. */
  defineFlags(): void {
    const size = this.pick([1, 2, 4, 8] as const);
    const a = this.anyReg(size);
    if (this.chance(0.5)) this.emit({ opcode: [size === 1 ? 0x38 : 0x39], size, reg: this.anyReg(size), rm: a }, 'cmp (defines flags)', { writes: ARITH });
    else this.emit({ opcode: [size === 1 ? 0x80 : 0x83], size, reg: 7, rm: a, imm: { value: BigInt(this.below(256)), bytes: 1 } }, 'cmp (defines flags)', { writes: ARITH });
  }

  /** MOV r64 ← value through one of the immediate forms (a tested instruction itself). */
  setReg(n: number, v: bigint): void {
    const s = BigInt.asIntN(64, v);
    const r = reg(n, 8);
    if (s >= 0n && s < 1n << 32n && this.chance(0.5)) this.emit({ opcode: [0xb8], size: 4, opreg: reg(n, 4), imm: { value: s, bytes: 4 } }, 'setup');
    else if (s >= -(1n << 31n) && s < 1n << 31n && this.chance(0.6)) this.emit({ opcode: [0xc7], size: 8, reg: 0, rm: r, imm: { value: s, bytes: 4 } }, 'setup');
    else this.emit({ opcode: [0xb8], size: 8, opreg: r, imm: { value: v, bytes: 8 } }, 'setup');
  }

  // ---- registers ----
  /** A random register of `size` that is free to be written (not RSP, not reserved, not in avoid). */
  freeReg(size: Size, avoid: number[] = []): Reg {
    for (;;) {
      const n = this.below(16);
      if (this.reserved.has(n) || avoid.includes(n)) continue;
      return this.byteFlavour(n, size);
    }
  }

  /** Any register as a source (RSP included). */
  anyReg(size: Size, avoid: number[] = []): Reg {
    for (;;) {
      const n = this.below(16);
      if (avoid.includes(n)) continue;
      if (size === 1 && n === RSP && this.reserved.has(RSP)) return reg(n, 1); // SPL: reading is fine
      return this.byteFlavour(n, size);
    }
  }

  /** For byte registers 0–3, sometimes use the high byte (AH…BH) instead. */
  private byteFlavour(n: number, size: Size): Reg {
    if (size === 1 && n < 4 && this.chance(0.3)) return reg(n, 1, true);
    return reg(n, size);
  }

  // ---- memory operands ----
  /** A scratch offset with room for `size` bytes; sometimes straddling the two scratch pages. */
  scratchTarget(size: number, span = size): number {
    if (this.chance(0.1)) return DATA_BASE + 0x1000 - 1 - this.below(Math.max(1, size - 1));
    const slack = 256;
    return DATA_BASE + slack + this.below(SCRATCH_SIZE - 2 * slack - span);
  }

  /**
   * A memory operand at `target` (a scratch address by default), in a random addressing
   * form, with the base/index setup emitted now. Registers in `avoid` are left alone.
   */
  mem(size: Size, avoid: number[] = [], at?: number): Mem {
    const forms = ['base', 'base', 'baseIndex', 'baseIndex', 'index', 'abs', 'rip', 'rip', 'addr32', 'gs'];
    if (!this.inBlock && at === undefined) forms.push('rsp'); // [rsp+disp] picks its own target
    const target = at ?? this.scratchTarget(size);
    const form = this.pick(forms);
    const m: Mem = { kind: 'mem', size, scale: this.pick([1, 2, 4, 8] as const), disp: 0, dispBytes: 4 };
    if (this.chance(0.08)) m.seg = this.pick([0x2e, 0x36, 0x3e, 0x26]);
    const pickDisp = () => {
      m.dispBytes = this.pick([0, 1, 4] as const);
      m.disp = m.dispBytes === 0 ? 0 : m.dispBytes === 1 ? this.below(256) - 128 : this.below(0x2000) - 0x1000;
    };
    const free = (extra: number[] = []) => this.freeReg(8, [...avoid, ...extra]).n;
    switch (form) {
      case 'rip': m.rip = true; m.target = target; break;
      case 'abs': m.disp = target; break;
      case 'index': {
        m.index = free();
        const iv = this.below(64);
        this.setReg(m.index, BigInt(iv));
        m.disp = target - iv * m.scale;
        break;
      }
      case 'rsp': {
        // [rsp+disp] into the stack page, below the live stack top (pushed data is fair game).
        const rsp = STACK_BASE + 0x800 - this.depth;
        const t = STACK_BASE + 64 + this.below(STACK_SIZE - 128 - size);
        m.base = RSP; m.disp = t - rsp; m.dispBytes = m.disp >= -128 && m.disp < 128 ? this.pick([1, 4] as const) : 4;
        if (m.disp === 0 && this.chance(0.5)) m.dispBytes = 0;
        if (this.chance(0.3)) { m.index = free(); this.setReg(m.index, 0n); } // index 0: [rsp+reg*s+disp]
        break;
      }
      default: { // base, baseIndex, addr32, gs
        pickDisp();
        m.base = free();
        m.forceSib = this.chance(0.15);
        let ea = target - m.disp;
        if (form === 'gs') {
          m.seg = 0x65;
          if (this.chance(0.25)) [m.seg, m.seg2] = this.chance(0.5) ? [0x65, this.pick([0x2e, 0x36, 0x3e, 0x26])] : [this.pick([0x2e, 0x36, 0x3e, 0x26, 0x64]), 0x65];
          ea -= GS_BASE;
        }
        if (form === 'baseIndex' || (form !== 'base' && this.chance(0.3))) {
          m.index = free([m.base]);
          const iv = this.below(129) - 64;
          this.setReg(m.index, BigInt(iv));
          ea -= iv * m.scale;
        }
        let bv = BigInt(ea);
        if (form === 'addr32') {
          m.addr32 = true; // EA wraps to 32 bits: garbage above bit 31 of the base must not matter
          bv = (BigInt(this.rng.u32()) << 32n) | BigInt(ea >>> 0);
        }
        this.setReg(m.base, bv);
      }
    }
    return m;
  }

  /** Register or memory operand (memory about a third of the time), for an r/m slot. */
  rm(size: Size, avoid: number[] = [], writes = true): Reg | Mem {
    if (this.chance(0.35)) return this.mem(size, avoid);
    return writes ? this.freeReg(size, avoid) : this.anyReg(size, avoid);
  }
}

const isHigh = (o: unknown) => !!o && typeof o === 'object' && (o as Reg).kind === 'reg' && !!(o as Reg).high;
const hasHigh = (e: Encoding) => isHigh(e.reg) || isHigh(e.rm) || isHigh(e.opreg);

/** Encodes; where a REX is needed beside AH…BH, those become AL…BL instead (not encodable). */
function encodeLoose(e: Encoding, at: number): number[] {
  try {
    return encode(e, at);
  } catch (err) {
    if (!(err instanceof Error) || !err.message.startsWith('AH/CH/DH/BH')) throw err;
    const low = <T>(o: T): T => (o && typeof o === 'object' && (o as { kind?: string }).kind === 'reg' ? { ...o, high: false } : o);
    return encode({ ...e, reg: low(e.reg), rm: low(e.rm), opreg: low(e.opreg) }, at);
  }
}

/** Thrown when the code page is full; the sequence builder stops there. */
export class RoomError extends Error { constructor() { super('code page full'); } }

export const SIZES: readonly Size[] = [1, 2, 4, 8];
export const VSIZES: readonly Size[] = [2, 4, 8];
