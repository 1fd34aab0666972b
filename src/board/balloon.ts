// Wires a VM's balloon: the device (protocol and strict checks, src/devices) over the
// hypervisor's backend (the memory work, src/hypervisor/pagers). Wiring is the board's job,
// so neither layer imports the other's classes.

import { BalloonDevice, type BalloonDeviceOptions } from '../devices/balloon.js';
import { VmBalloonBackend } from '../hypervisor/pagers/balloon-backend.js';
import type { HostFrames } from '../hypervisor/monitor/frames.js';
import type { Vm } from '../hypervisor/monitor/vm.js';

/** A balloon device for vm whose memory work is done by this hypervisor's backend. */
export function createBalloonDevice(vm: Vm, frames: HostFrames, o: BalloonDeviceOptions = {}): BalloonDevice {
  return new BalloonDevice(new VmBalloonBackend(vm, frames), o);
}
