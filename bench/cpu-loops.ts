// The three guest-instruction loops of the CPU benchmark (issue 11), as machine code, so
// the interpreter bench and the native run (bench/native.ts) execute the same bytes at the
// same addresses. Code at CODE_BASE, data at DATA_BASE; RCX counts iterations down; the
// code ends right after the loop (the runner puts its end marker there).

export const LOOP_CODE_BASE = 0x1000_0000;
export const LOOP_DATA_BASE = 0x2000_0000;
/** The TLB-missing loop walks 64 MiB: 16 Ki pages, far beyond any L2 TLB. */
export const WALK_BYTES = 64 * 2 ** 20;

export interface CpuLoop {
  name: 'registerLoop' | 'tlbHitMemoryLoop' | 'tlbMissMemoryLoop';
  what: string;
  code: Uint8Array;
  instructionsPerIteration: number;
  /** Bytes of data the loop touches from LOOP_DATA_BASE (mapped, 4 KiB pages). */
  dataBytes: number;
  /** Input GPRs by name (unlisted: 0), for `iterations` iterations. */
  registers(iterations: number): Record<string, bigint>;
}

const hex = (s: string) => Uint8Array.from(s.match(/../g)!.map((b) => parseInt(b, 16)));

export const CPU_LOOPS: CpuLoop[] = [
  {
    name: 'registerLoop',
    what: 'ALU only: add, xor, inc, sub, mov, and, dec, jnz',
    // 1: add rax,rbx; xor rdx,rax; inc rsi; sub rdi,rdx; mov r8,rax; and r8,0xff; dec rcx; jnz 1b
    code: hex('4801d84831c248ffc64829d74989c04981e0ff00000048ffc975e5'),
    instructionsPerIteration: 8,
    dataBytes: 0,
    registers: (n) => ({ rcx: BigInt(n), rbx: 0x9e3779b97f4a7c15n }),
  },
  {
    name: 'tlbHitMemoryLoop',
    what: 'load, add, store over one 4 KiB page (512 qwords): every access hits the L1 DTLB',
    // 1: mov rax,[rbx+rdx*8]; add rax,rdi; mov [rbx+rdx*8],rax; inc rdx; and rdx,511; dec rcx; jnz 1b
    code: hex('488b04d34801f8488904d348ffc24881e2ff01000048ffc975e6'),
    instructionsPerIteration: 7,
    dataBytes: 4096,
    registers: (n) => ({ rcx: BigInt(n), rbx: BigInt(LOOP_DATA_BASE), rdi: 3n }),
  },
  {
    name: 'tlbMissMemoryLoop',
    what: 'one load per page with a stride of 4 KiB + 64 over 64 MiB: misses the TLBs and walks',
    // 1: mov rax,[rbx+rdx]; add rdx,r8; and rdx,r9; dec rcx; jnz 1b
    code: hex('488b04134c01c24c21ca48ffc975f1'),
    instructionsPerIteration: 5,
    dataBytes: WALK_BYTES,
    registers: (n) => ({ rcx: BigInt(n), rbx: BigInt(LOOP_DATA_BASE), r8: 4096n + 64n, r9: BigInt(WALK_BYTES - 1) & ~7n }),
  },
];
