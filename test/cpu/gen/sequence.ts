// Builds whole test cases: random input registers and flags, a random data image per
// batch, and a snippet of random instruction forms (sometimes ending in a deliberate
// fault). Deterministic for a seed.

import { Rng } from '../../../src/util/rng.js';
import { DATA_SIZE, RSP0, RSP, RANDOM_FLAGS, FIXED_FLAGS, CODE_BASE, ARITH } from '../layout.js';
import { Gen, RoomError, type Features, type Meta } from './gen.js';
import { ALU_FORMS, type Form } from './forms-alu.js';
import { FLOW_FORMS, TERMINAL, setBlockForms } from './forms-flow.js';

const ALL_FORMS: Form[] = [...ALU_FORMS, ...FLOW_FORMS];
setBlockForms([...ALU_FORMS, ...FLOW_FORMS.filter((f) => ['string', 'flagOps', 'nops'].includes(f.name))]);

export interface GenCase {
  code: Uint8Array;
  gpr: bigint[];
  rflags: bigint;
  meta: Meta[];
  /** Flags undefined after the last instruction. */
  uEnd: number;
}

function pickForm(g: Gen, forms: Form[]): Form {
  const total = forms.reduce((a, f) => a + f.weight, 0);
  let r = g.below(total);
  for (const f of forms) if ((r -= f.weight) < 0) return f;
  return forms[forms.length - 1];
}

/** One case of about `n` generated (non-setup) instructions. */
export function buildCase(rng: Rng, features: Features, n: number, terminalChance = 0.15): GenCase {
  const g = new Gen(rng, features);
  const gpr = Array.from({ length: 16 }, () => g.value(8));
  gpr[RSP] = BigInt(RSP0);
  const rflags = BigInt(FIXED_FLAGS | (rng.u32() & RANDOM_FLAGS));
  const counted = () => g.meta.filter((m) => m.cls !== 'setup').length;
  try {
    // Stop well before the page is full so that no form is cut in half.
    while (counted() < n && !g.ended && g.room() > 400) pickForm(g, ALL_FORMS).gen(g);
    if (!g.ended && g.chance(terminalChance)) TERMINAL.gen(g);
  } catch (e) {
    if (!(e instanceof RoomError)) throw e;
  }
  return { code: Uint8Array.from(g.bytes), gpr, rflags, meta: g.meta, uEnd: g.U };
}

/** A data image (scratch + stack page) of random bytes with some zeros and 0xFF runs. */
export function dataImage(rng: Rng): Uint8Array {
  const img = new Uint8Array(DATA_SIZE);
  for (let i = 0; i < img.length; i += 4) {
    const v = rng.u32();
    img[i] = v; img[i + 1] = v >>> 8; img[i + 2] = v >>> 16; img[i + 3] = v >>> 24;
  }
  for (let k = 0; k < 32; k++) {
    const at = rng.below(img.length - 16);
    img.fill(rng.below(2) ? 0 : 0xff, at, at + 1 + rng.below(16));
  }
  return img;
}

/** Flags undefined at the point where a case stopped (RIP), from the generator's map. */
export function undefinedAt(c: GenCase, rip: bigint): number {
  const off = Number(rip - BigInt(CODE_BASE));
  if (off === c.code.length) return c.uEnd;
  const m = c.meta.find((x) => x.off === off);
  if (m) return m.uBefore;
  // Anywhere else (INT3 in the filler after a jump past a cut snippet, a fetch fault on an
  // unmapped page): the generator cannot tell, so no arithmetic flag is compared.
  return ARITH;
}

/** Detects host features from /proc/cpuinfo (CPUID as the kernel reports it). */
export function hostFeatures(cpuinfo: string): Features {
  const flags = new Set((/^flags\s*:(.*)$/m.exec(cpuinfo)?.[1] ?? '').trim().split(/\s+/));
  const amd = /^vendor_id\s*:\s*AuthenticAMD/m.test(cpuinfo);
  return { popcnt: flags.has('popcnt'), lzcnt: flags.has('abm'), bmi1: flags.has('bmi1'), amd };
}
