// A hand-made Limine kernel for loader tests: text (RX), rodata (R), data (RW) with the
// base revision tag, the markers and one request of every kind we answer, and a BSS.
import { buildElf, words, type ElfSpec } from './elf-builder.js';
import { REQUEST, COMMON_MAGIC, BASE_REVISION_MAGIC, START_MARKER, END_MARKER, type RequestKind } from '../../src/board/limine.js';
import { PF_R, PF_W, PF_X } from '../../src/board/elf.js';

export const KBASE = 0xffff_ffff_8020_0000n, PBASE = 0x20_0000n;
export const TEXT = KBASE, RODATA = KBASE + 0x1000n, DATA = KBASE + 0x2000n, BSS = KBASE + 0x3000n;
export const BSS_BYTES = 0x3000n;
export const ENTRY_OFFSET = 0x10n;
export const STACK_REQUEST = 0x2_0000n;

export interface KernelOptions {
  /** Base revision tag value; null = no tag. */
  revision?: bigint | null;
  markers?: boolean;
  kinds?: RequestKind[];
  /** Extra words after the end marker (e.g. a request the scan must ignore). */
  trailer?: bigint[];
  spec?: Partial<ElfSpec>;
}

export interface KernelImage { elf: Uint8Array; tag: bigint | null; request: Partial<Record<RequestKind, bigint>>; trailer: bigint }

/** The data segment: tag, start marker, requests, end marker, trailer; addresses are physical. */
export function kernelImage(o: KernelOptions = {}): KernelImage {
  const ws: bigint[] = [];
  const request: Partial<Record<RequestKind, bigint>> = {};
  const here = () => PBASE + 0x2000n + BigInt(ws.length * 8);
  let tag: bigint | null = null;
  if (o.revision !== null) { tag = here(); ws.push(BASE_REVISION_MAGIC[0], BASE_REVISION_MAGIC[1], o.revision ?? 2n, 0n); }
  if (o.markers ?? true) ws.push(...START_MARKER);
  for (const k of o.kinds ?? (Object.keys(REQUEST) as RequestKind[])) {
    request[k] = here();
    const arg = k === 'stackSize' ? STACK_REQUEST : k === 'entryPoint' ? TEXT + ENTRY_OFFSET : 0n;
    ws.push(COMMON_MAGIC[0], COMMON_MAGIC[1], REQUEST[k][0], REQUEST[k][1], 0n, 0n, arg);
  }
  if (o.markers ?? true) ws.push(...END_MARKER);
  const trailer = here();
  ws.push(...(o.trailer ?? []));
  const text = new Uint8Array(0x20).fill(0x90); // nops, then hlt
  text[0x1f] = 0xf4;
  const elf = buildElf({
    entry: TEXT,
    segments: [
      { vaddr: TEXT, paddr: PBASE, flags: PF_R | PF_X, data: text },
      { vaddr: RODATA, paddr: PBASE + 0x1000n, flags: PF_R, data: new TextEncoder().encode('read-only\0') },
      { vaddr: DATA, paddr: PBASE + 0x2000n, flags: PF_R | PF_W, data: words(ws), memsz: 0x1000n + BSS_BYTES },
    ],
    ...o.spec,
  });
  return { elf, tag, request, trailer };
}

/** The words of one request (for a trailer). */
export function requestWords(k: RequestKind): bigint[] {
  return [COMMON_MAGIC[0], COMMON_MAGIC[1], REQUEST[k][0], REQUEST[k][1], 0n, 0n, 0n];
}
