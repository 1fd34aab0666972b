// `npm run test:seeds [-- N | a..b [path ...]]`: runs every property test (the test files
// that use helpers/seeds.ts, or those whose path contains one of the given strings) over
// many fast-check seeds, outside CI, and sums up what ran. N (default 20) runs each
// property with its fixed seed and N-1 derived ones; a..b runs seeds a to b. Exits
// non-zero if any seed of any property failed, listing them.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

interface Entry { file: string; test: string; seeds: number; failed: string[] }

const root = fileURLToPath(new URL('../..', import.meta.url));
const SELF_TEST = join(root, 'test', 'helpers', 'seeds.test.ts'); // tests the seed helper, not a property
const seeds = process.argv[2] ?? process.env.PROPERTY_SEEDS ?? '20';
const only = process.argv.slice(3);

/** Test files that run properties through helpers/seeds.ts. */
function propertyFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) => {
    const p = join(dir, d.name);
    if (d.isDirectory()) return propertyFiles(p);
    const wanted = d.name.endsWith('.test.ts') && p !== SELF_TEST && readFileSync(p, 'utf8').includes('helpers/seeds.js');
    return wanted && (only.length === 0 || only.some((o) => relative(root, p).includes(o))) ? [relative(root, p)] : [];
  });
}

const files = propertyFiles(join(root, 'test')).sort();
const work = mkdtempSync(join(tmpdir(), 'memvisor-seeds-'));
const log = join(work, 'seeds.jsonl');
const started = Date.now();
console.log(`property seeds: PROPERTY_SEEDS=${seeds} over ${files.length} files`);
const r = spawnSync('npx', ['vitest', 'run', '--testTimeout=0', '--hookTimeout=0', ...files], {
  cwd: root, stdio: 'inherit', env: { ...process.env, PROPERTY_SEEDS: seeds, PROPERTY_SEEDS_LOG: log },
});
const entries: Entry[] = existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l)) : [];
rmSync(work, { recursive: true, force: true });

const total = entries.reduce((s, e) => s + e.seeds, 0);
const failed = entries.filter((e) => e.failed.length > 0);
console.log(`\n${entries.length} properties, ${total} property×seed runs (${seeds} seeds each) in ${((Date.now() - started) / 1000).toFixed(0)} s`);
for (const e of entries) console.log(`  ${e.failed.length ? 'FAIL' : 'ok  '} ${e.seeds} seeds  ${relative(root, e.file)} > ${e.test}`);
for (const e of failed) for (const f of e.failed) console.log(`  ${e.test}: ${f}`);
if (r.status !== 0) console.log(`vitest exited with status ${r.status}${failed.length ? '' : ' (a failure outside the seeded properties: see above)'}`);
process.exit(r.status !== 0 || failed.length > 0 ? 1 : 0);
