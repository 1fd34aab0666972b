// The machine-code guest loader: an ELF64 kernel and a minimal Limine-protocol hand-off
// (BOOT.md). Everything is parsed, checked and staged on the host first; guest memory is
// written only once nothing can fail any more, through the VM's guest-memory API (so it
// works the same under native, nested and shadow paging).
//
// Guest-physical layout (RAM = R bytes):
//
//   0 ─ 0x1000      reserved (page 0 is never usable)
//   ...             usable
//   physBase ─ End  the kernel's PT_LOAD segments at their p_paddr   (executable+modules)
//   ...             usable
//   fileBase        the ELF file itself, only if the kernel asks for it (executable+modules)
//   regionBase      page tables │ GDT, responses, strings │ stack ─▶ R   (bootloader reclaimable)
//
// Deviations from upstream Limine, on purpose: the kernel is placed at its p_paddr (Limine
// picks the physical base itself; the executable address response reports what we used);
// no identity map even for base revision 0 (BOOT.md); the HHDM covers 0..max(4 GiB, RAM)
// in 2 MiB pages, but under native paging only RAM (a native guest's gpa is a host address,
// so mapping past its RAM would hand it host memory); the ELF must be ET_EXEC with a single
// virtual−physical slide; pages shared by two segments get the union of their rights.

import type { VmMode } from '../hypervisor/monitor/types.js';
import { CR0, CR4, EFER } from '../core/bits.js';
import { parseElf, pageRights, PF_W, PF_X, type ElfImage } from './elf.js';
import { Staged, StagedFrames, StagedTables } from './staging.js';
import {
  scan, baseRevision, checkMemmap, LimineError, HHDM_OFFSET, MEMMAP, LIMINE_FILE_BYTES,
  type FoundRequest, type MemmapEntry, type RequestKind,
} from './limine.js';

export const BOOTLOADER_NAME = 'memvisor';
export const BOOTLOADER_VERSION = '0.1.0';
export const DEFAULT_STACK_BYTES = 64 * 1024;
export const MAX_STACK_BYTES = 16 * 2 ** 20;
export const MAX_CMDLINE_BYTES = 4095;
/** The Limine GDT's selectors (null, code16, data16, code32, data32, code64, data64). */
export const SELECTOR = { CODE64: 0x28, DATA64: 0x30 } as const;
/** IA32_APIC_BASE at entry: 0xfee00000 | enable (11) | x2APIC (10) | BSP (8). */
export const APIC_BASE = 0xfee0_0000n | (1n << 11n) | (1n << 10n) | (1n << 8n);
const CR0_ET = 1n << 4n, CR0_NE = 1n << 5n;
const GIB = 1n << 30n, MIB2 = 1n << 21n, PAGE = 0x1000n;

/*
 * The GDT (segment descriptor, SDM 3 §3.4.5):
 *  63    56 55 54 53 52 51  48 47 46 45 44 43  40 39      16 15       0
 * ┌────────┬──┬──┬──┬──┬──────┬──┬─────┬──┬──────┬──────────┬──────────┐
 * │base hi │G │DB│L │av│lim hi│P │ DPL │S │ type │ base lo  │ limit lo │
 * └────────┴──┴──┴──┴──┴──────┴──┴─────┴──┴──────┴──────────┴──────────┘
 */
const GDT = [
  0n,
  0x0000_9a00_0000_ffffn, // 0x08 16-bit code, base 0, limit 0xffff
  0x0000_9200_0000_ffffn, // 0x10 16-bit data
  0x00cf_9a00_0000_ffffn, // 0x18 32-bit code, 4 GiB, G | D
  0x00cf_9200_0000_ffffn, // 0x20 32-bit data
  0x0020_9a00_0000_0000n, // 0x28 64-bit code (L)
  0x0000_9200_0000_0000n, // 0x30 64-bit data
];

/** The register state at the kernel's entry, as a plain object for the CPU's setRegisters. */
export interface BootRegisters {
  rip: bigint; rsp: bigint; rflags: bigint;
  cr0: bigint; cr3: bigint; cr4: bigint; efer: bigint; cpl: number;
  cs: number; ds: number; es: number; ss: number; fs: number; gs: number;
  gdtr: { base: bigint; limit: number };
  idtr: { base: bigint; limit: number };
  /** IA32_APIC_BASE (MSR 0x1b): x2APIC mode on. */
  apicBase: bigint;
}

