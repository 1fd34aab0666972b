// ELF64 executable parsing for the machine-code guest loader: the header and the PT_LOAD
// program headers of an x86-64 kernel, validated before anything touches guest memory
// (a refused file leaves the VM as it was).
//
// ELF64 header (64 bytes, little-endian)       Program header (56 bytes each)
//  0x00 e_ident[16]: 7f 'E' 'L' 'F', class 2     0x00 p_type   (1 = PT_LOAD)
//       (64-bit), data 1 (LE), version 1         0x04 p_flags  (1 X, 2 W, 4 R)
//  0x10 e_type u16 (2 = EXEC)                    0x08 p_offset (file offset)
//  0x12 e_machine u16 (62 = x86-64)              0x10 p_vaddr
//  0x14 e_version u32                            0x18 p_paddr  (where we place it)
//  0x18 e_entry u64                              0x20 p_filesz
//  0x20 e_phoff u64                              0x28 p_memsz  (the rest is zeroed)
//  0x36 e_phentsize u16 (56)                     0x30 p_align
//  0x38 e_phnum u16

export const PT_LOAD = 1;
export const PF_X = 1, PF_W = 2, PF_R = 4;
/** Kernels are linked in the top 2 GiB (the Limine protocol's kernel area). */
export const KERNEL_AREA = 0xffff_ffff_8000_0000n;
/** Largest ELF file or loaded image we accept. */
export const MAX_IMAGE_BYTES = 256 * 2 ** 20;

const EHDR_BYTES = 64, PHDR_BYTES = 56, MAX_PHNUM = 64;
const ET_EXEC = 2, EM_X86_64 = 62;

export interface LoadSegment {
  /** Offset and size of the file-backed bytes. */
  offset: number; filesz: number;
  vaddr: bigint; paddr: bigint; memsz: bigint;
  /** PF_* bits. */
  flags: number;
}

export interface ElfImage {
  entry: bigint;
  segments: LoadSegment[];
  /** Lowest page-aligned physical address and end (exclusive) of the loaded image. */
  physBase: bigint; physEnd: bigint;
  /** Virtual address of physBase (every segment has vaddr − paddr = virtBase − physBase). */
  virtBase: bigint;
}

export class ElfError extends Error {
  constructor(message: string) { super(`ELF: ${message}`); this.name = 'ElfError'; }
}

const hex = (v: bigint | number): string => '0x' + BigInt(v).toString(16);
const pageDown = (a: bigint): bigint => a & ~0xfffn;
const pageUp = (a: bigint): bigint => (a + 0xfffn) & ~0xfffn;

/** Parses and validates an x86-64 ELF64 executable for loading into `ramBytes` of guest memory. */
export function parseElf(file: Uint8Array, ramBytes: bigint): ElfImage {
  if (file.length > MAX_IMAGE_BYTES) throw new ElfError(`file of ${file.length} bytes is larger than ${MAX_IMAGE_BYTES}`);
  if (file.length < EHDR_BYTES) throw new ElfError(`file of ${file.length} bytes is shorter than an ELF64 header`);
  const dv = new DataView(file.buffer, file.byteOffset, file.byteLength);
  checkIdent(file);
  const type = dv.getUint16(0x10, true), machine = dv.getUint16(0x12, true);
  if (type !== ET_EXEC) throw new ElfError(`e_type ${type} is not an executable (2); position-independent kernels are not supported`);
  if (machine !== EM_X86_64) throw new ElfError(`e_machine ${machine} is not x86-64 (62)`);
  const entry = dv.getBigUint64(0x18, true);
  const segments = programHeaders(dv, file.length);
  return layout(entry, segments, ramBytes);
}

function checkIdent(f: Uint8Array): void {
  if (f[0] !== 0x7f || f[1] !== 0x45 || f[2] !== 0x4c || f[3] !== 0x46) throw new ElfError('not an ELF file (bad magic)');
  if (f[4] !== 2) throw new ElfError(`class ${f[4]} is not ELFCLASS64 (2)`);
  if (f[5] !== 1) throw new ElfError(`data encoding ${f[5]} is not little-endian (1)`);
  if (f[6] !== 1) throw new ElfError(`ident version ${f[6]} is not 1`);
}

