#!/usr/bin/env node
// Test-only: boots memvisor-os under QEMU (KVM when /dev/kvm is usable) through
// a tiny multiboot shim that speaks the Limine subset memvisor-os needs. Lets the
// kernel be checked on a real x86 implementation, independently of memvisor's
// interpreter. Usage: node guests/os/qemu/run.mjs [kernel.elf] [--cmdline "..."]
//   [--memory 128] [--timeout 60] [--kvm]
import { execFileSync, spawnSync } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const opt = (name, dflt) => { const i = args.indexOf(name); return i >= 0 ? args.splice(i, 2)[1] : dflt; };
const flag = (name) => { const i = args.indexOf(name); if (i >= 0) args.splice(i, 1); return i >= 0; };
const cmdline = opt('--cmdline', ''), memory = opt('--memory', '128'), timeout = Number(opt('--timeout', '60'));
const tcg = !flag('--kvm'); // KVM is opt-in: nested KVM hosts vary
const kernel = args[0] ?? join(HERE, '..', 'bin', 'memvisor-os.elf');

const work = mkdtempSync(join(tmpdir(), 'mbshim-'));
try {
  const flags = ['-O2', '-ffreestanding', '-fno-pic', '-fno-pie', '-mno-red-zone', '-mgeneral-regs-only',
    '-fno-stack-protector', '-fcf-protection=none', '-fno-asynchronous-unwind-tables', '-c'];
  execFileSync('gcc', [...flags, join(HERE, 'mbshim.S'), '-o', join(work, 's.o')]);
  execFileSync('gcc', [...flags, join(HERE, 'mbshim.c'), '-o', join(work, 'c.o')]);
  execFileSync('ld', ['-nostdlib', '-static', '-T', join(HERE, 'mbshim.ld'), '-o', join(work, 'shim.elf'), join(work, 's.o'), join(work, 'c.o')]);
  execFileSync('objcopy', ['-O', 'binary', join(work, 'shim.elf'), join(work, 'shim.bin')]);
  let kvm = !tcg;
  try { accessSync('/dev/kvm', constants.R_OK | constants.W_OK); } catch { kvm = false; }
  const q = ['-machine', 'pc', ...(kvm ? ['-accel', 'kvm', '-cpu', 'qemu64,+x2apic,+pcid,+invpcid,+nx,+syscall,+popcnt'] : ['-accel', 'tcg', '-cpu', process.env.QEMU_CPU ?? 'max']),
    '-m', memory, '-display', 'none', '-serial', 'stdio', '-no-reboot', '-monitor', 'none',
    '-device', 'isa-debug-exit,iobase=0xf4,iosize=0x04',
    '-kernel', join(work, 'shim.bin'), '-initrd', kernel, '-append', cmdline];
  const r = spawnSync('timeout', [String(timeout), 'qemu-system-x86_64', ...q], { stdio: ['inherit', 'inherit', 'inherit'] });
  console.error(`qemu exit status ${r.status} (${kvm ? 'kvm' : 'tcg'})`);
  process.exitCode = r.status ?? 1;
} finally {
  rmSync(work, { recursive: true, force: true });
}