export interface LoadOptions {
  cmdline?: string;
  /** Path reported in the executable file response. */
  path?: string;
}

/** Where the loader target's memory is: a Vm satisfies this. */
export interface LoaderTarget {
  readonly memoryBytes: bigint;
  readonly mode: VmMode;
  readonly memory: { write(gpa: bigint, data: Uint8Array): void };
}

export interface BootInfo {
  image: ElfImage;
  registers: BootRegisters;
  memmap: MemmapEntry[];
  requests: FoundRequest[];
  /** gpa of each answered request's response. */
  responses: Partial<Record<RequestKind, bigint>>;
  baseRevision: { requested: bigint; loaded: bigint; supported: boolean; tag: bigint | null };
  layout: { regionBase: bigint; fileBase: bigint | null; pml4: bigint; gdt: bigint; stackBottom: bigint; stackTop: bigint; hhdmEnd: bigint };
  cmdline: string;
}

const hex = (v: bigint): string => '0x' + v.toString(16);
const pagesOf = (bytes: bigint): bigint => (bytes + PAGE - 1n) / PAGE;
const hh = (gpa: bigint): bigint => HHDM_OFFSET + gpa;
const cstr = (s: string): Uint8Array => new TextEncoder().encode(s + '\0');

/** Loads `file` into the target's guest memory; returns the entry state and what was written. */
export function loadKernel(vm: LoaderTarget, file: Uint8Array, o: LoadOptions = {}): BootInfo {
  const ram = vm.memoryBytes;
  const image = parseElf(file, ram);
  const kernel = stageImage(image, file);
  const found = scan({
    ranges: image.segments.filter((s) => s.filesz > 0).map((s) => ({ gpa: s.paddr, end: s.paddr + BigInt(s.filesz) })),
    read64: (a) => kernel.read64(a),
  });
  const req = (k: RequestKind) => found.requests.find((r) => r.kind === k);
  const rev = baseRevision(found);
  const entry = entryPoint(image, req('entryPoint'));
  const stackBytes = stackSize(req('stackSize'));
  const cmdline = o.cmdline ?? '';
  const cmdBytes = cstr(cmdline);
  if (cmdBytes.length > MAX_CMDLINE_BYTES + 1) throw new LimineError(`command line of ${cmdBytes.length - 1} bytes is longer than ${MAX_CMDLINE_BYTES}`);
  const pathBytes = cstr(o.path ?? '/boot/kernel.elf');
  if (pathBytes.length > 1024) throw new LimineError('executable path is longer than 1023 bytes');

  const hhdmEnd = hhdmLimit(vm.mode, ram);
  // Sized for the widest HHDM in every mode, so the memory map is the same under each.
  const ptPages = pageTableBound(image, hhdmLimit('nested', ram));
  const infoPages = 2n + pagesOf(BigInt(cmdBytes.length + pathBytes.length));
  const regionBytes = (ptPages + infoPages) * PAGE + BigInt(stackBytes);
  const filePages = req('executableFile') ? pagesOf(BigInt(file.length)) : 0n;
  const regionBase = ram - regionBytes, fileBase = regionBase - filePages * PAGE;
  if (fileBase < image.physEnd) {
    throw new LimineError(`guest RAM of ${hex(ram)} bytes is too small: the kernel ends at ${hex(image.physEnd)} and the ` +
      `loader needs ${hex(regionBytes + filePages * PAGE)} bytes above it (page tables, responses, stack${filePages ? ', the ELF file' : ''})`);
  }
  const memmap = memoryMap(image, fileBase, regionBase, ram, filePages > 0n);
  checkMemmap(memmap);

  const region = new Staged(regionBase, Number(regionBytes));
  const ptEnd = regionBase + ptPages * PAGE;
  const tables = new StagedTables(region, new StagedFrames(region, regionBase, ptEnd));
  mapKernel(tables, image);
  mapHhdm(tables, hhdmEnd);
  const info = new Bump(region, ptEnd, ptEnd + infoPages * PAGE);
  const gdt = info.put(gdtBytes(), 16);
  const strings = { name: info.put(cstr(BOOTLOADER_NAME)), version: info.put(cstr(BOOTLOADER_VERSION)), cmdline: info.put(cmdBytes), path: info.put(pathBytes) };
  const responses: Partial<Record<RequestKind, bigint>> = {};
  for (const r of found.requests) {
    const at = respond(r.kind, info, { image, memmap, strings, fileBase, fileBytes: file.length });
    responses[r.kind] = at;
    kernel.write64(r.gpa + 40n, hh(at));
  }
  for (const [a, v] of rev.writes) kernel.write64(a, v);

  // Nothing can fail from here on: commit the staged bytes to guest memory.
  vm.memory.write(kernel.base, kernel.bytes);
  if (filePages) vm.memory.write(fileBase, file);
  vm.memory.write(region.base, region.bytes);

  const registers = entryRegisters(entry, tables.root, hh(ram - 8n), hh(gdt));
  return {
    image, registers, memmap, requests: found.requests, responses, cmdline,
    baseRevision: { requested: found.requestedRevision, loaded: rev.loaded, supported: rev.supported, tag: found.baseRevisionTag },
    layout: { regionBase, fileBase: filePages ? fileBase : null, pml4: tables.root, gdt, stackBottom: ram - BigInt(stackBytes), stackTop: ram, hhdmEnd },
  };
}

