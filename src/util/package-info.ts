// memvisor's own package.json, found by walking up from this file: the same code runs from
// src/util (a clone) and dist/src/util (an installed package), at different depths.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface PackageInfo {
  version: string;
  /** The folder holding package.json. */
  root: string;
}

let cached: PackageInfo | undefined;

export function packageInfo(): PackageInfo {
  if (cached) return cached;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const file = join(dir, 'package.json');
    if (existsSync(file)) {
      const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'memvisor') return (cached = { version: pkg.version ?? '0.0.0', root: dir });
    }
    const up = dirname(dir);
    if (up === dir) return (cached = { version: 'unknown', root: dirname(fileURLToPath(import.meta.url)) });
    dir = up;
  }
}

export interface GitState { commit: string; dirty: boolean }

let git: GitState | null | undefined;

/**
 * The commit of memvisor's own clone, when it runs from one (a .git beside package.json);
 * null for an installed package, which must not report the user's repository instead.
 */
export function gitState(): GitState | null {
  if (git !== undefined) return git;
  const { root } = packageInfo();
  git = null;
  if (!existsSync(join(root, '.git'))) return git;
  try {
    const out = execFileSync('git', ['describe', '--always', '--dirty', '--abbrev=40'], {
      cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 5000,
    }).trim();
    const m = /^([0-9a-f]{40})(-dirty)?$/.exec(out);
    if (m) git = { commit: m[1], dirty: m[2] !== undefined };
  } catch { /* no git on PATH: the commit is unknown */ }
  return git;
}
