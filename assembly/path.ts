// The walk path of a vCPU's last translation (Cpu.path, 20 × u64), as a typed view over
// the raw record (a pointer, no allocation; @unmanaged like rt/tlsf.ts's Block). The host
// reads the first ten words (src/core/cpu.ts lastWalk).
//
//   byte  0 .. 39   entry[level]      the paging entry read at level 1..5 (guest's, in nested mode)
//   byte 40 .. 79   entryPa[level]    its physical address (host-physical)
//   byte 80 .. 119  eptEntryPa[level] the EPT entry read at EPT level 1..5 (last EPT walk)
//   byte 120 .. 139 eptRights[level]  u32: EPT R/W/X rights through that level
//
// The asserts are invariants of the debug build (asconfig's release target sets noAssert).

@unmanaged export class WalkPath {
  @inline entry(level: u32): u64 { return load<u64>(changetype<usize>(this) + (<usize>level << 3) - 8); }
  @inline setEntry(level: u32, v: u64): void { assert(level >= 1 && level <= 5); store<u64>(changetype<usize>(this) + (<usize>level << 3) - 8, v); }
  @inline entryPa(level: u32): u64 { return load<u64>(changetype<usize>(this) + (<usize>level << 3) + 32); }
  @inline setEntryPa(level: u32, pa: u64): void { assert(level >= 1 && level <= 5); store<u64>(changetype<usize>(this) + (<usize>level << 3) + 32, pa); }
  @inline eptEntryPa(level: u32): u64 { return load<u64>(changetype<usize>(this) + 80 + (<usize>level << 3) - 8); }
  @inline setEptEntryPa(level: u32, pa: u64): void { assert(level >= 1 && level <= 5); store<u64>(changetype<usize>(this) + 80 + (<usize>level << 3) - 8, pa); }
  @inline eptRights(level: u32): u32 { return load<u32>(changetype<usize>(this) + 80 + (<usize>level << 2) + 36); }
  @inline setEptRights(level: u32, r: u32): void { assert(level >= 1 && level <= 5 && r <= 7); store<u32>(changetype<usize>(this) + 80 + (<usize>level << 2) + 36, r); }
}

@inline export function walkPath(p: usize): WalkPath { return changetype<WalkPath>(p); }
