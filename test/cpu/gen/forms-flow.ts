// Instruction forms, part 2: the stack, in-page control flow, string operations, flag
// instructions, the NOP/hint space, and terminal cases that must fault (#UD, #GP for
// privileged instructions at CPL 3, #PF, #GP/#SS for non-canonical addresses, #BP).

import { ARITH, CF, PF, AF, ZF, SF, DF, RSP, RBP, RCX_N, CODE_BASE, CODE_SIZE, DATA_BASE, STACK_BASE, UNMAPPED, GS_BASE } from '../layout.js';
import { reg, type Size, type Mem } from './encode.js';
import { Gen, RoomError, VSIZES } from './gen.js';
import { CC, CC_READS, type Form } from './forms-alu.js';

const sz = (s: Size) => `/${s * 8}`;
const STACK_LIMIT = 0x600;
const canPush = (g: Gen, n: number) => !g.inBlock && g.depth + n <= STACK_LIMIT;
const canPop = (g: Gen, n: number) => !g.inBlock && g.depth - n >= -STACK_LIMIT;

function push(g: Gen): void {
  const w = g.chance(0.15) ? 2 : 8; // 66: 16-bit push/pop move RSP by 2
  const size: Size = w === 2 ? 2 : 8;
  const k = g.below(7);
  if (k <= 2 && canPush(g, w)) {
    const what = g.below(4);
    if (what === 0) g.emit({ opcode: [0x50], size, defaultSize64: true, opreg: g.anyReg(size) }, `push r${sz(size)}`);
    else if (what === 1) g.emit({ opcode: [0x68], size, defaultSize64: true, imm: { value: g.u64(), bytes: w === 2 ? 2 : 4 } }, `push Iz${sz(size)}`);
    else if (what === 2) g.emit({ opcode: [0x6a], size, defaultSize64: true, imm: { value: g.u64(), bytes: 1 } }, `push Ib${sz(size)}`);
    else g.emit({ opcode: [0xff], size, defaultSize64: true, reg: 6, rm: g.mem(size) }, `push m${sz(size)}`);
    g.depth += w;
  } else if (k <= 5 && canPop(g, w)) {
    if (g.chance(0.7)) g.emit({ opcode: [0x58], size, defaultSize64: true, opreg: g.freeReg(size) }, `pop r${sz(size)}`);
    else g.emit({ opcode: [0x8f], size, defaultSize64: true, reg: 0, rm: g.mem(size) }, `pop m${sz(size)}`);
    g.depth -= w;
  } else if (!g.inBlock) { // adjust RSP in place (flags defined)
    const d = 8 * (g.below(9) - 4);
    if (g.depth - d > STACK_LIMIT || g.depth - d < -STACK_LIMIT) return;
    g.emit({ opcode: [0x83], size: 8, reg: 0, rm: reg(RSP, 8), imm: { value: BigInt(d), bytes: 1 } }, 'add rsp,Ib', { writes: ARITH });
    g.depth -= d;
  }
}

/** ENTER with nesting level 0–3, a few register-only instructions, LEAVE. */
function enterLeave(g: Gen): void {
  if (g.inBlock || g.reserved.has(RBP)) return;
  const levelByte = g.pick([0, 0, 1, 2, 3, g.below(32), 32 + g.below(224)]), size = 8 * g.below(9);
  const level = levelByte & 31; // the nesting level is taken mod 32
  const cost = 8 + 8 * level + size;
  if (!canPush(g, cost)) return;
  // Levels ≥ 2 copy frame pointers from [RBP-8]…: RBP must point into the stack page.
  if (level >= 2) g.setReg(RBP, BigInt(STACK_BASE + 0x100 + 8 * g.below(32)));
  g.raw([0xc8, size & 0xff, size >> 8, levelByte], `enter L${level > 3 ? 'n' : level}`); // C8 iw ib
  g.reserved.add(RBP);
  const saved = g.inBlock;
  g.inBlock = true;
  for (let i = g.below(3); i > 0; i--) g.pick(BLOCK_FORMS).gen(g);
  g.inBlock = saved;
  g.reserved.delete(RBP);
  g.emit({ opcode: [0xc9], size: 8, defaultSize64: true }, 'leave');
}

/** Runs `body` as a block that may be skipped: no stack traffic inside; flags merge at the end. */
function block(g: Gen, body: () => void): number {
  const saved = g.inBlock;
  g.inBlock = true;
  body();
  g.inBlock = saved;
  return g.bytes.length;
}

