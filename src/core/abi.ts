// The numbers the host shares with the Wasm core, checked when the module loads against
// the core's own table (assembly/abi.ts): exit reasons, translate results, cache and
// register order, op kinds and control bits, modes and layout sizes. The TypeScript tables
// stay typed (cache names are TlbConfig keys); this check makes the core their one source.

import type { Core } from './wasm.js';
import { CACHE_ORDER, REG_ORDER, MODES } from './cpu.js';
import { OpKind, OP_BYTES, CTL_IMPLICIT, CTL_USER } from './batch.js';
import { EXIT, XLATE, SHADOW_FILL } from './exit.js';

export { EXIT, XLATE };

/** The core's table: "key=value" pairs. */
export function readAbi(core: Core): Map<string, number> {
  const s = new Uint16Array(core.memory.buffer, core.abiPtr(), core.abiLen());
  let text = '';
  for (let i = 0; i < s.length; i += 4096) text += String.fromCharCode(...s.subarray(i, i + 4096));
  return new Map(text.split(',').map((kv) => {
    const [k, v] = kv.split('=');
    return [k, Number(v)];
  }));
}

/** What the host believes, in the core's key format. */
export function hostAbi(numCounters: number): Map<string, number> {
  const m = new Map<string, number>();
  for (const [k, v] of Object.entries(EXIT)) m.set(`exit.${k}`, v);
  for (const [k, v] of Object.entries(XLATE)) m.set(`xlate.${k}`, v);
  CACHE_ORDER.forEach((k, i) => m.set(`cache.${k}`, i));
  REG_ORDER.forEach((k, i) => m.set(`reg.${k}`, i));
  for (const [k, v] of Object.entries(OpKind)) m.set(`op.${k}`, v);
  m.set('ctl.implicit', CTL_IMPLICIT);
  m.set('ctl.user', CTL_USER);
  for (const [k, v] of Object.entries(MODES)) m.set(`mode.${k}`, v);
  for (const [k, v] of Object.entries(SHADOW_FILL)) m.set(`shadowFill.${k}`, v);
  m.set('layout.opBytes', OP_BYTES);
  m.set('layout.tlbs', CACHE_ORDER.length);
  m.set('layout.counters', numCounters);
  return m;
}

/** Every difference between two tables, as "key: core x, host y" lines. */
export function abiMismatches(core: Map<string, number>, host: Map<string, number>): string[] {
  const keys = [...new Set([...core.keys(), ...host.keys()])].sort();
  return keys.filter((k) => core.get(k) !== host.get(k))
    .map((k) => `${k}: core ${core.get(k) ?? '(none)'}, host ${host.get(k) ?? '(none)'}`);
}

/** Throws, naming every mismatch, unless the host's numbers equal the core's. */
export function checkAbi(core: Core, numCounters: number): void {
  const bad = abiMismatches(readAbi(core), hostAbi(numCounters));
  if (bad.length) throw new Error(`memvisor: the Wasm core and the host disagree on shared numbers (rebuild with "npm run build"?):\n  ${bad.join('\n  ')}`);
}
