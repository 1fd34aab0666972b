// Writes the bench figures of one `npm run bench` run (its JSON) into README.md, between
// the markers <!-- bench:begin --> and <!-- bench:end -->, with the targets of issue 13
// beside them. Usage: npm run bench:readme (runs the bench, then this), or
// tsx bench/readme.ts <bench.json> [README.md].

import { readFileSync, writeFileSync } from 'node:fs';

type Fig = Record<string, number | string>;
const M = (x: number) => `${(x / 1e6).toFixed(1)} M/s`;
const K = (x: number) => `${(x / 1e3).toFixed(0)} k/s`;
const R = (x: number) => x.toFixed(3); // three places: a ratio of 0.595 must not print as the target 0.60
const G = (x: number) => `${x.toFixed(1)} GB/s`;
const S = (x: number) => `${x.toFixed(3)} s`;
const MS = (x: number) => `${x.toFixed(1)} ms`;

interface Row { what: string; value: string; target: string; ok?: boolean }

export function rows(f: Fig): Row[] {
  const n = (k: string) => f[k] as number;
  const r: Row[] = [
    { what: 'TLB-hit loads / raw Wasm loads', value: `${M(n('tlbHitLoadsPerSec'))} / ${M(n('rawLoadsPerSec'))} = ${R(n('tlbHitLoadsOverRawLoads'))}`, target: '≥ 0.6', ok: n('tlbHitLoadsOverRawLoads') >= 0.6 },
    { what: '4-level walks, every check and A/D / naive walker', value: `${M(n('walks4LevelNoPscPerSec'))} / ${M(n('naiveWalks4LevelPerSec'))} = ${R(n('fullWalk4OverNaive'))}`, target: '≥ 0.3', ok: n('fullWalk4OverNaive') >= 0.3 },
    { what: 'random loads over 64 MiB, TLBs on / bare walk', value: `${M(n('random64MiB4LevelLoadsPerSec'))} (${n('random64MiB4LevelWalksPer1000').toFixed(0)} walks per 1000) = ${R(n('random64MiB4LevelOverBareWalk'))}`, target: '≥ 0.8', ok: n('random64MiB4LevelOverBareWalk') >= 0.8 },
    ...(f.rawRandomLoads64MiBPerSec === undefined ? [] : [{ what: '… the same random addresses as plain Wasm loads (no translation)', value: `${M(n('rawRandomLoads64MiBPerSec'))} (${(1e9 / n('rawRandomLoads64MiBPerSec')).toFixed(1)} ns each)`, target: 'reported' }]),
    ...(f.randomTranslateNs_all === undefined ? [] : [{ what: 'where a random TLB miss goes: ns per random translate over 64 MiB, bare walk / PSCs only / L1 DTLB only / L2 STLB only / all caches', value: ['bare', 'psc', 'l1', 'l2', 'all'].map((k) => n(`randomTranslateNs_${k}`).toFixed(1)).join(' / '), target: 'reported' }]),
    { what: 'uncached 2D walks (24 refs)', value: M(n('walks2DUncachedPerSec')), target: '≥ 10 M/s', ok: n('walks2DUncachedPerSec') >= 10e6 },
    { what: 'cached 2D walks', value: M(n('walks2DCachedPerSec')), target: '≥ 25 M/s', ok: n('walks2DCachedPerSec') >= 25e6 },
    ...(f.guestRandomLoadsNestedPerSec === undefined ? [] : [{ what: 'random loads over 64 MiB with the default TLBs, native / nested / shadow paging', value: ['Native', 'Nested', 'Shadow'].map((m) => M(n(`guestRandomLoads${m}PerSec`))).join(' / '), target: 'reported' }]),
    { what: 'shadow fills', value: K(n('shadowFillsPerSec')), target: '≥ 200 k/s', ok: n('shadowFillsPerSec') >= 200e3 },
    { what: 'page hashing (xxHash64) / compare / plain memory copy', value: `${G(n('hashGBPerSec'))} / ${G(n('compareGBPerSec'))} / ${G(n('memoryCopyGBPerSec'))}`, target: 'reported' },
  ];
  if (f.balancePeriod256x1GiBMs !== undefined) {
    r.push({ what: 'one balance period, 256 VMs × 1 GiB (targets + reclaim plan)', value: `${MS(n('balancePeriod256x1GiBMs'))} (one page per step: ~${(n('balancePeriod256x1GiBStepwiseEstimateMs') / 1000).toFixed(0)} s)`, target: 'milliseconds', ok: n('balancePeriod256x1GiBMs') < 1000 });
    const per = [1, 4, 16, 64].map((v) => `${v}: ${S(n(`simSecondWallSec${v}Vms`))}`).join(', ');
    r.push({ what: 'wall time of one simulated second, by number of VMs (one simulated CPU shared by all)', value: `${per}; per VM, 64 vs 16: ${R(n('simSecondPerVmGrowth64over16'))}×`,
      target: 'at most linear (per-VM cost at 64 ≤ 1.25 × at 16)', ok: n('simSecondPerVmGrowth64over16') <= 1.25 });
  }
  // Guest machine code (bench/cpu.ts): the interpreter beside the same bytes run natively.
  const g = (f as unknown as { guestCode?: Record<string, { guestInstrPerSec: number; nativeInstrPerSec?: number }> }).guestCode;
  const loops = [['register', 'register-only loop'], ['tlbHit', 'memory loop, TLB hits'], ['tlbMiss', 'memory loop, TLB misses (1 walk per iteration)']] as const;
  for (const [k, label] of g ? loops : []) {
    const x = g![k];
    if (!x) continue;
    const native = x.nativeInstrPerSec ? ` (native, same bytes: ${(x.nativeInstrPerSec / 1e9).toFixed(2)} G instr/s)` : '';
    const fast = k !== 'tlbMiss';
    r.push({ what: `guest code, ${label}: interpreter`, value: `${(x.guestInstrPerSec / 1e6).toFixed(1)} M instr/s${native}`,
      target: fast ? '≥ 100 M instr/s' : 'reported', ok: fast ? x.guestInstrPerSec >= 100e6 : undefined });
  }
  // The shipped C guest OS (bench/os.ts): boot to the shell prompt, MIPS of user programs.
  type Os = Record<string, { hostMs?: number; hostMsCreate?: number; guestInstructions?: number; guestInstrPerSec?: number; guestInstrPerCpuSec?: number; walksPer1000Instructions?: number }>;
  const os = (f as unknown as { guestOs?: Os }).guestOs;
  if (os?.nestedBootToPrompt) {
    const b = os.nestedBootToPrompt, s = os.shadowBootToPrompt;
    r.push({ what: 'C guest OS: boot to the shell prompt (nested / shadow; host time includes creating the machine)',
      value: `${MS(b.hostMs!)} (${MS(b.hostMsCreate!)} creating) / ${MS(s.hostMs!)}; ${b.guestInstructions!.toLocaleString('en-US')} guest instructions`, target: 'reported' });
  }
  const mips = (x: { guestInstrPerSec?: number; guestInstrPerCpuSec?: number }) => `${(x.guestInstrPerSec! / 1e6).toFixed(1)} M instr/s (per CPU second: ${(x.guestInstrPerCpuSec! / 1e6).toFixed(1)})`;
  for (const [k, label] of [['random', 'random words over 16 MiB'], ['toucher', 'sequential passes over 4 MiB']] as const) {
    const n = os?.[`${k}Nested`], s = os?.[`${k}Shadow`];
    if (!n || !s) continue;
    r.push({ what: `C guest OS, 10^8 instructions of user program ${k} (${label}; ${n.walksPer1000Instructions} walks per 1000), nested paging, coherence checker off`,
      value: mips(n), target: '≥ 50 M instr/s', ok: n.guestInstrPerSec! >= 50e6 });
    r.push({ what: `… the same under shadow paging, coherence checker off`, value: mips(s), target: 'reported' });
  }
  if (os?.randomNestedChecker) r.push({ what: '… random, nested paging, coherence checker on', value: mips(os.randomNestedChecker), target: 'reported' });
  return r;
}