function fillBlock(g: Gen, max: number): void {
  for (let i = g.below(max + 1); i > 0; i--) g.pick(BLOCK_FORMS).gen(g);
}

/** Patches a little-endian displacement of `n` bytes at `at`. */
function patch(g: Gen, at: number, n: number, v: number): void {
  for (let i = 0; i < n; i++) g.bytes[at + i] = (v >> (8 * i)) & 0xff;
}

/** Rolls back to a mark when a rel8 block turned out too long. */
function mark(g: Gen) { return { n: g.bytes.length, m: g.meta.length, U: g.U }; }
function rollback(g: Gen, k: ReturnType<typeof mark>): void { g.bytes.length = k.n; g.meta.length = k.m; g.U = k.U; }

/** Jcc / JrCXZ / LOOPcc forward over a block, rel8 or rel32. */
function condJump(g: Gen): void {
  if (g.inBlock) return;
  const kind = g.pick(['jcc', 'jcc', 'jcc', 'loop', 'jrcxz']);
  const cc = g.below(16);
  let long = kind === 'jcc' && g.chance(0.4);
  let reads = 0, name = '';
  const a32 = kind !== 'jcc' && g.chance(0.3);
  if (kind === 'loop') {
    g.setReg(RCX_N, BigInt(g.below(3)) | (a32 ? BigInt(g.rng.u32()) << 32n : 0n));
    const which = g.below(3); // E0 LOOPNE, E1 LOOPE, E2 LOOP
    reads = which < 2 ? ZF : 0;
    name = ['loopne', 'loope', 'loop'][which];
    g.emit({ prefixes: a32 ? [0x67] : [], opcode: [0xe0 + which], size: 8, defaultSize64: true, imm: { value: 0n, bytes: 1 } }, `${name}${a32 ? '/a32' : ''}`, { reads });
  } else if (kind === 'jrcxz') {
    g.setReg(RCX_N, g.chance(0.5) ? 0n : BigInt(g.below(3)) << BigInt(g.pick([0, 32]))); // ECX may be 0 with RCX ≠ 0
    name = a32 ? 'jecxz' : 'jrcxz';
    g.emit({ prefixes: a32 ? [0x67] : [], opcode: [0xe3], size: 8, defaultSize64: true, imm: { value: 0n, bytes: 1 } }, name);
  } else {
    reads = CC_READS[cc];
    name = `j${CC[cc]} ${long ? 'rel32' : 'rel8'}`;
    g.emit(long ? { opcode: [0x0f, 0x80 + cc], size: 8, defaultSize64: true, imm: { value: 0n, bytes: 4 } }
      : { opcode: [0x70 + cc], size: 8, defaultSize64: true, imm: { value: 0n, bytes: 1 } }, name, { reads });
  }
  const dispAt = g.bytes.length - (long ? 4 : 1);
  const uJump = g.U;
  const k = mark(g);
  const start = g.bytes.length;
  let end = block(g, () => fillBlock(g, 4));
  if (!long && end - start > 127) { rollback(g, k); end = g.bytes.length; }
  patch(g, dispAt, long ? 4 : 1, end - start);
  g.U |= uJump; // the label is reached from both paths
}

/** JMP forward over junk bytes that never run. */
function jumpOver(g: Gen): void {
  if (g.inBlock) return;
  const n = g.below(24), long = g.chance(0.3);
  if (g.room() < n + 8) throw new RoomError();
  g.emit(long ? { opcode: [0xe9], size: 8, defaultSize64: true, imm: { value: BigInt(n), bytes: 4 } }
    : { opcode: [0xeb], size: 8, defaultSize64: true, imm: { value: BigInt(n), bytes: 1 } }, `jmp ${long ? 'rel32' : 'rel8'}`);
  for (let i = 0; i < n; i++) g.bytes.push(g.below(256));
}

