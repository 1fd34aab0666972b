// The reference model of the whole-system fuzz: for each VM, a plain Uint8Array of its
// guest-physical memory and the set of gfns in its balloon. Commands act on the real
// system and on the model; sharing, swapping and sampling are invisible to the model
// (they must not change a byte), ballooning is not (a locked page's content is gone:
// it reads as zeros once unlocked or popped).
//
// After every command `check` compares, without disturbing the system (no swap-in, no
// backing), every gfn of every VM with the reference: a present gfn through its host
// frame, a swapped one through its swap slot, an unbacked one must be zero in the
// reference, a ballooned one must be in the model's balloon. It also checks host frame
// accounting and ownership (no VM's p2m reaches a frame of another VM), page sharing's
// own invariants, swap slots, sampling traps and the balloon size. `finalCheck` then reads
// every gfn through vm.memory (swapping pages in as needed).
import { P2M, SHARED_OWNER, frameField, type Vm } from '../../src/hypervisor/index.js';
import { CMD, STATUS } from '../../src/devices/balloon.js';
import { type Gfn, type Hfn, hpaOf } from '../../src/core/addr.js';
import { type Sys, type SysVm, guestAccess, withFrames } from './setup.js';


export const VALUES = [0n, 0x0101_0101_0101_0101n, 0xdead_beefn, 0xffff_ffff_ffff_ffffn];
export const WORDS = [0, 1, 256, 511];

/** 4 KiB of pattern p (0 = zeros): few distinct pages, so sharing finds partners. */
export function pattern(p: number): Uint8Array {
  const b = new Uint8Array(4096);
  if (p !== 0) for (let i = 0; i < 4096; i++) b[i] = (i * p + p) & 0xff;
  return b;
}

/**
 * One command. vm: index 0..2; slot: index into that VM's data gfns; word: into WORDS;
 * val: into VALUES; i: picks one of the ballooned gfns (touch, unlock). g* are guest
 * accesses through the vCPU, h* host accesses through vm.memory.
 */
export type Op =
  | { k: 'gstore'; vm: number; slot: number; word: number; val: number }
  | { k: 'gload'; vm: number; slot: number; word: number }
  | { k: 'touch'; vm: number; i: number; store: boolean; val: number }
  | { k: 'hwrite'; vm: number; slot: number; word: number; val: number }
  | { k: 'hfill'; vm: number; slot: number; pat: number }
  | { k: 'hread'; vm: number; slot: number }
  | { k: 'copy'; from: number; fslot: number; to: number; tslot: number }
  | { k: 'scan'; secs: number }
  | { k: 'shareNow'; vm: number }
  | { k: 'swapOut'; vm: number; n: number }
  | { k: 'lock'; vm: number; slot: number }
  | { k: 'unlock'; vm: number; i: number }
  | { k: 'restart'; vm: number }
  | { k: 'sample'; vm: number };

class ModelVm {
  readonly ref: Uint8Array;
  readonly ballooned = new Set<number>();
  /** The device was reset by a touch: the driver must START before its next command. */
  needsStart = false;
  constructor(readonly s: SysVm) { this.ref = s.vm.memory.read(0n, Number(s.vm.memoryBytes)); }
  page(g: number): Uint8Array { return this.ref.subarray(g * 4096, g * 4096 + 4096); }
  word(gpa: number): bigint { return new DataView(this.ref.buffer).getBigUint64(gpa, true); }
  setWord(gpa: number, v: bigint): void { new DataView(this.ref.buffer).setBigUint64(gpa, v, true); }
}

export class SystemModel {
  readonly m: ModelVm[];
  constructor(readonly s: Sys) { this.m = s.vms.map((v) => new ModelVm(v)); }

