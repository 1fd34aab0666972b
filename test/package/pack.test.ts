// The package as a user gets it: `npm pack`, install the tarball into an empty project
// (offline, from npm's cache), then run the README's library example and the memvisor
// command there with plain node — no tsx, no TypeScript sources, no files of this clone.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';
let work: string;
let project: string;

function npm(args: string[], cwd: string): string {
  return execFileSync(NPM, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'memvisor-pack-'));
  // build:js only: the Wasm core is already built by pretest, and rebuilding it here would
  // rewrite build/memvisor.wasm under tests running in parallel (hence --ignore-scripts).
  npm(['run', 'build:js', '--silent'], ROOT);
  npm(['pack', '--ignore-scripts', '--silent', '--pack-destination', work], ROOT);
  const tarball = readdirSync(work).find((f) => f.endsWith('.tgz'))!;
  project = join(work, 'user');
  mkdirSync(project);
  writeFileSync(join(project, 'package.json'), JSON.stringify(userManifest(tarball)));
  writeFileSync(join(project, 'package-lock.json'), JSON.stringify(userLock(tarball)));
  npm(['ci', '--offline', '--no-audit', '--no-fund', '--ignore-scripts'], project);
}, 240_000);
afterAll(() => { if (work) rmSync(work, { recursive: true, force: true }); });

const USER = { name: 'user', version: '1.0.0', private: true, type: 'module' };

function userManifest(tarball: string) {
  return { ...USER, dependencies: { memvisor: `file:../${tarball}` } };
}

/**
 * The user's lockfile: memvisor from the tarball and memvisor's runtime dependencies at the
 * versions our package-lock.json pins. npm's cache holds those tarballs by integrity but not
 * the registry's version lists, so this is what lets the install run offline; it also means
 * the test installs exactly the dependency tree our users get today.
 */
function userLock(tarball: string) {
  const ours = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8'));
  const root = ours.packages[''];
  const packages: Record<string, unknown> = {
    '': { ...USER, dependencies: { memvisor: `file:../${tarball}` } },
    'node_modules/memvisor': {
      version: root.version, resolved: `file:../${tarball}`, license: root.license,
      dependencies: root.dependencies, bin: root.bin, engines: root.engines,
    },
  };
  for (const [path, entry] of Object.entries<{ dev?: boolean }>(ours.packages)) {
    if (path !== '' && !entry.dev) packages[path] = entry;
  }
  return { name: USER.name, version: USER.version, lockfileVersion: 3, requires: true, packages };
}

/** The first ```ts block after "## Using the library" in the README. */
function readmeLibraryExample(): string {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Using the library'));
  return /```ts\n([\s\S]*?)```/.exec(section)![1];
}

/**
 * Turns each `expr; // { expected }` line of the example into a check that the value has
 * every field the comment shows, so the README's claimed results are what the package does.
 */
function checkedExample(code: string): { script: string; checks: number } {
  let checks = 0;
  const lines = code.split('\n').map((line) => {
    const m = /^(cpu\.[^;]+);\s*\/\/\s*(\{.*\})\s*$/.exec(line);
    if (!m) return line;
    checks++;
    return `check(${JSON.stringify(m[1])}, ${m[1]}, ${m[2]});`;
  });
  const prelude = `
const check = (what, got, want) => {
  for (const [k, v] of Object.entries(want)) {
    if (got[k] !== v) { console.error(what, k, String(got[k]), '!==', String(v)); process.exit(2); }
  }
  console.log('ok', what);
};`;
  // Imports first (ES modules), then the checker, then the rest.
  const imports = lines.filter((l) => l.startsWith('import '));
  const body = lines.filter((l) => !l.startsWith('import '));
  return { script: [...imports, prelude, ...body].join('\n'), checks };
}