/** CALL a subroutine placed after a JMP over it: direct, or through a register or memory. */
function call(g: Gen): void {
  const extra = g.below(3) * 8; // RET imm16 pops what was pushed before the call
  if (g.inBlock || !canPush(g, 8 + extra) || g.room() < 200) return;
  for (let i = 0; i < extra; i += 8) { g.emit({ opcode: [0x6a], size: 8, defaultSize64: true, imm: { value: g.u64(), bytes: 1 } }, 'push Ib/64'); g.depth += 8; }
  const how = g.pick(['rel32', 'rel32', 'reg', 'mem']);
  // The call's target is the subroutine right after `call; jmp rel32` — known once encoded.
  let name = 'call rel32';
  const tr = g.freeReg(8);
  const m = how === 'mem' ? g.mem(8, [tr.n]) : undefined;
  if (how === 'reg' || how === 'mem') {
    // lea tr, [rip + (sub - next)] is patched below; for memory, the pointer is stored first.
    g.emit({ opcode: [0x8d], size: 8, reg: tr, rm: { kind: 'mem', size: 8, scale: 1, disp: 0, dispBytes: 4, rip: true, target: g.at() } }, 'lea rip');
  }
  const leaDisp = g.bytes.length - 4, leaEnd = g.at();
  if (m) g.emit({ opcode: [0x89], size: 8, reg: tr, rm: m }, 'setup');
  if (how === 'rel32') g.emit({ opcode: [0xe8], size: 8, defaultSize64: true, imm: { value: 0n, bytes: 4 } }, name);
  else if (how === 'reg') g.emit({ opcode: [0xff], size: 8, defaultSize64: true, reg: 2, rm: tr }, (name = 'call r'));
  else g.emit({ opcode: [0xff], size: 8, defaultSize64: true, reg: 2, rm: m! }, (name = 'call m'));
  const afterCall = g.bytes.length;
  g.emit({ opcode: [0xe9], size: 8, defaultSize64: true, imm: { value: 0n, bytes: 4 } }, 'jmp rel32');
  const jmpEnd = g.bytes.length;
  const target = jmpEnd; // the subroutine starts right after the JMP
  if (how === 'rel32') patch(g, afterCall - 4, 4, target - afterCall);
  else patch(g, leaDisp, 4, CODE_BASE + target - leaEnd);
  g.depth += 8;
  block(g, () => fillBlock(g, 4));
  if (extra) g.emit({ opcode: [0xc2], size: 8, defaultSize64: true, imm: { value: BigInt(extra), bytes: 2 } }, 'ret Iw');
  else if (g.chance(0.2)) g.emit({ prefixes: [0xf3], opcode: [0xc3], size: 8, defaultSize64: true }, 'rep ret');
  else g.emit({ opcode: [0xc3], size: 8, defaultSize64: true }, 'ret');
  g.depth -= 8 + extra;
  patch(g, jmpEnd - 4, 4, g.bytes.length - jmpEnd);
}

/** JMP through a register or memory to the next instruction after some junk. */
function jumpIndirect(g: Gen): void {
  if (g.inBlock || g.room() < 120) return;
  const tr = g.freeReg(8), viaMem = g.chance(0.4);
  const m = viaMem ? g.mem(8, [tr.n]) : undefined;
  g.emit({ opcode: [0x8d], size: 8, reg: tr, rm: { kind: 'mem', size: 8, scale: 1, disp: 0, dispBytes: 4, rip: true, target: g.at() } }, 'lea rip');
  const leaDisp = g.bytes.length - 4, leaEnd = g.at();
  if (m) g.emit({ opcode: [0x89], size: 8, reg: tr, rm: m }, 'setup');
  g.emit({ opcode: [0xff], size: 8, defaultSize64: true, reg: 4, rm: m ?? tr }, viaMem ? 'jmp m' : 'jmp r');
  for (let i = g.below(8); i > 0; i--) g.bytes.push(g.below(256));
  patch(g, leaDisp, 4, g.at() - leaEnd);
}

const STR = [
  { name: 'movs', op: 0xa4, reads: [6, 7], flags: false, repne: false },
  { name: 'cmps', op: 0xa6, reads: [6, 7], flags: true, repne: true },
  { name: 'stos', op: 0xaa, reads: [7], flags: false, repne: false },
  { name: 'lods', op: 0xac, reads: [6], flags: false, repne: false },
  { name: 'scas', op: 0xae, reads: [7], flags: true, repne: true },
];

