// The host's side of memvisor-os's user programs (guests/os/user/*.c): the command line
// that picks them (`run=prog[:args],...`), checked before a guest boots, and a plain
// model of what each prints, so the host verifies every checksum line a guest writes on
// its console (the programs also verify their own data and print "ok" or "BAD").
//
//   toucher:MiB[:passes[:sleepms]]          toucher: N MiB pass P checksum X ok
//   random:MiB[:accesses[:seed]]            random: N MiB A accesses (W writes) checksum X ok
//   pagecache[:maxMiB[:seconds[:rounds[:fileMiB[:seed]]]]]
//                                           pagecache: took N MiB, checksum X / released N MiB ok
//   forktree:depth[:KiB]                    forktree: depth D, N processes, all ok
//   sleeper:seconds, hello                  (no checksum)
//
// Checksums are sums (mod 2^64) of words the program wrote as mix64(pattern): the model
// recomputes them with BigInt. Work units: one per checksum line (a pass, a round, a run).

const M64 = (1n << 64n) - 1n;

/** splitmix64's finalizer, as user/ulib.c mix64. */
export function mix64(x: bigint): bigint {
  x = (x + 0x9e3779b97f4a7c15n) & M64;
  x = ((x ^ (x >> 30n)) * 0xbf58476d1ce4e5b9n) & M64;
  x = ((x ^ (x >> 27n)) * 0x94d049bb133111ebn) & M64;
  return x ^ (x >> 31n);
}
const hex16 = (v: bigint): string => v.toString(16).padStart(16, '0');

/** Programs the shipped kernel knows, with their most numeric arguments (crash is left out: it is meant to die). */
export const OS_PROGRAMS: Readonly<Record<string, { maxArgs: number; usage: string }>> = {
  hello: { maxArgs: 0, usage: 'hello' },
  toucher: { maxArgs: 3, usage: 'toucher:MiB[:passes[:sleepms]]' },
  random: { maxArgs: 3, usage: 'random:MiB[:accesses[:seed]]' },
  pagecache: { maxArgs: 5, usage: 'pagecache[:maxMiB[:seconds[:rounds[:fileMiB[:seed]]]]]' },
  forktree: { maxArgs: 2, usage: 'forktree:depth[:KiB]' },
  sleeper: { maxArgs: 1, usage: 'sleeper:seconds' },
};
/** Defaults of the programs' arguments (as arg_u64 in the C sources). */
const DEFAULTS: Record<string, number[]> = {
  hello: [], toucher: [4, 1, 0], random: [4, 100000, 1], pagecache: [0, 0, 1, 0, 1], forktree: [0, 64], sleeper: [10],
};
/** The kernel copies the command line into 256 bytes and the run list into 256. */
const MAX_CMDLINE = 255;

export interface OsProgram { name: string; args: number[] }
export interface OsCommandLine { programs: OsProgram[]; lingerSeconds: number; balloon: boolean; seed?: number }

/**
 * Parses a command line of the options the host can drive without a console: run=,
 * linger=N, balloon=off, seed=N (the boot seed: randomized frame allocation order). Throws an Error whose message says what is wrong.
 */
export function parseOsCmdline(cmdline: string): OsCommandLine {
  if (cmdline.length > MAX_CMDLINE) throw new Error(`is ${cmdline.length} characters; the kernel keeps ${MAX_CMDLINE}`);
  const out: OsCommandLine = { programs: [], lingerSeconds: 0, balloon: true };
  for (const word of cmdline.trim().split(/\s+/).filter(Boolean)) {
    const [key, value] = splitOnce(word, '=');
    if (key === 'run' && value !== undefined) out.programs = parseRunList(value);
    else if (key === 'linger' && value !== undefined && /^\d+$/.test(value)) out.lingerSeconds = Number(value);
    else if (key === 'balloon' && value === 'off') out.balloon = false;
    else if (key === 'seed' && value !== undefined && /^\d{1,12}$/.test(value)) out.seed = Number(value);
    else if (key === 'shell') throw new Error('"shell" waits for console input, which nothing types here; use run=');
    else throw new Error(`unknown option "${word}" (expected run=prog[:args],..., linger=N, balloon=off or seed=N)`);
  }
  if (!out.programs.length) throw new Error('needs run=prog[:args],... (without it the kernel runs its demo list, crash included)');
  return out;
}

function splitOnce(s: string, sep: string): [string, string | undefined] {
  const i = s.indexOf(sep);
  return i < 0 ? [s, undefined] : [s.slice(0, i), s.slice(i + 1)];
}

function parseRunList(list: string): OsProgram[] {
  return list.split(',').map((item) => {
    const [name, ...rest] = item.split(':');
    const spec = OS_PROGRAMS[name];
    if (!spec) throw new Error(`unknown program "${name}" (known: ${Object.keys(OS_PROGRAMS).join(', ')})`);
    if (rest.length > spec.maxArgs) throw new Error(`${item}: too many arguments (usage ${spec.usage})`);
    const args = rest.map((a) => {
      if (!/^\d{1,12}$/.test(a)) throw new Error(`${item}: "${a}" is not a whole number (usage ${spec.usage})`);
      return Number(a);
    });
    return { name, args: DEFAULTS[name].map((d, i) => args[i] ?? d) };
  });
}

