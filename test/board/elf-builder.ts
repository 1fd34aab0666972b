// A tiny ELF64 writer for loader tests: an ET_EXEC x86-64 file from a list of segments
// (header, program headers, then each segment's bytes at a 4 KiB-aligned file offset).
export interface SegSpec { vaddr: bigint; paddr: bigint; flags: number; data: Uint8Array; memsz?: bigint; type?: number }
export interface ElfSpec {
  entry: bigint; segments: SegSpec[];
  /** Header overrides for the negative tests. */
  klass?: number; data?: number; machine?: number; etype?: number; phentsize?: number;
}

export function buildElf(s: ElfSpec): Uint8Array {
  const phoff = 64, n = s.segments.length;
  let off = Math.ceil((phoff + 56 * n) / 4096) * 4096;
  const offsets = s.segments.map((seg) => { const o = off; off += Math.ceil(seg.data.length / 4096) * 4096 || 4096; return o; });
  const out = new Uint8Array(off);
  const dv = new DataView(out.buffer);
  out.set([0x7f, 0x45, 0x4c, 0x46, s.klass ?? 2, s.data ?? 1, 1, 0]);
  dv.setUint16(0x10, s.etype ?? 2, true);
  dv.setUint16(0x12, s.machine ?? 62, true);
  dv.setUint32(0x14, 1, true);
  dv.setBigUint64(0x18, s.entry, true);
  dv.setBigUint64(0x20, BigInt(phoff), true);
  dv.setUint16(0x34, 64, true);
  dv.setUint16(0x36, s.phentsize ?? 56, true);
  dv.setUint16(0x38, n, true);
  s.segments.forEach((seg, i) => {
    const p = phoff + 56 * i;
    dv.setUint32(p, seg.type ?? 1, true);
    dv.setUint32(p + 4, seg.flags, true);
    dv.setBigUint64(p + 8, BigInt(offsets[i]), true);
    dv.setBigUint64(p + 0x10, seg.vaddr, true);
    dv.setBigUint64(p + 0x18, seg.paddr, true);
    dv.setBigUint64(p + 0x20, BigInt(seg.data.length), true);
    dv.setBigUint64(p + 0x28, seg.memsz ?? BigInt(seg.data.length), true);
    dv.setBigUint64(p + 0x30, 0x1000n, true);
    out.set(seg.data, offsets[i]);
  });
  return out;
}

/** Little-endian u64 words as bytes. */
export function words(ws: bigint[]): Uint8Array {
  const b = new Uint8Array(ws.length * 8);
  const dv = new DataView(b.buffer);
  ws.forEach((w, i) => dv.setBigUint64(i * 8, BigInt.asUintN(64, w), true));
  return b;
}
