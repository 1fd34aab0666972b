// Page hashing and comparison for content-based page sharing, batched: the host hands in
// an array of host frame numbers and gets one result per frame from a single call, so a
// sharing scanner never crosses the JS/Wasm boundary once per page.
//
// The hash is xxHash64 (Collet; the checksum Linux KSM uses since 5.x), seed 0, exactly
// as the reference implementation computes it, so values can be checked against libxxhash:
//
//   len ≥ 32: four accumulators v1..v4 eat 32-byte stripes (one u64 lane each):
//             round(acc, lane) = rotl(acc + lane·P2, 31)·P1
//             h = rotl(v1,1)+rotl(v2,7)+rotl(v3,12)+rotl(v4,18), then each v merged in:
//             h = (h ^ round(0, v))·P1 + P4
//   len < 32: h = seed + P5
//   then h += len, the tail is mixed in 8-, 4- and 1-byte steps, and a final avalanche.
//
// Buffers (all in linear memory, little-endian):
//   hfns  u32[count]  host frame numbers (hpa = hfn << 12)
//   out   u64[count]  hashes (hashFrames)  ·  u8[count] 1/0 (framesEqual, zeroFrames)
// Each batch function returns the number of frames it processed: `count`, or the index
// of the first frame outside host memory (nothing is written for it or after it).

import { physInRange, physPtr } from "./mem";

const P1: u64 = 0x9E3779B185EBCA87;
const P2: u64 = 0xC2B2AE3D27D4EB4F;
const P3: u64 = 0x165667B19E3779F9;
const P4: u64 = 0x85EBCA77C2B2AE63;
const P5: u64 = 0x27D4EB2F165667C5;
const FRAME: u64 = 4096;

@inline function round(acc: u64, lane: u64): u64 {
  return rotl<u64>(acc + lane * P2, 31) * P1;
}

@inline function mergeRound(h: u64, v: u64): u64 {
  return (h ^ round(0, v)) * P1 + P4;
}

/** xxHash64 of `len` bytes at linear-memory address p. */
function xxh64(p: usize, len: usize, seed: u64): u64 {
  let end = p + len;
  let h: u64;
  if (len >= 32) {
    let v1 = seed + P1 + P2, v2 = seed + P2, v3 = seed, v4 = seed - P1;
    let limit = end - 32;
    do {
      v1 = round(v1, load<u64>(p));
      v2 = round(v2, load<u64>(p, 8));
      v3 = round(v3, load<u64>(p, 16));
      v4 = round(v4, load<u64>(p, 24));
      p += 32;
    } while (p <= limit);
    h = rotl<u64>(v1, 1) + rotl<u64>(v2, 7) + rotl<u64>(v3, 12) + rotl<u64>(v4, 18);
    h = mergeRound(h, v1);
    h = mergeRound(h, v2);
    h = mergeRound(h, v3);
    h = mergeRound(h, v4);
  } else {
    h = seed + P5;
  }
  h += <u64>len;
  while (p + 8 <= end) {
    h ^= round(0, load<u64>(p));
    h = rotl<u64>(h, 27) * P1 + P4;
    p += 8;
  }
  if (p + 4 <= end) {
    h ^= <u64>load<u32>(p) * P1;
    h = rotl<u64>(h, 23) * P2 + P3;
    p += 4;
  }
  while (p < end) {
    h ^= <u64>load<u8>(p) * P5;
    h = rotl<u64>(h, 11) * P1;
    p++;
  }
  h ^= h >> 33;
  h *= P2;
  h ^= h >> 29;
  h *= P3;
  h ^= h >> 32;
  return h;
}

/** Linear address of frame hfn, or 0 if the frame is outside host memory. */
@inline function framePtr(hfn: u32): usize {
  let pa = <u64>hfn << 12;
  return physInRange(pa, FRAME) ? physPtr(pa) : 0;
}

/** xxHash64 of the physical range [pa, pa+len); 0 if the range is outside memory. */
export function physXxh64(pa: u64, len: u64, seed: u64): u64 {
  if (!physInRange(pa, len)) return 0;
  return xxh64(physPtr(pa), <usize>len, seed);
}

/** out[i] = xxHash64 (seed 0) of frame hfns[i]. */
export function hashFrames(hfns: usize, count: u32, out: usize): u32 {
  for (let i: u32 = 0; i < count; i++) {
    let p = framePtr(load<u32>(hfns + (<usize>i << 2)));
    if (p === 0) return i;
    store<u64>(out + (<usize>i << 3), xxh64(p, <usize>FRAME, 0));
  }
  return count;
}

/** out[i] = 1 if frames a[i] and b[i] hold the same 4096 bytes, else 0. */
export function framesEqual(a: usize, b: usize, count: u32, out: usize): u32 {
  for (let i: u32 = 0; i < count; i++) {
    let pa = framePtr(load<u32>(a + (<usize>i << 2)));
    let pb = framePtr(load<u32>(b + (<usize>i << 2)));
    if (pa === 0 || pb === 0) return i;
    let same: u8 = 1;
    for (let off: usize = 0; off < <usize>FRAME; off += 32) {
      // Four lanes per step; any difference ends the frame.
      let d = (load<u64>(pa + off) ^ load<u64>(pb + off)) | (load<u64>(pa + off, 8) ^ load<u64>(pb + off, 8)) |
              (load<u64>(pa + off, 16) ^ load<u64>(pb + off, 16)) | (load<u64>(pa + off, 24) ^ load<u64>(pb + off, 24));
      if (d !== 0) { same = 0; break; }
    }
    store<u8>(out + <usize>i, same);
  }
  return count;
}

/** out[i] = 1 if frame hfns[i] is all zero bytes, else 0. */
export function zeroFrames(hfns: usize, count: u32, out: usize): u32 {
  for (let i: u32 = 0; i < count; i++) {
    let p = framePtr(load<u32>(hfns + (<usize>i << 2)));
    if (p === 0) return i;
    let zero: u8 = 1;
    for (let off: usize = 0; off < <usize>FRAME; off += 32) {
      if ((load<u64>(p + off) | load<u64>(p + off, 8) | load<u64>(p + off, 16) | load<u64>(p + off, 24)) !== 0) {
        zero = 0; break;
      }
    }
    store<u8>(out + <usize>i, zero);
  }
  return count;
}