/** The kernel's bytes at their physical addresses (zero-filled BSS and gaps). */
function stageImage(img: ElfImage, file: Uint8Array): Staged {
  const s = new Staged(img.physBase, Number(img.physEnd - img.physBase));
  for (const seg of img.segments) s.set(seg.paddr, file.subarray(seg.offset, seg.offset + seg.filesz));
  return s;
}

function entryPoint(img: ElfImage, r: FoundRequest | undefined): bigint {
  if (!r || r.arg === 0n) return img.entry;
  const ok = img.segments.some((s) => s.flags & PF_X && r.arg >= s.vaddr && r.arg < s.vaddr + s.memsz);
  if (!ok) throw new LimineError(`entry point request names ${hex(r.arg)}, which is not inside an executable segment`);
  return r.arg;
}

function stackSize(r: FoundRequest | undefined): number {
  if (!r) return DEFAULT_STACK_BYTES;
  if (r.arg > BigInt(MAX_STACK_BYTES)) throw new LimineError(`stack size request of ${r.arg} bytes exceeds ${MAX_STACK_BYTES}`);
  const want = Number((r.arg + 0xfffn) & ~0xfffn);
  return Math.max(DEFAULT_STACK_BYTES, want);
}

/** End of the HHDM: 0..max(4 GiB, RAM) in 2 MiB pages; native paging maps RAM only. */
function hhdmLimit(mode: VmMode, ram: bigint): bigint {
  if (mode === 'native') return ram;
  const top = (ram + MIB2 - 1n) & ~(MIB2 - 1n);
  return top > 4n * GIB ? top : 4n * GIB;
}

/** Page-table pages the mappings can need (a bound; unused pages stay zero). */
function pageTableBound(img: ElfImage, hhdmEnd: bigint): bigint {
  const hhdm = 1n + (hhdmEnd + 512n * GIB - 1n) / (512n * GIB) + (hhdmEnd + GIB - 1n) / GIB + 1n;
  const kernel = 1n + 2n + (img.physEnd - img.physBase + MIB2 - 1n) / MIB2 + 2n;
  return 1n + hhdm + kernel;
}

function mapKernel(t: StagedTables, img: ElfImage): void {
  const slide = img.virtBase - img.physBase;
  for (const [pa, f] of pageRights(img)) t.map4k(pa + slide, pa, { write: (f & PF_W) !== 0, exec: (f & PF_X) !== 0 });
}

function mapHhdm(t: StagedTables, end: bigint): void {
  const big = end & ~(MIB2 - 1n);
  for (let pa = 0n; pa < big; pa += MIB2) t.map2m(hh(pa), pa, { write: true, exec: true });
  for (let pa = big; pa < end; pa += PAGE) t.map4k(hh(pa), pa, { write: true, exec: true });
}

