#!/usr/bin/env node
// Builds memvisor-os with the system gcc and ld: the user programs (flat
// binaries), then the kernel ELF that embeds them. Reproducible: relative
// source paths, -ffile-prefix-map, no debug info, no .comment, no build id,
// a fixed file order. Usage: node guests/os/build.mjs [--out DIR]
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const OS_DIR = dirname(fileURLToPath(import.meta.url));
export const PROGRAMS = ['hello', 'toucher', 'random', 'forktree', 'pagecache', 'sleeper', 'crash'];
const KERNEL_SOURCES = ['kernel/entry.S', 'kernel/main.c', 'kernel/serial.c', 'kernel/lib.c', 'kernel/gdt.c',
  'kernel/trap.c', 'kernel/apic.c', 'kernel/pmm.c', 'kernel/vm.c', 'kernel/uspace.c', 'kernel/proc.c',
  'kernel/syscall.c', 'kernel/balloon.c', 'kernel/hotplug.c', 'kernel/programs.c', 'kernel/user_blobs.S'];
const USER_LIB = ['user/crt0.S', 'user/ulib.c'];

const COMMON = ['-std=gnu11', '-O2', '-ffreestanding', '-fno-pic', '-fno-pie', '-fno-stack-protector',
  '-fcf-protection=none', '-fno-asynchronous-unwind-tables', '-fno-unwind-tables', '-fno-ident',
  '-fno-tree-loop-distribute-patterns', '-mno-sse', '-mno-sse2', '-mno-mmx', '-mno-80387',
  '-mgeneral-regs-only', '-Wall', '-Wextra', `-ffile-prefix-map=${OS_DIR}=.`];
const KERNEL_FLAGS = [...COMMON, '-mno-red-zone', '-mcmodel=kernel'];
const USER_FLAGS = [...COMMON, '-mcmodel=small'];
const LD_FLAGS = ['-nostdlib', '-static', '--build-id=none', '-z', 'max-page-size=0x1000', '-z', 'noexecstack'];

function run(cmd, args) {
  execFileSync(cmd, args, { cwd: OS_DIR, stdio: ['ignore', 'inherit', 'inherit'] });
}

function toolVersion(cmd) {
  return execFileSync(cmd, ['--version'], { encoding: 'utf8' }).split('\n')[0].trim();
}

/** sha256 over every source file (path and content), in sorted order. */
export function sourcesHash() {
  const h = createHash('sha256');
  const files = ['build.mjs'];
  for (const dir of ['include', 'kernel', 'user'])
    for (const f of readdirSync(join(OS_DIR, dir)).sort()) files.push(`${dir}/${f}`);
  for (const f of files) h.update(`${f}\0`).update(readFileSync(join(OS_DIR, f))).update('\0');
  return h.digest('hex');
}

function compile(src, obj, flags, extra = []) {
  run('gcc', [...flags, ...extra, '-c', src, '-o', obj]);
}

/** Builds into outDir; returns the kernel ELF path. */
export function build(outDir) {
  const out = resolve(outDir);
  const work = mkdtempSync(join(tmpdir(), 'memvisor-os-'));
  try {
    mkdirSync(out, { recursive: true });
    const userObjs = USER_LIB.map((src, i) => {
      const obj = join(work, `ulib${i}.o`);
      compile(src, obj, USER_FLAGS);
      return obj;
    });
    for (const p of PROGRAMS) {
      const obj = join(work, `${p}.o`), elf = join(work, `${p}.elf`);
      compile(`user/${p}.c`, obj, USER_FLAGS);
      run('ld', [...LD_FLAGS, '-T', 'user/linker.ld', '-o', elf, ...userObjs, obj]);
      run('objcopy', ['-O', 'binary', elf, join(work, `${p}.bin`)]);
    }
    const kobjs = KERNEL_SOURCES.map((src, i) => {
      const obj = join(work, `k${String(i).padStart(2, '0')}.o`);
      compile(src, obj, KERNEL_FLAGS, src.endsWith('user_blobs.S') ? [`-Wa,-I,${work}`] : []);
      return obj;
    });
    const elf = join(out, 'memvisor-os.elf');
    run('ld', [...LD_FLAGS, '-T', 'kernel/linker.ld', '-Map', join(work, 'kernel.map'), '-o', elf, ...kobjs]);
    const info = {
      kernel: 'memvisor-os.elf',
      sha256: createHash('sha256').update(readFileSync(elf)).digest('hex'),
      sources: sourcesHash(),
      gcc: toolVersion('gcc'),
      ld: toolVersion('ld'),
      programs: PROGRAMS,
    };
    writeFileSync(join(out, 'BUILD-INFO.json'), `${JSON.stringify(info, null, 2)}\n`);
    return elf;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const i = process.argv.indexOf('--out');
  const out = i > 0 ? process.argv[i + 1] : join(OS_DIR, 'bin');
  const elf = build(out);
  console.log(`built ${elf}`);
}