export function markdown(f: Fig): string {
  const lines = [
    `Measured by \`npm run bench:readme\` on ${f.machine}, Node ${f.node}, ${f.date}` +
      ` (1-minute load average ${(f.loadAverage as number).toFixed(1)}; the machine is shared, so absolute rates are noisy and ratios are medians of back-to-back pairs).`,
    '',
    '| figure | measured | target | met |',
    '|---|---|---|---|',
    ...rows(f).map((x) => `| ${x.what} | ${x.value} | ${x.target} | ${x.ok === undefined ? '' : x.ok ? 'yes' : 'no'} |`),
  ];
  return lines.join('\n');
}

function main(): void {
  const [json, readme = 'README.md'] = process.argv.slice(2);
  if (!json) throw new Error('usage: tsx bench/readme.ts <bench.json> [README.md]');
  const f = JSON.parse(readFileSync(json, 'utf8')) as Fig;
  const text = readFileSync(readme, 'utf8');
  const begin = '<!-- bench:begin -->', end = '<!-- bench:end -->';
  const i = text.indexOf(begin), j = text.indexOf(end);
  if (i < 0 || j < i) throw new Error(`${readme} has no ${begin} … ${end} section`);
  writeFileSync(readme, text.slice(0, i + begin.length) + '\n' + markdown(f) + '\n' + text.slice(j));
}

main();
