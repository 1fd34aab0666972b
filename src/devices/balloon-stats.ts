// Per-VM balloon statistics, kept apart from the device logic (as Firecracker keeps
// metrics.rs apart from device.rs): the device reports events through BalloonEvents; this
// module only counts them. Example snapshot():
//
//   { target: 4096, size: 2048, inflated: 2560, deflated: 512, refused: 3, errors: 1,
//     violations: 2, resets: 1, commands: 41, inflateRate: 512, deflateRate: 0 }
//
// Sizes and counts are in 4 KiB frames (a 2 MiB page counts 512). Rates are frames per
// simulated second, over the last whole second of the clock when one is given (null
// without a clock: the device has no notion of time).

/** What the balloon device reports. Implementations must not throw. */
export interface BalloonEvents {
  command(cmd: number, status: number): void;
  inflated(frames: number): void;
  deflated(frames: number): void;
  refused(frames: number): void;
  /** Host-side failures that are not the guest's fault (a frame the host could not free...). */
  error(message: string): void;
  violation(kind: string): void;
  /** The balloon was popped (START, or a guest touched a ballooned page). */
  popped(frames: number): void;
}

export interface BalloonStatsSnapshot {
  target: number; size: number;
  inflated: number; deflated: number; refused: number; errors: number;
  violations: number; violationsByKind: Record<string, number>;
  resets: number; popped: number; commands: number; statusCounts: Record<number, number>;
  /** Frames per simulated second over the last completed second (null without a clock). */
  inflateRate: number | null; deflateRate: number | null;
}

export class BalloonStats implements BalloonEvents {
  private inflatedTotal = 0; private deflatedTotal = 0; private refusedTotal = 0;
  private errorsTotal = 0; private violationsTotal = 0; private pops = 0; private poppedFrames = 0;
  private commands = 0;
  private readonly statusCounts: Record<number, number> = {};
  private readonly violationsByKind: Record<string, number> = {};
  readonly lastErrors: string[] = [];
  // rate window: counts at the start of the current second, and the last second's deltas
  private second = 0; private markIn = 0; private markOut = 0;
  private lastIn: number | null = null; private lastOut: number | null = null;

  /** `clock` returns simulated seconds; `source` the device's current target and size. */
  constructor(private readonly source: { readonly target: number; readonly size: number },
              private readonly clock?: () => number) {
    if (clock) this.second = Math.floor(clock());
  }

  private roll(): void {
    if (!this.clock) return;
    const now = Math.floor(this.clock());
    if (now <= this.second) return;
    const idleGap = now - this.second > 1; // a second with no events in between has rate 0
    this.lastIn = idleGap ? 0 : this.inflatedTotal - this.markIn;
    this.lastOut = idleGap ? 0 : this.deflatedTotal - this.markOut;
    this.markIn = this.inflatedTotal; this.markOut = this.deflatedTotal;
    this.second = now;
  }

  command(_cmd: number, status: number): void {
    this.roll();
    this.commands++;
    this.statusCounts[status] = (this.statusCounts[status] ?? 0) + 1;
  }
  inflated(frames: number): void { this.roll(); this.inflatedTotal += frames; }
  deflated(frames: number): void { this.roll(); this.deflatedTotal += frames; }
  refused(frames: number): void { this.refusedTotal += frames; }
  error(message: string): void {
    this.errorsTotal++;
    if (this.lastErrors.length < 64) this.lastErrors.push(message);
  }
  violation(kind: string): void {
    this.violationsTotal++;
    this.violationsByKind[kind] = (this.violationsByKind[kind] ?? 0) + 1;
  }
  popped(frames: number): void { this.pops++; this.poppedFrames += frames; }

  snapshot(): BalloonStatsSnapshot {
    this.roll();
    return {
      target: this.source.target, size: this.source.size,
      inflated: this.inflatedTotal, deflated: this.deflatedTotal, refused: this.refusedTotal,
      errors: this.errorsTotal, violations: this.violationsTotal, violationsByKind: { ...this.violationsByKind },
      resets: this.pops, popped: this.poppedFrames, commands: this.commands, statusCounts: { ...this.statusCounts },
      inflateRate: this.clock ? this.lastIn ?? 0 : null, deflateRate: this.clock ? this.lastOut ?? 0 : null,
    };
  }
}
