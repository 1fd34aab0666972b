// The host balloon device of one VM: it decodes the VMware balloon protocol
// (balloon-protocol.ts) behind the backdoor port (backdoor.ts) and keeps the strict checks.
// The memory work (unmap, free, discard) is the hypervisor's: the device asks a
// BalloonBackend (src/hypervisor balloon backend), as Firecracker's device.rs leaves it
// to util::remove_range.
//
// - LOCK has the backend take the gfn out of the VM (p2m state BALLOONED, EPT entry and
//   host frame freed); UNLOCK makes it unbacked again (zero-filled on next touch).
// - Every protocol violation becomes a status code and a recorded BalloonViolation with a
//   message; the device never throws into the guest's run loop and touches only its VM.
// - The host sets the target (setTarget, in 4 KiB frames); it is returned in EBX with
//   every successful "with target" command (GET_TARGET, LOCK, UNLOCK, BATCHED_*).
// - Reset: START pops the host's balloon (the driver popped its own without UNLOCK) and
//   negotiates capabilities. A guest touching a ballooned gfn (classifyBalloonExit) pops
//   the balloon and makes every later command but START answer ERROR_RESET, as ESX does.
//
import type { BackdoorHandler, BackdoorRegs, BackdoorResult } from './backdoor.js';
import type { BalloonEvents } from './balloon-stats.js';
import {
  BALLOON_MAGIC, CMD, CAP, STATUS, BATCH_MAX_ENTRIES, FRAMES_2M, ENTRY_STATUS_MASK, ENTRY_RESERVED_MASK, WITH_TARGET,
  isCommand, cmdName,
} from './balloon-protocol.js';
import { isDoorbellClear, type Doorbell } from './doorbell.js';

export { BALLOON_MAGIC, CMD, CAP, STATUS, BATCH_MAX_ENTRIES, FRAMES_2M, cmdName } from './balloon-protocol.js';
const MAX_LOG = 1024;

/** What the device asks of the hypervisor: the VM's memory as the balloon sees it (gfns are 4 KiB frames). */
export interface BalloonBackend {
  readonly vmId: number;
  /** The VM's size in 4 KiB frames. */
  readonly frameCount: number;
  /** The host cannot take gfn now: a page-table frame the shadow MMU tracks, or already ballooned. */
  pinned(gfn: number): boolean;
  /** Takes gfn out of the VM: drops a shared or swapped copy, unmaps it as ballooned, frees its frame. */
  inflate(gfn: number): void;
  /** Makes gfn unbacked again (zero-filled on next touch). */
  deflate(gfn: number): void;
  /** True if gfn cannot hold a batch page: ballooned or swapped out. */
  absent(gfn: number): boolean;
  read(gpa: bigint, len: number): Uint8Array;
  write(gpa: bigint, data: Uint8Array): void;
  /** True if gpa lies in the VM and its gfn is ballooned. */
  isBallooned(gpa: bigint): boolean;
}

/** The fields of a vCPU exit that classifyBalloonExit reads. */
export interface GuestAccessExit { reason: string; index?: number; gpa?: bigint; gva?: bigint }

export type ViolationKind = 'bad-magic' | 'before-start' | 'not-negotiated' | 'unknown-command' | 'bad-limit' |
  'ppn-out-of-range' | 'ppn-too-wide' | 'double-lock' | 'unlock-unlocked' | 'page-size-mismatch' |
  'malformed-batch' | 'touched-ballooned';

export interface BalloonViolation {
  kind: ViolationKind; message: string; status: number;
  command?: number; gfn?: number; gpa?: bigint; gva?: bigint;
}

export interface BalloonDeviceOptions {
  /** Capabilities the host offers (START grants the intersection with the request). */
  hostCapabilities?: number;
  events?: BalloonEvents;
  /** Rung (SIGNALLED_WAKEUP granted, a doorbell set) when setTarget changes the target. */
  onDoorbell?: (d: Doorbell) => void;
}

type State = 'stopped' | 'running' | 'reset-pending';

