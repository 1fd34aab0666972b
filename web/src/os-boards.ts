// Kernels the toy-OS panel offers: the shipped OS (guests/os/bin/*.elf, bundled when it is in
// the checkout) and any Limine-protocol ELF the reader opens from disk (os.ts).
import type { OsBoardFactory } from './os.js';
import { createOsBoard } from './os-board.js';

const shipped = import.meta.glob('../../guests/os/bin/*.elf', { query: '?url', import: 'default', eager: true }) as Record<string, string>;

export const OS_BOARDS: { name: string; create: OsBoardFactory }[] = Object.entries(shipped).map(([path, url]) => ({
  name: path.split('/').pop()!,
  create: async () => createOsBoard(path.split('/').pop()!, new Uint8Array(await (await fetch(url)).arrayBuffer())),
}));

/** A kernel the reader picked. */
export const boardFromFile = (f: File): OsBoardFactory => async () => createOsBoard(f.name, new Uint8Array(await f.arrayBuffer()));