describe('the packed package', () => {
  it('holds the compiled code, declarations, the Wasm core and every folder the root re-exports', () => {
    const pkg = join(project, 'node_modules', 'memvisor');
    const files = readdirSync(pkg, { recursive: true }) as string[];
    for (const f of ['dist/src/index.js', 'dist/src/index.d.ts', 'dist/guests/kernel/kernel.js',
      'dist/build/memvisor.wasm', 'dist/build/memvisor.js', 'bin/memvisor.mjs', 'scenarios/fig7-idle-tax.json', 'schema/scenario.schema.json']) {
      expect(files).toContain(f);
    }
    expect(files.filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts') && !f.startsWith('assembly'))).toEqual([]);
    expect(readdirSync(join(project, 'node_modules'))).not.toContain('tsx');
  });

  it("runs the README's library example with plain node and gets the results it shows", () => {
    const { script, checks } = checkedExample(readmeLibraryExample());
    expect(checks).toBeGreaterThanOrEqual(2);
    writeFileSync(join(project, 'example.mjs'), script);
    const r = spawnSync(process.execPath, ['example.mjs'], { cwd: project, encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout.trim().split('\n')).toHaveLength(checks);
  });

  it('the memvisor bin runs on plain node: --version, experiments, and a small run with its plots', () => {
    const bin = join(project, 'node_modules', '.bin', 'memvisor');
    const version = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version;
    const v = spawnSync(bin, ['--version'], { cwd: project, encoding: 'utf8' });
    expect(v.stdout.trim()).toBe(version);
    const e = spawnSync(bin, ['experiments'], { cwd: project, encoding: 'utf8' });
    expect(e.status).toBe(0);
    expect(e.stdout).toMatch(/^translation\s/m);
    writeFileSync(join(project, 'tiny.json'), JSON.stringify({
      kind: 'translation', name: 'tiny', memory: '64MiB', accesses: 500, runs: [{ pattern: 'random', workingSet: '64KiB' }],
    }));
    const r = spawnSync(bin, ['run', 'tiny.json', '--out', 'report', '--quiet'], { cwd: project, encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(readFileSync(join(project, 'report', 'cycles-per-access.svg'), 'utf8')).toMatch(/aria-roledescription="bar"/);
    // An installed package reports its version and no commit (the project's git is not memvisor's).
    const { provenance } = JSON.parse(readFileSync(join(project, 'report', 'result.json'), 'utf8'));
    expect(provenance).toMatchObject({ memvisor: version, node: process.version, seed: 1, scenario: { name: 'tiny', memory: 64 * 2 ** 20 } });
    expect(provenance.gitCommit).toBeUndefined();
  }, 60_000);

  it('a sweep runs on worker threads from dist/ (sweep-worker.js) and gives the figures of a serial run', async () => {
    const bin = join(project, 'node_modules', '.bin', 'memvisor');
    writeFileSync(join(project, 'sweep.json'), JSON.stringify({
      kind: 'translation', name: 'tinysweep', memory: '64MiB', accesses: 300, runs: [{ pattern: 'random', workingSet: '64KiB' }],
      sweep: { vary: { 'runs[0].pattern': ['random', 'sequential'] }, seeds: [1, 2] },
    }));
    // Asynchronous, so vitest's worker stays responsive during the runs.
    const run = (jobs: string, out: string) => new Promise<{ status: number | null; stderr: string }>((done) => {
      const child = spawn(bin, ['run', 'sweep.json', '--out', out, '--jobs', jobs, '--quiet'], { cwd: project });
      let stderr = '';
      child.stderr.on('data', (d) => { stderr += d; });
      child.on('close', (status) => done({ status, stderr }));
    });
    const two = await run('2', 'sweep-j2');
    expect(two.stderr).toBe('');
    expect(two.status).toBe(0);
    expect((await run('1', 'sweep-j1')).status).toBe(0);
    const figures = (dir: string) => {
      const doc = JSON.parse(readFileSync(join(project, dir, 'sweep.json'), 'utf8'));
      // simAccessesPerSec (host wall-clock speed) is the one figure that differs run to run.
      return doc.points.map((p: { runs: { dir: string }[] }) => p.runs.map((r) => {
        const res = JSON.parse(readFileSync(join(project, dir, r.dir, 'result.json'), 'utf8'));
        return res.series.runs.map(({ simAccessesPerSec: _w, ...row }: Record<string, unknown>) => row);
      }));
    };
    expect(figures('sweep-j2')).toEqual(figures('sweep-j1'));
    expect(figures('sweep-j1').flat(2)).toHaveLength(4);
  }, 120_000);

  it('its declarations type-check a TypeScript user of the package', () => {
    writeFileSync(join(project, 'use.ts'), [
      "import { Machine, type Translation } from 'memvisor';",
      'const m: Machine = await Machine.create({ memoryBytes: 2 ** 22 });',
      'const t: Translation = m.createCpu().translate(0n);',
      'export const ok: boolean = t.ok;',
    ].join('\n'));
    writeFileSync(join(project, 'tsconfig.json'), JSON.stringify({
      compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, noEmit: true, skipLibCheck: true, types: [] },
      files: ['use.ts'],
    }));
    const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
    const r = spawnSync(process.execPath, [tsc, '-p', project], { cwd: project, encoding: 'utf8' });
    expect(r.stdout + r.stderr).toBe('');
    expect(r.status).toBe(0);
  }, 60_000);
});