  apply(op: Op): void {
    switch (op.k) {
      case 'gstore': case 'gload': {
        const v = this.m[op.vm], g = v.s.data[op.slot];
        this.guest(v, g * 4096 + WORDS[op.word] * 8, op.k === 'gstore' ? VALUES[op.val] : null);
        return;
      }
      case 'touch': {
        const v = this.m[op.vm];
        if (v.ballooned.size === 0) return;
        const g = [...v.ballooned].sort((a, b) => a - b)[op.i % v.ballooned.size];
        this.guest(v, g * 4096 + 8, op.store ? VALUES[op.val] : null);
        return;
      }
      case 'hwrite': case 'hfill': {
        const v = this.m[op.vm], g = v.s.data[op.slot];
        const gpa = g * 4096 + (op.k === 'hwrite' ? WORDS[op.word] * 8 : 0);
        const bytes = op.k === 'hfill' ? pattern(op.pat) : le64(VALUES[op.val]);
        if (v.ballooned.has(g)) return expectThrows(() => v.s.vm.memory.write(BigInt(gpa), bytes), /ballooned/);
        withFrames(this.s, v.s, () => v.s.vm.memory.write(BigInt(gpa), bytes));
        v.ref.set(bytes, gpa);
        return;
      }
      case 'hread': {
        const v = this.m[op.vm], g = v.s.data[op.slot];
        if (v.ballooned.has(g)) return expectThrows(() => v.s.vm.memory.read(BigInt(g) << 12n, 4096), /ballooned/);
        sameBytes(withFrames(this.s, v.s, () => v.s.vm.memory.read(BigInt(g) << 12n, 4096)), v.page(g), `VM ${v.s.vm.id} gfn ${g} (host read)`);
        return;
      }
      case 'copy': {
        const a = this.m[op.from], b = this.m[op.to];
        const ga = a.s.data[op.fslot], gb = b.s.data[op.tslot];
        if (a.ballooned.has(ga) || b.ballooned.has(gb)) return;
        const bytes = withFrames(this.s, a.s, () => a.s.vm.memory.read(BigInt(ga) << 12n, 4096));
        sameBytes(bytes, a.page(ga), `VM ${a.s.vm.id} gfn ${ga} (copy source)`);
        withFrames(this.s, b.s, () => b.s.vm.memory.write(BigInt(gb) << 12n, bytes));
        b.ref.set(bytes, gb * 4096);
        return;
      }
      case 'scan': this.s.sharing.scan(op.secs); return;
      case 'shareNow': this.s.sharing.shareNow(this.m[op.vm].s.vm, this.m[op.vm].s.data); return;
      case 'swapOut': this.s.swap.swapOut(this.m[op.vm].s.vm, op.n); return;
      case 'lock': return this.lock(this.m[op.vm], this.m[op.vm].s.data[op.slot]);
      case 'unlock': return this.unlock(this.m[op.vm], op.i);
      case 'restart': return this.restart(this.m[op.vm]);
      case 'sample': this.s.sampler.periodEnd(this.m[op.vm].s.vm); return;
    }
  }

  /** A guest access; touching a ballooned gfn must be caught and pop the whole balloon. */
  private guest(v: ModelVm, gpa: number, store: bigint | null): void {
    const g = gpa >> 12;
    const expectTouch = v.ballooned.has(g);
    const violations = v.s.dev.violationCount;
    const r = guestAccess(this.s, v.s, BigInt(gpa), store);
    if (r.touchedBalloon !== expectTouch) {
      throw new Error(`VM ${v.s.vm.id} gfn ${g}: balloon touch ${r.touchedBalloon}, expected ${expectTouch}`);
    }
    if (expectTouch) {
      const last = v.s.dev.violations[v.s.dev.violations.length - 1];
      if (v.s.dev.violationCount !== violations + 1 || last.kind !== 'touched-ballooned' || last.gfn !== g) {
        throw new Error(`VM ${v.s.vm.id} gfn ${g}: the touch was not recorded (${JSON.stringify(last?.message)})`);
      }
      v.ballooned.clear(); // popped: every ballooned gfn is an unbacked zero page (already zeros in ref)
      v.needsStart = true;
    }
    if (store !== null) v.setWord(gpa, store);
    else if (r.value !== v.word(gpa)) {
      throw new Error(`VM ${v.s.vm.id} guest load at gpa 0x${gpa.toString(16)}: 0x${r.value.toString(16)}, reference 0x${v.word(gpa).toString(16)}`);
    }
  }

  private lock(v: ModelVm, g: number): void {
    if (v.needsStart) {
      const st = v.s.call(CMD.LOCK, g);
      if (st !== STATUS.ERROR_RESET) throw new Error(`LOCK after a balloon reset answered ${st}, expected ERROR_RESET`);
      if (v.s.call(CMD.START, 2) !== STATUS.SUCCESS_WITH_CAPABILITIES) throw new Error('balloon START failed');
      this.s.seen.starts++;
      v.needsStart = false;
    }
    const w = v.s.vm.p2m.raw(g as Gfn);
    // A LOCK of a shared or swapped gfn drops its reference or slot (Vm.discard); only
    // page tables are pinned.
    const pinned = P2M.PAGE_TABLE;
    const want = v.ballooned.has(g) ? STATUS.ERROR_PPN_LOCKED : w & pinned ? STATUS.ERROR_PPN_PINNED : STATUS.SUCCESS;
    const st = v.s.call(CMD.LOCK, g);
    if (st !== want) throw new Error(`VM ${v.s.vm.id} LOCK gfn ${g} (p2m 0x${w.toString(16)}): status ${st}, expected ${want}`);
    if (st === STATUS.ERROR_PPN_PINNED) this.s.seen.pinned++;
    if (st !== STATUS.SUCCESS) return;
    this.s.seen.locks++;
    if (w & (P2M.SHARED | P2M.SWAPPED)) this.s.seen.lockedShared++;
    v.ballooned.add(g);
    v.page(g).fill(0); // the guest gave the page away: its content is gone
  }

