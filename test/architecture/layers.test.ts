// The layering of docs/architecture.md, checked on the real import graph: data goes down,
// exits go up, and nothing imports a layer above it. Every relative import in src/ and
// guests/ is resolved to a folder and compared by rank; the few known exceptions are
// listed by name (each with the step that removes it), and the list must stay exact.

import { describe, it, expect } from 'vitest';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** Rank of each folder: a file may import only folders of its rank or lower. */
const RANK: Record<string, number> = {
  'src/util': 0, 'src/core': 0, 'src/workload': 0,
  'src/devices': 1,
  'src/hypervisor': 2,
  'src/board': 3,
  'src/scenario': 4, 'src/report': 4,
  'src/experiment': 5,
  'src/cli': 6,
};

/** What guest code may see: the hardware-level core, utilities and the device protocols. */
const GUEST_MAY_IMPORT = ['src/util/', 'src/core/', 'src/workload/', 'src/devices/balloon-protocol.ts', 'src/devices/backdoor-protocol.ts',
  'src/devices/swapdisk-protocol.ts', 'guests/'];

/** Known upward imports, "from -> to"; remove an entry when its import goes. */
const EXCEPTIONS: string[] = [];

function files(dir: string): string[] {
  return readdirSync(join(ROOT, dir)).flatMap((n) => {
    const p = join(dir, n);
    return statSync(join(ROOT, p)).isDirectory() ? files(p) : p.endsWith('.ts') ? [p] : [];
  });
}

function imports(file: string): string[] {
  const text = readFileSync(join(ROOT, file), 'utf8');
  const out: string[] = [];
  for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)\b[^'"]*?from\s+['"](\.[^'"]+)['"]|(?:^|\n)\s*import\s+['"](\.[^'"]+)['"]/g)) {
    const spec = (m[1] ?? m[2]).replace(/\.js$/, '.ts');
    out.push(relative(ROOT, resolve(ROOT, dirname(file), spec)));
  }
  return out;
}

function layer(file: string): string | undefined {
  return Object.keys(RANK).find((k) => file.startsWith(k + '/'));
}

function violations(): string[] {
  const bad: string[] = [];
  for (const f of [...files('src'), ...files('guests')]) {
    if (f === 'src/index.ts') continue; // the public API re-exports every layer
    for (const to of imports(f)) {
      if (f.startsWith('guests/')) {
        if (!GUEST_MAY_IMPORT.some((p) => to.startsWith(p))) bad.push(`${f} -> ${to}`);
        continue;
      }
      const a = layer(f), b = layer(to);
      if (to.startsWith('guests/') && a && RANK[a] < RANK['src/board']) bad.push(`${f} -> ${to}`);
      else if (a && b && RANK[b] > RANK[a]) bad.push(`${f} -> ${to}`);
    }
  }
  return bad.sort();
}

describe('layers', () => {
  it('the scanner sees imports (a sanity check that it can fail)', () => {
    expect(imports('src/cli/main.ts')).toContain('src/experiment/compare.ts');
    expect(layer('src/hypervisor/monitor/vm.ts')).toBe('src/hypervisor');
  });

  it('nothing imports a layer above it, and guests see only core, utilities and device protocols', () => {
    expect(violations()).toEqual([...EXCEPTIONS].sort());
  });
});