/** String operations: bounded RCX (sometimes 0), either DF, 67 for ESI/EDI/ECX. */
function string(g: Gen): void {
  const s = g.pick(STR), size = g.pick([1, 2, 4, 8] as const);
  const rep = g.pick(s.repne ? ['', 'rep', 'repne'] : ['', 'rep', 'rep']);
  // A GS override moves the source (RSI) of MOVS/CMPS/LODS; the destination (RDI, ES) stays.
  const gs = s.reads.includes(6) && g.chance(0.2);
  const a32 = !gs && g.chance(0.25);
  const n = rep ? g.pick([0, 1, 2, g.below(17)]) : 1;
  const hi = () => (a32 ? BigInt(g.rng.u32()) << 32n : 0n); // garbage that 67 must ignore
  if (g.chance(0.4)) { const std = g.chance(0.5); g.emit({ opcode: [std ? 0xfd : 0xfc], size: 4 }, std ? 'std' : 'cld'); }
  for (const r of s.reads) g.setReg(r, BigInt(g.scratchTarget(size * 16, size * 16) + size * 8) | hi());
  if (rep) g.setReg(RCX_N, BigInt(n) | hi());
  if (s.name === 'lods' && size === 1 && g.chance(0.5)) g.setReg(0, g.u64());
  if (gs) g.setReg(6, BigInt(g.scratchTarget(size * 16, size * 16) + size * 8 - GS_BASE));
  const pre = [...(gs ? [0x65] : []), ...(rep === 'rep' ? [0xf3] : rep === 'repne' ? [0xf2] : []), ...(a32 ? [0x67] : [])];
  const fx = s.flags && n > 0 ? { writes: ARITH } : {};
  g.emit({ prefixes: pre, opcode: [s.op + (size === 1 ? 0 : 1)], size }, `${rep ? rep + ' ' : ''}${s.name}${sz(size)}${a32 ? '/a32' : ''}${gs ? '/gs' : ''}`, fx);
}

/**
 * Long REP strings (up to 1.5 KiB, either direction, sources and destinations that may
 * overlap by a few bytes: a forward MOVSB onto its own source + 1 replicates a byte,
 * which a memmove-style fast path gets wrong).
 */
function bulkString(g: Gen): void {
  const s = g.pick(STR), size = g.pick([1, 2, 4, 8] as const);
  const std = g.chance(0.4);
  const n = 1 + g.below(1536 / size);
  g.emit({ opcode: [std ? 0xfd : 0xfc], size: 4 }, std ? 'std' : 'cld');
  const start = () => (std ? DATA_BASE + 0x1f00 - g.below(256) : DATA_BASE + 0x100 + g.below(256));
  const src = start();
  for (const r of s.reads) g.setReg(r, BigInt(r === 7 && s.reads.length === 2 && g.chance(0.6) ? src + g.below(4 * size + 1) - 2 * size : src));
  if (s.reads.length === 2 && g.chance(0.3)) g.setReg(7, BigInt(start()));
  g.setReg(RCX_N, BigInt(n));
  const rep = s.repne && g.chance(0.5) ? 0xf2 : 0xf3;
  g.emit({ prefixes: [rep], opcode: [s.op + (size === 1 ? 0 : 1)], size }, `${rep === 0xf2 ? 'repne' : 'rep'} ${s.name}${sz(size)} bulk`, s.flags ? { writes: ARITH } : {});
}

/**
 * Self-modifying code: MOV byte [rip+d], imm8 rewrites the immediate of a MOV r8, imm8
 * a few instructions later; the CPU (and a decoded-instruction cache) must run the new byte.
 */
function selfModify(g: Gen): void {
  if (g.inBlock) return;
  const r = g.freeReg(1), nv = g.below(256);
  // C6 05 disp32 imm8 (7 bytes), then 0–2 filler instructions, then B0+r ib.
  const storeAt = g.bytes.length;
  g.emit({ opcode: [0xc6], size: 1, reg: 0, rm: { kind: 'mem', size: 1, scale: 1, disp: 0, dispBytes: 4, rip: true, target: g.at() }, imm: { value: BigInt(nv), bytes: 1 } }, 'smc store', {});
  const storeEnd = g.bytes.length, dispAt = storeEnd - 5;
  for (let i = g.below(3); i > 0; i--) g.emit({ opcode: [0x90], size: 4 }, 'nop/pause/endbr64');
  const movAt = g.bytes.length;
  g.emit({ opcode: [0xb0], size: 1, opreg: r, imm: { value: BigInt(g.below(256)), bytes: 1 } }, 'mov r,imm (modified)');
  const immAt = g.bytes.length - 1;
  for (const m of g.meta) if (m.off >= storeAt && m.off < movAt) m.noCut = true; // the store and the fillers
  const d = immAt - storeEnd;
  for (let i = 0; i < 4; i++) g.bytes[dispAt + i] = (d >> (8 * i)) & 0xff;
}

/**
 * Two entries into the same bytes: MOV EAX, imm32 runs whole, then a JMP r lands on its
 * imm32, which decodes as other instructions (a decoded-instruction cache keyed by
 * address must tell them apart). RCX counts the two passes.
 *   mov ecx, 2; lea r, [rip+A]
 *   A: B8 <4 bytes of code>; add r, 1; dec ecx; jz done; jmp r
 *   done:
 */