  /** The driver restarts (START): the host pops the balloon, every ballooned gfn reads zeros. */
  private restart(v: ModelVm): void {
    if (v.s.call(CMD.START, 2) !== STATUS.SUCCESS_WITH_CAPABILITIES) throw new Error('balloon START failed');
    if (v.ballooned.size > 0) this.s.seen.restarts++;
    v.ballooned.clear();
    v.needsStart = false;
  }

  private unlock(v: ModelVm, i: number): void {
    if (v.needsStart || v.ballooned.size === 0) return;
    const g = [...v.ballooned].sort((a, b) => a - b)[i % v.ballooned.size];
    const st = v.s.call(CMD.UNLOCK, g);
    if (st !== STATUS.SUCCESS) throw new Error(`VM ${v.s.vm.id} UNLOCK gfn ${g}: status ${st}`);
    v.ballooned.delete(g);
  }

  // ── checks ──────────────────────────────────────────────────────────────────────

  /** Everything, without swapping in or backing anything. */
  check(): void {
    for (const v of this.live()) this.checkContents(v);
    this.checkFrames();
    this.s.sharing.checkInvariants();
  }

  /** Every gfn's bytes (host frame or swap slot) equal the reference; balloon state matches. */
  private checkContents(v: ModelVm): void {
    const { vm, dev } = v.s;
    const frame = hostFrameView(this.s);
    const trapped = new Set<number>(this.s.sampler.trapped(vm));
    let ballooned = 0;
    vm.p2m.forEach((gfn, w) => {
      const g = gfn as number;
      const what = `VM ${vm.id} (${vm.mode}) gfn ${g} (p2m 0x${w.toString(16)})`;
      if (w & P2M.BALLOONED) {
        if (!v.ballooned.has(g)) throw new Error(`${what}: ballooned, but the model has it in use`);
        ballooned++;
        return;
      }
      if (v.ballooned.has(g)) throw new Error(`${what}: the model has it ballooned`);
      if (((w & P2M.TRAPPED) !== 0) !== trapped.has(g)) throw new Error(`${what}: trap state differs from the sampler's`);
      if (w & P2M.PRESENT) sameBytes(frame(frameField(w)), v.page(g), what);
      else if (w & P2M.SWAPPED) sameBytes(this.s.swap.file.read(frameField(w)), v.page(g), `${what} in swap`);
      else if (!isZero(v.page(g))) throw new Error(`${what}: unbacked, but the reference holds data`);
    });
    if (ballooned !== v.ballooned.size || dev.size !== ballooned) {
      throw new Error(`VM ${vm.id}: ${ballooned} ballooned gfns, model ${v.ballooned.size}, device size ${dev.size}`);
    }
    const slots = new Set<number>();
    vm.p2m.forEach((_g, w) => slots.add(frameField(w)), P2M.SWAPPED, P2M.SWAPPED);
    const held = this.s.swap.slotsOf(vm);
    if (held.length !== slots.size || held.some((sl) => !slots.has(sl))) {
      throw new Error(`VM ${vm.id}: swap holds slots [${held}], the p2m names [${[...slots].sort((a, b) => a - b)}]`);
    }
  }