export class BalloonDevice implements BackdoorHandler {
  readonly hostCapabilities: number;
  /** Where the device reports events (BalloonStats, kept apart from the device logic). */
  readonly events?: BalloonEvents;
  /** Capabilities granted by the last START (0 before it). */
  capabilities = 0;
  /** Guest type from GUEST_ID (1 = Linux), or null. */
  guestId: number | null = null;
  doorbell: Doorbell | null = null;
  /** Where the doorbell rings (the board injects an interrupt); see doorbell.ts. */
  onDoorbell: ((d: Doorbell) => void) | null;
  /** Times the doorbell was rung. */
  doorbellRings = 0;
  /** Host knob: while set, LOCK/UNLOCK commands answer ERROR_BUSY (a host that cannot serve now). */
  busy = false;
  /** Violations seen (count) and the first MAX_LOG of them. */
  violationCount = 0;
  readonly violations: BalloonViolation[] = [];
  private state: State = 'stopped';
  private targetFrames = 0;
  private sizeFrames = 0;
  private readonly units = new Map<number, number>(); // base gfn → frames (1 or 512)

  constructor(private back: BalloonBackend, o: BalloonDeviceOptions = {}) {
    this.hostCapabilities = o.hostCapabilities ?? (CAP.BASIC_CMDS | CAP.BATCHED_CMDS | CAP.BATCHED_2M_CMDS);
    this.events = o.events;
    this.onDoorbell = o.onDoorbell ?? null;
  }

  /** Where the device's memory work goes (the hypervisor's side). */
  get backend(): BalloonBackend { return this.back; }

  /**
   * The VM moved to another host (live migration): later memory work goes to `b`, a
   * backend of the same VM size there. The protocol state (started, capabilities, target,
   * the locked pages) moves with the device unchanged; the ballooned gfns' p2m state came
   * over with the memory.
   */
  rebind(b: BalloonBackend): void {
    if (b.frameCount !== this.back.frameCount) throw new RangeError(`balloon rebind: the VM had ${this.back.frameCount} frames, the new backend ${b.frameCount}`);
    this.back = b;
  }

  /** Bytes of device state a migration carries: protocol registers and one 12-byte record per locked unit. */
  get stateBytes(): number { return 64 + 12 * this.units.size; }

  /** The host's target, in 4 KiB frames (0..the VM's frame count). */
  get target(): number { return this.targetFrames; }
  /** Frames in the balloon (a 2 MiB page counts 512). */
  get size(): number { return this.sizeFrames; }
  get protocolState(): State { return this.state; }

  setTarget(frames: number): void {
    if (!Number.isInteger(frames) || frames < 0 || frames > this.backend.frameCount) {
      throw new RangeError(`balloon target must be 0..${this.backend.frameCount} frames, got ${frames}`);
    }
    const changed = frames !== this.targetFrames;
    this.targetFrames = frames;
    if (changed) this.ring();
  }

  /** SIGNALLED_WAKEUP: tell the guest's worker to run now (Linux's doorbell callback). */
  private ring(): void {
    if (!this.doorbell || !(this.capabilities & CAP.SIGNALLED_WAKEUP_CMD) || this.state !== 'running') return;
    this.doorbellRings++;
    this.onDoorbell?.(this.doorbell);
  }

  /** Makes every later command but START answer ERROR_RESET (host-initiated reset). */
  requestReset(): void { if (this.state === 'running') this.state = 'reset-pending'; }

  /** True if gfn is in the balloon. */
  isLocked(gfn: number): boolean { return this.unitOf(gfn) !== null; }

  /** One backdoor call. Never throws: a host-side failure is reported and answered ERROR_BUSY. */
  call(r: Readonly<BackdoorRegs>): BackdoorResult {
    const cmd = r.ecx >>> 0;
    let res: BackdoorResult;
    try {
      res = this.dispatch(cmd, r);
    } catch (e) {
      this.events?.error(`balloon of VM ${this.backend.vmId}: ${cmdName(cmd)}: ${(e as Error).message}`);
      res = { eax: STATUS.ERROR_BUSY };
    }
    if (res.eax === STATUS.SUCCESS && WITH_TARGET.has(cmd)) res.rbx = BigInt(this.targetFrames);
    this.events?.command(cmd, res.eax);
    return res;
  }

