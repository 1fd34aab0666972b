// Runs single x86-64 instructions on the host CPU (user mode), for differential tests.
// Each case becomes a function: it saves the C caller's state, switches to a private stack,
// loads the flags and 15 GPRs, runs the instruction, stores the 16 GPRs and RFLAGS to an
// output slot and returns. A small C driver built with the system gcc (in a temp dir) maps
// the code at CODE_VA, the scratch data at DATA_VA and the stack, resets the scratch data
// before every case, and writes the results and the scratch data after each case.
// Cases must not fault natively (the generator only makes non-faulting ones).

import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const NATIVE_CODE_VA = 0x1000_0000n;
export const NATIVE_DATA_VA = 0x2000_0000n;   // 2 pages of scratch data
export const NATIVE_STACK_TOP = 0x3000_0000n; // 1 page of stack below it
export const DATA_BYTES = 8192;
const OUT_VA = 0x3100_0000n;                  // 17 u64 per case
const SAVE_VA = 0x3200_0000n;

export const GPRS = ['rax', 'rcx', 'rdx', 'rbx', 'rsp', 'rbp', 'rsi', 'rdi', 'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15'] as const;

export interface Case { insn: string; regs: bigint[]; flags: bigint }
export interface Result { regs: bigint[]; flags: bigint; data: Uint8Array }

function probeGcc(): boolean {
  try { execFileSync('gcc', ['--version'], { stdio: 'ignore' }); execFileSync('as', ['--version'], { stdio: 'ignore' }); return true; }
  catch { return false; }
}
export const HAVE_GCC = process.platform === 'linux' && process.arch === 'x64' && probeGcc();

const DRIVER = `
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
extern char cases_start[], cases_end[];
extern unsigned long case_table[];
extern unsigned long case_count;
static void *map(unsigned long va, unsigned long len, int prot) {
  void *p = mmap((void *)va, len, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
  if (p == MAP_FAILED) { perror("mmap"); exit(2); }
  return p;
}
int main(int argc, char **argv) {
  unsigned char init[${DATA_BYTES}];
  FILE *f = fopen(argv[1], "rb");
  if (!f || fread(init, 1, sizeof init, f) != sizeof init) return 3;
  fclose(f);
  map(0x${NATIVE_DATA_VA.toString(16)}, ${DATA_BYTES}, PROT_READ | PROT_WRITE);
  map(0x${(NATIVE_STACK_TOP - 0x1000n).toString(16)}, 0x1000, PROT_READ | PROT_WRITE);
  map(0x${OUT_VA.toString(16)}, 0x1000, PROT_READ | PROT_WRITE);
  map(0x${SAVE_VA.toString(16)}, 0x1000, PROT_READ | PROT_WRITE);
  for (unsigned long i = 0; i < case_count; i++) {
    memcpy((void *)0x${NATIVE_DATA_VA.toString(16)}, init, sizeof init);
    memset((void *)0x${(NATIVE_STACK_TOP - 0x1000n).toString(16)}, 0, 0x1000);
    ((void (*)(void))case_table[i])();
    fwrite((void *)0x${OUT_VA.toString(16)}, 8, 17, stdout);
    fwrite((void *)0x${NATIVE_DATA_VA.toString(16)}, 1, ${DATA_BYTES}, stdout);
    fflush(stdout);
  }
  return 0;
}
`;

/** The snippet a case runs (also what the interpreter executes). */
export function caseBody(c: Case): string { return c.insn; }

function caseAsm(c: Case, i: number): string {
  const loads = GPRS.map((r, k) => (r === 'rsp' ? '' : `  movabs ${r}, ${c.regs[k]}`)).filter(Boolean).join('\n');
  const stores = GPRS.map((r, k) => `  mov [${OUT_VA + BigInt(k * 8)}], ${r}`).join('\n');
  return `
case_${i}:
  push rbx
  push rbp
  push r12
  push r13
  push r14
  push r15
  mov [${SAVE_VA}], rsp
  movabs rsp, ${c.regs[4]}
  movabs rax, ${c.flags}
  mov [${SAVE_VA + 8n}], rax
  push qword ptr [${SAVE_VA + 8n}]
  popfq
${loads}
case_${i}_body:
  ${caseBody(c)}
case_${i}_end:
${stores}
  pushfq
  pop qword ptr [${OUT_VA + 128n}]
  mov rsp, [${SAVE_VA}]
  cld
  pop r15
  pop r14
  pop r13
  pop r12
  pop rbp
  pop rbx
  ret
`;
}

/** Runs cases natively; the private stack pointer of every case must be within the stack page. */
export function runNative(cases: Case[], data: Uint8Array): Result[] {
  const dir = mkdtempSync(join(tmpdir(), 'memvisor-native-'));
  try {
    const body = cases.map(caseAsm).join('\n');
    const table = cases.map((_, i) => `  .quad case_${i}`).join('\n');
    writeFileSync(join(dir, 'cases.s'), `.intel_syntax noprefix
.section .text.cases,"ax",@progbits
.globl cases_start, cases_end, case_table, case_count
cases_start:
${body}
cases_end:
.section .data
case_table:
${table}
case_count: .quad ${cases.length}
.section .note.GNU-stack,"",@progbits
`);
    writeFileSync(join(dir, 'driver.c'), DRIVER);
    writeFileSync(join(dir, 'init.bin'), data);
    execFileSync('gcc', ['-O1', '-no-pie', '-o', join(dir, 'run'), join(dir, 'driver.c'), join(dir, 'cases.s')], { stdio: ['ignore', 'ignore', 'pipe'] });
    const rec = 17 * 8 + DATA_BYTES;
    let out: Buffer;
    try {
      out = execFileSync(join(dir, 'run'), [join(dir, 'init.bin')], { maxBuffer: 1 << 30 });
    } catch (e) {
      const got = (e as { stdout?: Buffer }).stdout?.length ?? 0;
      const bad = cases[Math.floor(got / rec)];
      throw new Error(`native run died at case ${Math.floor(got / rec)}: ${bad?.insn} regs ${bad?.regs.map((r) => r.toString(16)).join(' ')}`);
    }
    if (out.length !== rec * cases.length) throw new Error(`native run returned ${out.length} bytes, expected ${rec * cases.length}`);
    return cases.map((_, i) => {
      const v = new DataView(out.buffer, out.byteOffset + i * rec, rec);
      const regs = GPRS.map((_r, k) => v.getBigUint64(k * 8, true));
      return { regs, flags: v.getBigUint64(128, true), data: new Uint8Array(out.buffer, out.byteOffset + i * rec + 136, DATA_BYTES).slice() };
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export { readFileSync };