  /** Exact frame accounting and ownership: a VM's p2m reaches only its own frames or shared ones. */
  private checkFrames(): void {
    const f = this.s.hv.frames;
    const privateFrames = new Set<number>(), sharedFrames = new Set<number>();
    let used = 0, tables = 0;
    for (const { s: { vm } } of this.live()) {
      let mine = 0;
      vm.p2m.forEach((g, w) => {
        const h = frameField(w), owner = f.ownerOf(h as Hfn);
        if (w & P2M.SHARED) {
          if (owner !== SHARED_OWNER) throw new Error(`VM ${vm.id} gfn ${g}: shared frame ${h} is owned by ${owner}`);
          sharedFrames.add(h);
          return;
        }
        if (owner !== vm.id) throw new Error(`VM ${vm.id} gfn ${g} maps frame ${h} owned by ${owner}: another VM's bytes are visible`);
        if (privateFrames.has(h)) throw new Error(`VM ${vm.id} gfn ${g}: private frame ${h} is mapped twice`);
        privateFrames.add(h);
        mine++;
      }, P2M.PRESENT, P2M.PRESENT);
      if (f.usedBy(vm.id) !== mine) throw new Error(`VM ${vm.id} owns ${f.usedBy(vm.id)} frames, its p2m maps ${mine} private ones`);
      used += mine;
      tables += vm.stats.tableFrames;
    }
    for (const h of sharedFrames) if (privateFrames.has(h)) throw new Error(`frame ${h} is both shared and private`);
    if (f.usedBy(SHARED_OWNER) !== sharedFrames.size) {
      throw new Error(`page sharing owns ${f.usedBy(SHARED_OWNER)} frames, p2ms map ${sharedFrames.size} distinct shared frames`);
    }
    const c = f.counts();
    if (c.hypervisor !== tables) throw new Error(`hypervisor pool: ${c.hypervisor} frames used, VMs count ${tables} table frames`);
    if (used + sharedFrames.size + c.free + c.hypervisor !== c.total) {
      throw new Error(`frames: ${used} private + ${sharedFrames.size} shared + ${c.free} free + ${c.hypervisor} hypervisor ≠ ${c.total}`);
    }
    const swapped = this.live().reduce((n, v) => n + v.s.vm.p2m.count(P2M.SWAPPED, P2M.SWAPPED), 0);
    const st = this.s.swap.stats();
    if (st.slotsInUse !== swapped || this.s.swap.file.freeSlots !== this.s.swap.file.capacity - swapped) {
      throw new Error(`swap: ${st.slotsInUse} slots in use, ${this.s.swap.file.freeSlots} free; ${swapped} swapped gfns`);
    }
  }

  /** Every gfn of every VM read through vm.memory (pages swap in; the pool may need reclaiming). */
  finalCheck(): void {
    for (const v of this.m) {
      const vm: Vm = v.s.vm;
      for (let g = 0; g < vm.frameCount; g++) {
        const at = BigInt(g) << 12n;
        if (v.ballooned.has(g)) { expectThrows(() => vm.memory.read(at, 4096), /ballooned/); continue; }
        sameBytes(withFrames(this.s, v.s, () => vm.memory.read(at, 4096)), v.page(g), `VM ${vm.id} gfn ${g} (final host read)`);
      }
    }
    this.check();
  }

  private live(): ModelVm[] { return this.m.filter((v) => !v.s.vm.isDestroyed); }

  /**
   * Destroys the VMs one by one, starting with VM `first`: the others' memory and the
   * accounting stay exact, and at the end all frames, shared frames, table frames and
   * swap slots have come back.
   */
  teardown(first: number): void {
    for (let i = 0; i < this.m.length; i++) {
      this.s.hv.destroyVm(this.m[(first + i) % this.m.length].s.vm);
      this.check();
    }
    const c = this.s.hv.counts();
    const left = { byVm: c.byVm, shared: this.s.hv.frames.usedBy(SHARED_OWNER), hypervisor: c.hypervisor, slots: this.s.swap.stats().slotsInUse };
    if (Object.keys(c.byVm).length || left.shared || left.hypervisor || left.slots || c.free !== c.total) {
      throw new Error(`after destroying every VM, still held: ${JSON.stringify(left)}`);
    }
  }
}

function le64(v: bigint): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, v, true);
  return b;
}

const ZERO_PAGE = Buffer.alloc(4096);
const isZero = (b: Uint8Array): boolean => ZERO_PAGE.equals(b);

/** A view (no copy) of one host frame's bytes; valid until the core's memory grows. */
function hostFrameView(s: Sys): (hfn: number) => Uint8Array {
  const { core, memory } = s.hv.machine;
  return (hfn) => new Uint8Array(core.memory.buffer, memory.base + Number(hpaOf(hfn as Hfn)), 4096);
}

/** Byte equality (fast), naming the first difference. */
export function sameBytes(actual: Uint8Array, want: Uint8Array, what: string): void {
  if (Buffer.from(actual.buffer, actual.byteOffset, actual.length).equals(Buffer.from(want.buffer, want.byteOffset, want.length))) return;
  let i = 0;
  while (i < want.length && actual[i] === want[i]) i++;
  throw new Error(`${what}: bytes differ at offset ${i}: got ${actual[i]}, reference ${want[i]}`);
}

function expectThrows(fn: () => unknown, msg: RegExp): void {
  try { fn(); } catch (e) {
    if (msg.test((e as Error).message)) return;
    throw e;
  }
  throw new Error(`expected an error matching ${msg}`);
}