function overlapEntry(g: Gen): void {
  if (g.inBlock) return;
  const r = g.freeReg(8, [0, 1]);
  g.setReg(RCX_N, 2n);
  g.emit({ opcode: [0x8d], size: 8, reg: r, rm: { kind: 'mem', size: 8, scale: 1, disp: 0, dispBytes: 4, rip: true, target: g.at() } }, 'lea rip');
  patch(g, g.bytes.length - 4, 4, 0); // A is the next instruction: RIP + 0
  const inner = g.pick([[0x31, 0xc0, 0x90, 0x90], [0xff, 0xc0, 0x90, 0x90], [0xf7, 0xd8, 0x90, 0x90], [0xd1, 0xe0, 0x90, 0x90], [0x66, 0x05, 0x34, 0x12]]);
  g.raw([0xb8, ...inner], 'mov eax,imm32 (entered twice)');
  g.emit({ opcode: [0x83], size: 8, reg: 0, rm: r, imm: { value: 1n, bytes: 1 } }, 'add 83 E,Ir/64', { writes: ARITH });
  g.emit({ opcode: [0xff], size: 4, reg: 1, rm: reg(RCX_N, 4) }, 'dec/32', { writes: ARITH & ~CF });
  g.emit({ opcode: [0x74], size: 8, defaultSize64: true, imm: { value: 0n, bytes: 1 } }, 'je rel8', { reads: ZF });
  const jz = g.bytes.length;
  g.emit({ opcode: [0xff], size: 8, defaultSize64: true, reg: 4, rm: r }, 'jmp r (back)');
  patch(g, jz - 1, 1, g.bytes.length - jz);
  g.U |= ARITH; // the second pass ran other flag writers: compare nothing until redefined
}

/** Once per case: JMP to just before the second code page, where an instruction straddles the two pages. */
function straddle(g: Gen): void {
  if (g.inBlock || g.bytes.length > 0x1000 - 64) return;
  const k = 1 + g.below(6); // bytes of the next instruction left on the first page
  g.emit({ opcode: [0xe9], size: 8, defaultSize64: true, imm: { value: 0n, bytes: 4 } }, 'jmp rel32');
  patch(g, g.bytes.length - 4, 4, 0x1000 - k - g.bytes.length);
  while (g.bytes.length < 0x1000 - k) g.bytes.push(0xcc);
  const r = g.freeReg(8);
  g.emit({ opcode: [0xb8], size: 8, opreg: r, imm: { value: g.u64(), bytes: 8 } }, 'mov r,imm/64 across pages');
}

function flagOps(g: Gen): void {
  switch (g.below(8)) {
    case 0: g.emit({ opcode: [0xf8], size: 4 }, 'clc', { writes: CF }); break;
    case 1: g.emit({ opcode: [0xf9], size: 4 }, 'stc', { writes: CF }); break;
    case 2: g.emit({ opcode: [0xf5], size: 4 }, 'cmc', { reads: CF, writes: CF }); break;
    case 3: g.emit({ opcode: [g.chance(0.5) ? 0xfc : 0xfd], size: 4 }, 'cld/std'); break;
    case 4: g.emit({ opcode: [0x9f], size: 4 }, 'lahf', { reads: SF | ZF | AF | PF | CF }); break;
    case 5: g.emit({ opcode: [0x9e], size: 4 }, 'sahf', { writes: SF | ZF | AF | PF | CF }); break;
    default: { // PUSHF, optionally edit the image (arithmetic flags and DF only), POPF
      if (!canPush(g, 8)) return;
      const w = g.chance(0.2) ? 2 : 8;
      g.emit({ opcode: [0x9c], size: w === 2 ? 2 : 8, defaultSize64: true }, `pushf${sz(w as Size)}`, { reads: ARITH });
      if (g.chance(0.7)) {
        // Arithmetic flags and DF; sometimes the bits CPL 3 may (NT, ID, AC) or may not (IF, IOPL) change.
        let sys = g.chance(0.2) ? g.pick([0x200, 0x3000, 0x4000, 0x200000, 0x204200]) : 0;
        if (g.chance(0.03)) sys |= 0x40000; // AC: misaligned accesses fault from here on (#AC)
        const bits = BigInt((g.below(0x10000) & (ARITH | DF)) | sys), op = g.pick([1, 4, 6]); // or, and, xor
        g.emit({ opcode: [0x81], size: w === 2 ? 2 : 8, reg: op, rm: { kind: 'mem', size: 8, base: RSP, scale: 1, disp: 0, dispBytes: 0 }, imm: { value: op === 4 ? ~bits : bits, bytes: w === 2 ? 2 : 4 } }, 'setup', { writes: ARITH, undef: AF });
      }
      g.emit({ opcode: [0x9d], size: w === 2 ? 2 : 8, defaultSize64: true }, `popf${sz(w as Size)}`, { writes: ARITH });
    }
  }
}