function programHeaders(dv: DataView, size: number): LoadSegment[] {
  const phoff = dv.getBigUint64(0x20, true), phentsize = dv.getUint16(0x36, true), phnum = dv.getUint16(0x38, true);
  if (phentsize !== PHDR_BYTES) throw new ElfError(`e_phentsize ${phentsize} is not ${PHDR_BYTES}`);
  if (phnum === 0 || phnum > MAX_PHNUM) throw new ElfError(`e_phnum ${phnum} is outside 1..${MAX_PHNUM}`);
  if (phoff + BigInt(phnum * PHDR_BYTES) > BigInt(size)) throw new ElfError(`program headers at ${hex(phoff)} run past the end of the file`);
  const out: LoadSegment[] = [];
  for (let i = 0; i < phnum; i++) {
    const at = Number(phoff) + i * PHDR_BYTES;
    if (dv.getUint32(at, true) !== PT_LOAD) continue;
    const s = {
      flags: dv.getUint32(at + 4, true), off: dv.getBigUint64(at + 8, true), vaddr: dv.getBigUint64(at + 0x10, true),
      paddr: dv.getBigUint64(at + 0x18, true), filesz: dv.getBigUint64(at + 0x20, true), memsz: dv.getBigUint64(at + 0x28, true),
    };
    const name = `PT_LOAD #${i} (vaddr ${hex(s.vaddr)})`;
    if (s.filesz > s.memsz) throw new ElfError(`${name}: p_filesz ${hex(s.filesz)} exceeds p_memsz ${hex(s.memsz)}`);
    if (s.off + s.filesz > BigInt(size)) throw new ElfError(`${name}: file bytes ${hex(s.off)}+${hex(s.filesz)} run past the end of the file`);
    if (s.memsz > BigInt(MAX_IMAGE_BYTES)) throw new ElfError(`${name}: p_memsz ${hex(s.memsz)} is larger than ${MAX_IMAGE_BYTES} bytes`);
    if (s.memsz === 0n) continue;
    if ((s.vaddr & 0xfffn) !== (s.paddr & 0xfffn)) {
      throw new ElfError(`${name}: p_vaddr and p_paddr ${hex(s.paddr)} differ in their page offset`);
    }
    out.push({ offset: Number(s.off), filesz: Number(s.filesz), vaddr: s.vaddr, paddr: s.paddr, memsz: s.memsz, flags: s.flags });
  }
  if (out.length === 0) throw new ElfError('no PT_LOAD segment with memory');
  return out.sort((a, b) => (a.paddr < b.paddr ? -1 : 1));
}

/** Checks placement: top-2-GiB virtual, inside RAM above page 0, one slide, no overlap. */
function layout(entry: bigint, segs: LoadSegment[], ram: bigint): ElfImage {
  const slide = segs[0].vaddr - segs[0].paddr;
  for (const [i, s] of segs.entries()) {
    const name = `segment at paddr ${hex(s.paddr)}`;
    if (s.vaddr < KERNEL_AREA || s.vaddr + s.memsz > 1n << 64n || s.vaddr + s.memsz < s.vaddr) {
      throw new ElfError(`${name}: vaddr ${hex(s.vaddr)}+${hex(s.memsz)} is not inside the kernel area ` +
        `${hex(KERNEL_AREA)}..2^64 (link the kernel in the top 2 GiB)`);
    }
    if (s.paddr < 0x1000n || s.paddr + s.memsz > ram) {
      throw new ElfError(`${name}: physical ${hex(s.paddr)}+${hex(s.memsz)} is outside guest RAM 0x1000..${hex(ram)}`);
    }
    if (s.vaddr - s.paddr !== slide) {
      throw new ElfError(`${name}: vaddr − paddr = ${hex(s.vaddr - s.paddr)} differs from the first segment's ` +
        `${hex(slide)} (the kernel must be physically contiguous as linked)`);
    }
    const prev = segs[i - 1];
    if (prev && s.paddr < prev.paddr + prev.memsz) {
      throw new ElfError(`${name} overlaps the segment at ${hex(prev.paddr)}+${hex(prev.memsz)}`);
    }
  }
  const physBase = pageDown(segs[0].paddr);
  const last = segs[segs.length - 1];
  const physEnd = pageUp(last.paddr + last.memsz);
  const inside = segs.some((s) => entry >= s.vaddr && entry < s.vaddr + s.memsz && s.flags & PF_X);
  if (!inside) throw new ElfError(`entry point ${hex(entry)} is not inside an executable segment`);
  return { entry, segments: segs, physBase, physEnd, virtBase: physBase + slide };
}

/** Page rights of the kernel image: per 4 KiB page, the union of the segments touching it. */
export function pageRights(img: ElfImage): Map<bigint, number> {
  const rights = new Map<bigint, number>();
  for (const s of img.segments) {
    for (let p = pageDown(s.paddr); p < s.paddr + s.memsz; p += 0x1000n) rights.set(p, (rights.get(p) ?? 0) | s.flags);
  }
  return rights;
}