  private dispatch(cmd: number, r: Readonly<BackdoorRegs>): BackdoorResult {
    if (r.eax >>> 0 !== BALLOON_MAGIC) {
      return this.violate('bad-magic', `EAX = 0x${(r.eax >>> 0).toString(16)} is not the balloon magic 0x456c6d6f`, STATUS.ERROR_CMD_INVALID, { command: cmd });
    }
    if (cmd === CMD.START) return this.start(r.rbx);
    // Linux clears its doorbell first in every reset (even before START) and at unload.
    if (cmd === CMD.VMCI_DOORBELL_SET && isDoorbellClear(r)) { this.doorbell = null; return { eax: STATUS.SUCCESS, rbx: 0n }; }
    if (!isCommand(cmd)) {
      return this.violate('unknown-command', `command ${cmd} does not exist`, STATUS.ERROR_CMD_INVALID, { command: cmd });
    }
    if (this.state === 'stopped') {
      return this.violate('before-start', `${cmdName(cmd)} before START`, STATUS.ERROR_RESET, { command: cmd });
    }
    if (this.state === 'reset-pending') return { eax: STATUS.ERROR_RESET };
    const need = cmd === CMD.LOCK || cmd === CMD.UNLOCK ? CAP.BASIC_CMDS
      : cmd === CMD.BATCHED_LOCK || cmd === CMD.BATCHED_UNLOCK ? CAP.BATCHED_CMDS
      : cmd === CMD.BATCHED_2M_LOCK || cmd === CMD.BATCHED_2M_UNLOCK ? CAP.BATCHED_2M_CMDS
      : cmd === CMD.VMCI_DOORBELL_SET ? CAP.SIGNALLED_WAKEUP_CMD : 0;
    if (need && !(this.capabilities & need)) {
      return this.violate('not-negotiated', `${cmdName(cmd)} needs capability 0x${need.toString(16)}, not granted by START ` +
        `(granted 0x${this.capabilities.toString(16)})`, STATUS.ERROR_CMD_INVALID, { command: cmd });
    }
    switch (cmd) {
      case CMD.GET_TARGET: {
        const limit = r.rbx;
        if (limit > BigInt(this.backend.frameCount) || limit === 0n) {
          return this.violate('bad-limit', `GET_TARGET limit ${limit} frames: the VM has ${this.backend.frameCount}`, STATUS.ERROR_CMD_INVALID, { command: cmd });
        }
        return { eax: STATUS.SUCCESS };
      }
      case CMD.GUEST_ID: this.guestId = Number(r.rbx & 0xffff_ffffn); return { eax: STATUS.SUCCESS };
      case CMD.VMCI_DOORBELL_SET: this.doorbell = { context: Number(r.rbx & 0xffff_ffffn), resource: r.esi >>> 0 }; return { eax: STATUS.SUCCESS };
      case CMD.LOCK: case CMD.UNLOCK: {
        if (this.busy) return { eax: STATUS.ERROR_BUSY };
        if (r.rbx >= 1n << 32n) {
          return this.violate('ppn-too-wide', `${cmdName(cmd)} PPN 0x${r.rbx.toString(16)} does not fit 32 bits`, STATUS.ERROR_PPN_INVALID, { command: cmd });
        }
        return { eax: this.page(cmd === CMD.LOCK, Number(r.rbx), 1, cmd) };
      }
      default: {
        if (this.busy) return { eax: STATUS.ERROR_BUSY };
        const lock = cmd === CMD.BATCHED_LOCK || cmd === CMD.BATCHED_2M_LOCK;
        const big = cmd === CMD.BATCHED_2M_LOCK || cmd === CMD.BATCHED_2M_UNLOCK;
        return { eax: this.batch(cmd, lock, big ? FRAMES_2M : 1, r.rbx, r.esi >>> 0) };
      }
    }
  }

  /** START: pop the host balloon, grant requested ∩ offered capabilities. */
  private start(requested: bigint): BackdoorResult {
    this.pop();
    this.capabilities = Number(requested & 0xffff_ffffn) & this.hostCapabilities;
    this.state = 'running';
    this.doorbell = null;
    return { eax: STATUS.SUCCESS_WITH_CAPABILITIES, ecx: this.capabilities };
  }