/** MiB a program keeps mapped while it runs (pagecache: its cap, 0 = whatever it is given). */
export function programMiB(p: OsProgram): number {
  return p.name === 'toucher' || p.name === 'random' || p.name === 'pagecache' ? p.args[0] : 0;
}

const sums = new Map<string, string>();
const memo = (key: string, f: () => bigint): string => {
  let v = sums.get(key);
  if (v === undefined) { v = hex16(f()); sums.set(key, v); }
  return v;
};

/** toucher's checksum of pass `pass` (1-based) over `mib` MiB: one word per 64 bytes. */
export function toucherChecksum(mib: number, pass: number): string {
  return memo(`t${mib}:${pass}`, () => {
    const words = BigInt(mib) << 17n, seed = BigInt(pass) << 40n;
    let sum = 0n;
    for (let i = 0n; i < words; i += 8n) sum = (sum + mix64(i ^ seed)) & M64;
    return sum;
  });
}

/** pagecache's checksum over `mib` 1 MiB chunks: one word per 4 KiB page (anonymous, or pages of a `fileMiB` file set picked with `seed`). */
export function pagecacheChecksum(mib: number, fileMiB = 0, seed = 1): string {
  return memo(`p${mib}:${fileMiB}:${seed}`, () => {
    let sum = 0n;
    if (fileMiB > 0) {
      for (const f of pagecacheFilePages(fileMiB, seed).slice(0, mib * 256)) sum = (sum + mix64((BigInt(f) << 12n) | 1n)) & M64;
      return sum;
    }
    for (let c = 0n; c < BigInt(mib); c++) for (let off = 0n; off < 131072n; off += 512n) sum = (sum + mix64((c << 20n) + off)) & M64;
    return sum;
  });
}

/** The file pages pagecache caches, in cache order: a Fisher-Yates shuffle of a `fileMiB` file set driven by `seed` (as user/pagecache.c). */
export function pagecacheFilePages(fileMiB: number, seed: number): number[] {
  const n = fileMiB * 256, order = Array.from({ length: n }, (_, i) => i);
  let state = BigInt(seed);
  for (let j = 0; j < n; j++) {
    state = mix64(state);
    const k = j + Number((state >> 8n) % BigInt(n - j));
    [order[j], order[k]] = [order[k], order[j]];
  }
  return order;
}

/** random's whole line: a map models the region (untouched words read 0). */
export function randomLine(mib: number, accesses: number, seed: number): string {
  const words = BigInt(mib) << 17n, s = BigInt(seed), mem = new Map<bigint, bigint>();
  let state = s, sum = 0n, writes = 0;
  for (let n = 0; n < accesses; n++) {
    state = mix64(state);
    const i = (state >> 8n) % words, want = mix64(i ^ s);
    if (state & 1n) { mem.set(i, want); writes++; continue; }
    sum = (sum + (mem.get(i) ?? 0n)) & M64;
  }
  return `random: ${mib} MiB ${accesses} accesses (${writes} writes) checksum ${hex16(sum)} ok`;
}

export interface ConsoleCheck {
  /** Checksum lines that matched the model. */
  verified: number;
  /** Lines that did not (wrong checksum, "BAD", a failed mmap, a killed process): what they said. */
  problems: string[];
  /** Work units: verified pass / round / run lines, by program. */
  units: Record<string, number>;
}

/** Checks every program line of a guest console against the model of its command line. */
export function checkConsole(text: string, cmd: OsCommandLine): ConsoleCheck {
  const r: ConsoleCheck = { verified: 0, problems: [], units: {} };
  const randoms = new Set(cmd.programs.filter((p) => p.name === 'random').map((p) => randomLine(p.args[0], p.args[1], p.args[2])));
  const caches = cmd.programs.filter((p) => p.name === 'pagecache').map((p) => p.args);
  if (!caches.length) caches.push(DEFAULTS.pagecache); // started from the shell
  const ok = (prog: string) => { r.verified++; r.units[prog] = (r.units[prog] ?? 0) + 1; };
  for (const line of text.split('\n')) {
    let m: RegExpExecArray | null;
    if ((m = /^toucher: (\d+) MiB pass (\d+) checksum ([0-9a-f]{16}) (\w+)$/.exec(line))) {
      if (m[4] === 'ok' && m[3] === toucherChecksum(Number(m[1]), Number(m[2]))) ok('toucher'); else r.problems.push(line);
    } else if ((m = /^pagecache: took (\d+) MiB, checksum ([0-9a-f]{16})$/.exec(line))) {
      const mib = Number(m[1]);
      if (!caches.some((a) => m![2] === pagecacheChecksum(mib, a[3], a[4]))) r.problems.push(line);
    } else if ((m = /^pagecache: released (\d+) MiB (\w+)$/.exec(line))) {
      if (m[2] === 'ok') ok('pagecache'); else r.problems.push(line);
    } else if (line.startsWith('random: ')) {
      if (randoms.has(line)) ok('random'); else r.problems.push(line);
    } else if ((m = /^forktree: depth \d+, \d+ processes, (.*)$/.exec(line))) {
      if (m[1] === 'all ok') ok('forktree'); else r.problems.push(line);
    } else if (/BAD|failed|killed|exception|out of memory|no program|PANIC|panic/.test(line) && !/\(\d+ failed\)$/.test(line)) {
      r.problems.push(line);
    }
  }
  return r;
}