function memoryMap(img: ElfImage, fileBase: bigint, regionBase: bigint, ram: bigint, file: boolean): MemmapEntry[] {
  const out: MemmapEntry[] = [];
  const add = (base: bigint, end: bigint, type: number) => { if (end > base) out.push({ base, length: end - base, type }); };
  add(0n, PAGE, MEMMAP.RESERVED);
  add(PAGE, img.physBase, MEMMAP.USABLE);
  add(img.physBase, img.physEnd, MEMMAP.EXECUTABLE_AND_MODULES);
  add(img.physEnd, fileBase, MEMMAP.USABLE);
  if (file) add(fileBase, regionBase, MEMMAP.EXECUTABLE_AND_MODULES);
  add(regionBase, ram, MEMMAP.BOOTLOADER_RECLAIMABLE);
  return out;
}

function gdtBytes(): Uint8Array {
  const b = new Uint8Array(GDT.length * 8);
  const dv = new DataView(b.buffer);
  GDT.forEach((d, i) => dv.setBigUint64(i * 8, d, true));
  return b;
}

/** Bump allocation of response structures in the staged info area. */
class Bump {
  constructor(private readonly s: Staged, private next: bigint, private readonly end: bigint) {}
  put(data: Uint8Array, align = 8): bigint {
    const a = (this.next + BigInt(align - 1)) & ~BigInt(align - 1);
    if (a + BigInt(data.length) > this.end) throw new Error('loader: info area exhausted (bug in the size estimate)');
    this.s.set(a, data);
    this.next = a + BigInt(data.length);
    return a;
  }
  /** A structure of u64 words. */
  words(ws: bigint[]): bigint {
    const b = new Uint8Array(ws.length * 8);
    const dv = new DataView(b.buffer);
    ws.forEach((w, i) => dv.setBigUint64(i * 8, BigInt.asUintN(64, w), true));
    return this.put(b);
  }
}

interface ResponseInputs {
  image: ElfImage; memmap: MemmapEntry[]; fileBase: bigint; fileBytes: number;
  strings: { name: bigint; version: bigint; cmdline: bigint; path: bigint };
}

/** Writes one response (revision 0) and returns its gpa. */
function respond(kind: RequestKind, info: Bump, x: ResponseInputs): bigint {
  switch (kind) {
    case 'bootloaderInfo': return info.words([0n, hh(x.strings.name), hh(x.strings.version)]);
    case 'hhdm': return info.words([0n, HHDM_OFFSET]);
    case 'memmap': {
      const entries = x.memmap.map((e) => info.words([e.base, e.length, BigInt(e.type)]));
      const array = info.words(entries.map(hh));
      return info.words([0n, BigInt(entries.length), hh(array)]);
    }
    case 'executableAddress': return info.words([0n, x.image.physBase, x.image.virtBase]);
    case 'executableCmdline': return info.words([0n, hh(x.strings.cmdline)]);
    case 'executableFile': {
      const f = new Uint8Array(LIMINE_FILE_BYTES); // media type 0 (generic), no partition / UUIDs
      const dv = new DataView(f.buffer);
      dv.setBigUint64(8, hh(x.fileBase), true);
      dv.setBigUint64(16, BigInt(x.fileBytes), true);
      dv.setBigUint64(24, hh(x.strings.path), true);
      dv.setBigUint64(32, hh(x.strings.cmdline), true);
      return info.words([0n, hh(info.put(f))]);
    }
    case 'stackSize': case 'entryPoint': return info.words([0n]);
    case 'pagingMode': return info.words([0n, 0n]);
  }
}

function entryRegisters(rip: bigint, cr3: bigint, rsp: bigint, gdtBase: bigint): BootRegisters {
  const d = SELECTOR.DATA64;
  return {
    rip, rsp, rflags: 0x2n,
    cr0: CR0.PE | CR0_ET | CR0_NE | CR0.WP | CR0.PG, cr3, cr4: CR4.PAE | CR4.PGE,
    efer: EFER.LME | EFER.LMA | EFER.NXE, cpl: 0,
    cs: SELECTOR.CODE64, ds: d, es: d, ss: d, fs: d, gs: d,
    gdtr: { base: gdtBase, limit: GDT.length * 8 - 1 }, idtr: { base: 0n, limit: 0 },
    apicBase: APIC_BASE,
  };
}