  /** Locks or unlocks one page of `n` frames (1 or 512) at gfn; returns its status. */
  private page(lock: boolean, gfn: number, n: number, cmd: number): number {
    const where = { command: cmd, gfn };
    if (gfn < 0 || gfn + n > this.backend.frameCount) {
      return this.violate('ppn-out-of-range', `${cmdName(cmd)} PPN 0x${gfn.toString(16)} is outside the VM ` +
        `(${this.backend.frameCount} frames)`, STATUS.ERROR_PPN_INVALID, where).eax;
    }
    if (n > 1 && gfn % n !== 0) {
      return this.violate('malformed-batch', `${cmdName(cmd)} PPN 0x${gfn.toString(16)} is not 2 MiB-aligned`, STATUS.ERROR_PPN_INVALID, where).eax;
    }
    return lock ? this.lock(gfn, n, cmd) : this.unlock(gfn, n, cmd);
  }

  private lock(gfn: number, n: number, cmd: number): number {
    for (let g = gfn; g < gfn + n; g++) {
      if (this.unitOf(g) !== null) {
        return this.violate('double-lock', `${cmdName(cmd)} PPN 0x${g.toString(16)} is already in the balloon`,
          STATUS.ERROR_PPN_LOCKED, { command: cmd, gfn: g }).eax;
      }
    }
    if (this.sizeFrames >= this.targetFrames) { this.events?.refused(n); return STATUS.ERROR_PPN_NOTNEEDED; }
    for (let g = gfn; g < gfn + n; g++) {
      // The host cannot take page-table frames the shadow MMU tracks (not the guest's fault).
      if (this.backend.pinned(g)) {
        this.events?.refused(n);
        return STATUS.ERROR_PPN_PINNED;
      }
    }
    for (let g = gfn; g < gfn + n; g++) this.backend.inflate(g);
    this.units.set(gfn, n);
    this.sizeFrames += n;
    this.events?.inflated(n);
    return STATUS.SUCCESS;
  }

  private unlock(gfn: number, n: number, cmd: number): number {
    const u = this.unitOf(gfn);
    if (u === null) {
      return this.violate('unlock-unlocked', `${cmdName(cmd)} PPN 0x${gfn.toString(16)} was never locked`,
        STATUS.ERROR_PPN_UNLOCKED, { command: cmd, gfn }).eax;
    }
    if (u.base !== gfn || u.frames !== n) {
      return this.violate('page-size-mismatch', `${cmdName(cmd)} PPN 0x${gfn.toString(16)}: it was locked as a ` +
        `${u.frames === 1 ? '4 KiB' : '2 MiB'} page at 0x${u.base.toString(16)}`, STATUS.ERROR_PPN_UNLOCKED, { command: cmd, gfn }).eax;
    }
    this.release(gfn, n);
    this.events?.deflated(n);
    return STATUS.SUCCESS;
  }

  /** Makes the unit's gfns unbacked again (zero-filled on next touch). */
  private release(gfn: number, n: number): void {
    for (let g = gfn; g < gfn + n; g++) this.backend.deflate(g);
    this.units.delete(gfn);
    this.sizeFrames -= n;
  }