/** The NOP and hint space: multi-byte NOPs, PAUSE, ENDBR64, prefetches, fences, CLFLUSH. */
function nops(g: Gen): void {
  switch (g.below(9)) {
    case 0: g.raw(g.pick([[0x90], [0x66, 0x90], [0xf3, 0x90], [0xf3, 0x0f, 0x1e, 0xfa]]), 'nop/pause/endbr64'); break;
    case 1: case 2: g.emit({ opcode: [0x0f, 0x1f], size: g.pick(VSIZES), reg: 0, rm: g.chance(0.5) ? g.mem(4) : g.anyReg(4) }, 'nop Ev'); break;
    case 3: g.emit({ opcode: [0x0f, 0x18], size: 4, reg: g.below(4), rm: g.mem(1) }, 'prefetch'); break;
    case 4: g.emit({ opcode: [0x0f, 0x0d], size: 4, reg: g.below(3), rm: g.mem(1) }, 'prefetchw'); break;
    case 5: g.raw(g.pick([[0x0f, 0xae, 0xe8], [0x0f, 0xae, 0xf0], [0x0f, 0xae, 0xf8]]), 'lfence/mfence/sfence'); break;
    case 6: g.emit({ opcode: [0x0f, 0xae], size: 4, reg: 7, rm: g.mem(1) }, 'clflush'); break;
    case 7: { // a REX before a legacy prefix is ignored: 48 66 01 C0 is add ax, ax
      if (g.chance(0.5)) { g.emit({ prefixes: [0x48, 0x66], opcode: [0x01], size: 4, reg: g.anyReg(4, [4]), rm: g.freeReg(4) }, 'add with REX before 66', { writes: ARITH }); break; }
      g.emit({ prefixes: [0x66, 0x66], opcode: [0x01], size: 4, reg: g.anyReg(4, [4]), rm: g.freeReg(4) }, 'add with 66 66', { writes: ARITH });
      break;
    }
    default: { // prefixes that change nothing here: FS/GS/hints on a register form, 66 on a byte op
      const p = g.pick([0x2e, 0x36, 0x3e, 0x26, 0x64, 0x65]);
      const size = g.pick([1, 4, 8] as const);
      g.emit({ prefixes: [p, ...(size === 1 && g.chance(0.5) ? [0x66] : [])], opcode: [size === 1 ? 0x00 : 0x01], size, reg: g.anyReg(size), rm: g.freeReg(size) }, 'add with ignored prefix', { writes: ARITH });
    }
  }
}

const UD_BYTES = [[0x06], [0x07], [0x0e], [0x16], [0x17], [0x1e], [0x1f], [0x27], [0x2f], [0x37], [0x3f], [0x60], [0x61],
  [0x82, 0xc0, 0x01], [0x9a], [0xce], [0xd4, 0x0a], [0xd5, 0x0a], [0xd6], [0xea], [0x0f, 0x0b], [0x0f, 0xb9, 0xc0],
  [0xf0, 0x01, 0xc0], [0xf0, 0x89, 0x00], [0x8e, 0xc8], [0xf0, 0x90], [0xff, 0xd8], [0xff, 0xe8]];
// CLAC/STAC are #UD (not #GP) at CPL 3.
const PRIV_BYTES = [[0xf4], [0xfa], [0xfb], [0xe4, 0x80], [0xe5, 0x70], [0xe6, 0x80], [0xe7, 0x70], [0xec], [0xed], [0xee], [0xef],
  [0x6c], [0x6d], [0x6e], [0x6f], [0x0f, 0x32], [0x0f, 0x30], [0x0f, 0x20, 0xc0], [0x0f, 0x22, 0xd8], [0x0f, 0x20, 0xe0],
  [0x0f, 0x09], [0x0f, 0x01, 0xf8], [0x44, 0x0f, 0x20, 0xc0], [0x44, 0x0f, 0x22, 0xc0],
  [0x0f, 0x00, 0xd8], [0x0f, 0x01, 0x10], [0x0f, 0x01, 0x18], [0x0f, 0x01, 0x38], [0x0f, 0x01, 0xca], [0x0f, 0x01, 0xcb]];

