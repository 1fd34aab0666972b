// An independent count of a lackey trace's text, for tests: no memvisor parser involved.

/** Counts straight from the text, without the parser: kinds by line prefix, 4 KiB / 2 MiB pages with BigInt. */
export function independentCounts(text: string) {
  const c: Record<string, number> = { I: 0, L: 0, S: 0, M: 0 };
  const p4 = new Set<bigint>(), p2 = new Set<bigint>();
  for (const line of text.split('\n')) {
    const kind = line.startsWith('I  ') ? 'I' : [' L ', ' S ', ' M '].find((p) => line.startsWith(p))?.trim();
    if (!kind) continue;
    c[kind]++;
    const [a, n] = line.slice(3).trim().split(',');
    const first = BigInt('0x' + a), last = first + BigInt(n) - 1n;
    for (let p = first >> 12n; p <= last >> 12n; p++) p4.add(p);
    for (let p = first >> 21n; p <= last >> 21n; p++) p2.add(p);
  }
  return { I: c.I, L: c.L, S: c.S, M: c.M, accesses: c.I + c.L + c.S + c.M, pages: p4.size, pages2M: p2.size };
}