  private batch(cmd: number, lock: boolean, n: number, pfn: bigint, count: number): number {
    const where = { command: cmd };
    if (count < 1 || count > BATCH_MAX_ENTRIES) {
      return this.violate('malformed-batch', `${cmdName(cmd)} with ${count} entries: a batch page holds 1..${BATCH_MAX_ENTRIES}`,
        STATUS.ERROR_CMD_INVALID, where).eax;
    }
    if (pfn >= BigInt(this.backend.frameCount)) {
      return this.violate('malformed-batch', `${cmdName(cmd)} batch page PFN 0x${pfn.toString(16)} is outside the VM`,
        STATUS.ERROR_PPN_INVALID, where).eax;
    }
    const page = Number(pfn);
    if (this.backend.absent(page)) {
      return this.violate('malformed-batch', `${cmdName(cmd)} batch page PFN 0x${page.toString(16)} is ballooned or swapped out`,
        STATUS.ERROR_PPN_INVALID, { command: cmd, gfn: page }).eax;
    }
    const at = pfn << 12n;
    const bytes = this.backend.read(at, count * 8);
    const dv = new DataView(bytes.buffer);
    for (let i = 0; i < count; i++) {
      const e = dv.getBigUint64(i * 8, true);
      const gfn = e >> 12n;
      let st: number;
      if (e & (ENTRY_RESERVED_MASK | ENTRY_STATUS_MASK)) {
        st = this.violate('malformed-batch', `${cmdName(cmd)} entry ${i} = 0x${e.toString(16)}: reserved or status bits set`,
          STATUS.ERROR_PPN_INVALID, { command: cmd }).eax;
      } else if (gfn >= BigInt(this.backend.frameCount)) {
        st = this.violate('ppn-out-of-range', `${cmdName(cmd)} entry ${i} PPN 0x${gfn.toString(16)} is outside the VM ` +
          `(${this.backend.frameCount} frames)`, STATUS.ERROR_PPN_INVALID, { command: cmd }).eax;
      } else if (lock && Number(gfn) % n === 0 && page >= Number(gfn) && page < Number(gfn) + n) {
        st = this.violate('malformed-batch', `${cmdName(cmd)} entry ${i} locks the batch page itself`,
          STATUS.ERROR_PPN_PINNED, { command: cmd, gfn: page }).eax;
      } else {
        st = this.page(lock, Number(gfn), n, cmd);
      }
      dv.setBigUint64(i * 8, (e & ~ENTRY_STATUS_MASK) | BigInt(st & 0x1f), true);
    }
    this.backend.write(at, bytes);
    return STATUS.SUCCESS;
  }

  /** Returns every ballooned gfn to the VM (unbacked) without UNLOCKs; the host forgets the balloon. */
  pop(): number {
    const frames = this.sizeFrames;
    for (const [g, n] of [...this.units]) this.release(g, n);
    if (frames > 0) this.events?.popped(frames);
    return frames;
  }

  /**
   * The guest touched a ballooned gfn without deflating it first: record it, pop the
   * balloon (so the access can be retried on a fresh zeroed frame) and require a reset.
   */
  guestTouched(gpa: bigint, gva?: bigint): BalloonViolation {
    const gfn = Number(gpa >> 12n);
    const v = this.record('touched-ballooned', `guest touched ballooned gpa 0x${gpa.toString(16)} (gfn 0x${gfn.toString(16)})` +
      (gva !== undefined ? ` at gva 0x${gva.toString(16)}` : '') + ' without deflating it first', STATUS.ERROR_RESET,
      { gfn, gpa, gva });
    this.pop();
    this.requestReset();
    return v;
  }

  private unitOf(gfn: number): { base: number; frames: number } | null {
    const f = this.units.get(gfn);
    if (f !== undefined) return { base: gfn, frames: f };
    const base = gfn - (gfn % FRAMES_2M);
    return this.units.get(base) === FRAMES_2M ? { base, frames: FRAMES_2M } : null;
  }

  private record(kind: ViolationKind, message: string, status: number, at: Partial<BalloonViolation> = {}): BalloonViolation {
    const v: BalloonViolation = { kind, message: `VM ${this.backend.vmId} balloon: ${message}`, status, ...at };
    this.violationCount++;
    if (this.violations.length < MAX_LOG) this.violations.push(v);
    this.events?.violation(kind);
    return v;
  }

  private violate(kind: ViolationKind, message: string, status: number, at?: Partial<BalloonViolation>): BackdoorResult {
    this.record(kind, message, status, at);
    return { eax: status };
  }
}

/**
 * For the run-loop caller: an exit caused by the guest touching a ballooned gfn (nested:
 * EPT_VIOLATION with the p2m showing BALLOONED; shadow: the exit naming the gpa) is a
 * balloon violation. It is recorded and the balloon popped; resume at `resumeAt` (the
 * access is retried on a fresh zeroed frame). Any other exit returns null.
 */
export function classifyBalloonExit(dev: BalloonDevice, x: GuestAccessExit): { violation: BalloonViolation; resumeAt: number } | null {
  if (x.reason !== 'EPT_VIOLATION' && x.reason !== 'WRITE_PROTECT') return null;
  if (x.gpa === undefined || x.index === undefined || !dev.backend.isBallooned(x.gpa)) return null;
  return { violation: dev.guestTouched(x.gpa, x.gva), resumeAt: x.index };
}