/** Terminal cases: the snippet ends in a fault the interpreter must raise with the same vector. */
function terminal(g: Gen): void {
  switch (g.below(15)) {
    case 0: case 1: g.raw(g.pick(UD_BYTES), '#UD'); break;
    case 2: case 3: g.raw(g.pick(PRIV_BYTES), '#GP privileged'); break;
    case 4: { // memory operands into mapped/unmapped territory: #PF (cr2) or straddling the end
      const size = g.pick([1, 2, 4, 8] as const), store = g.chance(0.5);
      const target = g.chance(0.5) ? UNMAPPED + g.below(4096 - 8) : UNMAPPED - 1 - g.below(size - 1 || 1);
      if (g.chance(0.3)) { // read-modify-write: the load carries the write intent (#PF error code W=1)
        const m = g.mem(size, [], target), r = g.anyReg(size), b = size === 1 ? 0 : 1;
        const forms: [number[], number | typeof r][] = [[[0x00 + b], r], [[0x30 + b], r], [[0xfe + b], 1], [[0xf6 + b], 3], [[0xd0 + b], 4], [[0x86 + b], r], [[0x0f, 0xc0 + b], r], [[0x0f, 0xb0 + b], r]];
        if (size > 1) forms.push([[0x0f, 0xab], r], [[0x0f, 0xba], 6]);
        const [opcode, regf] = g.pick(forms);
        g.emit({ opcode, size, reg: regf, rm: m, imm: opcode[1] === 0xba ? { value: 3n, bytes: 1 } : undefined }, '#PF rmw', { writes: ARITH, undef: ARITH });
      } else if (size > 1 && g.chance(0.2)) { // CMOVcc reads its source even when the condition is false
        const cc = g.below(16);
        g.emit({ opcode: [0x0f, 0x40 + cc], size, reg: g.freeReg(size), rm: g.mem(size, [], target) }, '#PF cmov', { reads: CC_READS[cc] });
      } else g.emit({ opcode: [store ? 0x89 : 0x8b], size, reg: g.freeReg(size), rm: g.mem(size, [], target) }, `#PF ${store ? 'store' : 'load'}`);
      break;
    }
    case 5: { // non-canonical: #GP, or #SS with an RSP/RBP base
      const ss = g.chance(0.5), b = ss ? RBP : g.freeReg(8, [RBP]).n;
      if (ss && g.reserved.has(RBP)) return;
      g.setReg(b, (g.chance(0.5) ? 0x8000_0000_0000_0000n : 0x0000_8000_0000_0000n) + BigInt(g.below(4096)));
      g.emit({ opcode: [0x8b], size: 8, reg: g.freeReg(8, [b]), rm: { kind: 'mem', size: 8, base: b, scale: 1, disp: 8, dispBytes: 1 } }, ss ? '#SS non-canonical' : '#GP non-canonical');
      break;
    }
    case 6: { // INT3 (#BP, an exception), or INT n through a DPL 0 gate: #GP(vector×8+2).
      // INT n through a DPL 3 gate (3, 4, 0x80 on Linux) is delivered to a kernel: not generated.
      const v = g.pick([3, 3, 0x20, 0x21, 0x30, 0x41, 0x81, 0xff, 0x0d, 0x0e]);
      if (v === 3) g.raw([0xcc], 'int3'); else g.raw([0xcd, v], 'int n');
      break;
    }
    case 7: { // CMPXCHG16B on a misaligned operand: #GP(0)
      const m = g.mem(8, [0, 1, 2, 3], (g.scratchTarget(32) & ~15) + 8);
      g.emit({ opcode: [0x0f, 0xc7], size: 4, rexW: true, reg: 1, rm: m }, '#GP cmpxchg16b misaligned');
      break;
    }
    case 8: // more than 15 bytes: #GP(0)
      g.raw([...Array(14).fill(0x2e), 0x01, 0xc0], '#GP too long');
      break;
    case 10: { // REP STOS/MOVS running into the unmapped page: #PF mid-way, RCX/RDI/RSI show the progress
      const size = g.pick([1, 2, 4, 8] as const), k = g.below(6);
      g.setReg(7, BigInt(UNMAPPED - k * size - g.below(size)));
      g.setReg(6, BigInt(g.scratchTarget(64)));
      g.setReg(RCX_N, BigInt(k + 1 + g.below(4)));
      g.emit({ opcode: [0xfc], size: 4 }, 'cld');
      g.emit({ prefixes: [0xf3], opcode: [(g.chance(0.5) ? 0xaa : 0xa4) + (size === 1 ? 0 : 1)], size }, '#PF rep string mid-way');
      break;
    }
    case 11: { // a PUSH onto an unmapped page: #PF, RSP unchanged
      if (g.reserved.has(RBP)) return;
      g.emit({ opcode: [0x8d], size: 8, reg: reg(RSP, 8), rm: { kind: 'mem', size: 8, scale: 1, disp: 0, dispBytes: 4, rip: true, target: UNMAPPED + 8 + 8 * g.below(4) } }, 'setup');
      g.emit({ opcode: [0x50], size: 8, defaultSize64: true, opreg: g.anyReg(8) }, '#PF push');
      break;
    }
    case 14: { // a load straddling the top of the lower canonical half: #PF or #GP, which first?
      const size = g.pick([2, 4, 8] as const), tr = g.freeReg(8);
      g.setReg(tr.n, 0x0000_8000_0000_0000n - BigInt(1 + g.below(size - 1)));
      g.emit({ opcode: [0x8b], size, reg: g.freeReg(size), rm: { kind: 'mem', size, base: tr.n, scale: 1, disp: 0, dispBytes: 0 } }, '#GP/#PF load across the canonical boundary');
      break;
    }
    case 12: { // JMP/CALL to a non-canonical address: #GP(0) on the branch itself
      const tr = g.freeReg(8);
      g.setReg(tr.n, g.pick([0x8000_0000_0000_0000n, 0x0000_8000_0000_0000n, 0xffff_7fff_ffff_f000n]));
      g.emit({ opcode: [0xff], size: 8, defaultSize64: true, reg: g.chance(0.5) ? 4 : 2, rm: tr }, '#GP branch non-canonical');
      break;
    }
    case 13: { // an instruction that runs off the end of the code page: #PF on the fetch of its tail
      const tail = g.pick([[0x48, 0xb8, 1, 2, 3, 4, 5, 6, 7, 8], [0x0f, 0x1f, 0x84, 0, 0, 0, 0, 0], [0x66, 0x66, 0x2e, 0x0f, 0x1f, 0x84, 0, 0, 0, 0, 0], [0x0f, 0x0b]]);
      const k = 1 + g.below(tail.length - 1); // bytes on this page
      g.emit({ opcode: [0xe9], size: 8, defaultSize64: true, imm: { value: 0n, bytes: 4 } }, 'jmp rel32');
      patch(g, g.bytes.length - 4, 4, CODE_SIZE - k - g.bytes.length);
      while (g.bytes.length < CODE_SIZE - k) g.bytes.push(0xcc);
      g.meta.push({ off: g.bytes.length, len: k, cls: '#PF fetch across the page end', uBefore: g.U });
      g.bytes.push(...tail.slice(0, k)); // fills the page: no end marker after it
      break;
    }
    default: { // fetch from an unmapped page
      const tr = g.freeReg(8);
      g.setReg(tr.n, BigInt(UNMAPPED + 16 * g.below(64)));
      g.emit({ opcode: [0xff], size: 8, defaultSize64: true, reg: g.chance(0.5) ? 4 : 2, rm: tr }, '#PF fetch');
    }
  }
  g.ended = true;
}

/** Forms allowed inside skippable blocks and subroutines (no stack, no branches). */
let BLOCK_FORMS: Form[] = [];
export function setBlockForms(forms: Form[]): void { BLOCK_FORMS = forms; }

export const FLOW_FORMS: Form[] = [
  { name: 'push', weight: 5, gen: push },
  { name: 'enterLeave', weight: 1, gen: enterLeave },
  { name: 'condJump', weight: 5, gen: condJump },
  { name: 'jumpOver', weight: 1, gen: jumpOver },
  { name: 'call', weight: 2, gen: call },
  { name: 'jumpIndirect', weight: 1, gen: jumpIndirect },
  { name: 'string', weight: 6, gen: string },
  { name: 'flagOps', weight: 4, gen: flagOps },
  { name: 'bulkString', weight: 1, gen: bulkString },
  { name: 'selfModify', weight: 1, gen: selfModify },
  { name: 'overlapEntry', weight: 1, gen: overlapEntry },
  { name: 'straddle', weight: 1, gen: straddle },
  { name: 'nops', weight: 2, gen: nops },
];
export const TERMINAL: Form = { name: 'terminal', weight: 0, gen: terminal };
