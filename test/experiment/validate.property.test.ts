// `validate` refuses exactly what `run` would: for translation scenarios, the schema's checks
// (memory size, a working set that fits) agree with what running the experiment does.
// PROPERTY_SEED / PROPERTY_SEEDS explore other seeds (test/helpers/seeds.ts).
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import '../../src/experiment/catalogue.js';
import { parseExperimentScenario } from '../../src/experiment/registry.js';
import { parseScenario } from '../../src/scenario/schema.js';
import { translationExperiment, translationParams } from '../../src/experiment/translation-experiment.js';
import { assertAsyncProperty } from '../helpers/seeds.js';

const MiB = 2 ** 20;
const ctx = { seed: 1, name: 'p', progress() {} };

function scenario(memory: number, run: { pageSize: '4K' | '2M' | '1G'; workingSet: number; pattern?: string; stride?: number }) {
  return { kind: 'translation', name: 'p', memory, accesses: 64, runs: [{ pattern: 'random', ...run }] };
}

describe('translation validation agrees with running', () => {
  it('a scenario passes validation if and only if its run completes', async () => {
    const arb = fc.record({
      pages: fc.integer({ min: 1, max: 48 * 256 }), // memory in 4 KiB pages, up to 48 MiB
      pageSize: fc.constantFrom('4K' as const, '2M' as const, '1G' as const),
      workingSet: fc.oneof(fc.integer({ min: 1, max: 4096 }), fc.integer({ min: 1, max: 24 * MiB })),
      // Strides validation accepts (multiples of 8; others are refused, and a short run might not reach the end).
      strided: fc.option(fc.oneof(fc.integer({ min: 1, max: 16 }).map((k) => 8 * k), fc.constantFrom(4096, 4104, 12288)), { nil: undefined }),
    });
    await assertAsyncProperty(fc.asyncProperty(arb, async ({ pages, pageSize, workingSet, strided }) => {
      const sc = scenario(pages * 4096, { pageSize, workingSet, ...(strided ? { pattern: 'strided', stride: strided } : {}) });
      let valid = true;
      try { parseExperimentScenario(sc, 's.json'); } catch { valid = false; }
      // The run without the checks: the bare parameter schema, straight into the experiment.
      const { kind: _k, name: _n, ...params } = sc;
      let ran = true;
      try { await translationExperiment.run(translationParams.parse(params), ctx); } catch { ran = false; }
      expect(valid).toBe(ran);
    }), { seed: 15, numRuns: 40 });
  }, 120_000);

  it('names the field and states sizes in MiB/GiB', () => {
    const problems = (sc: unknown) => {
      try { parseExperimentScenario(sc, 'x.json'); return ''; } catch (e) { return (e as Error).message; }
    };
    expect(problems({ ...scenario(0, { pageSize: '4K', workingSet: 4096 }), memory: '8GiB' }))
      .toMatch(/^x\.json is not a valid scenario:\n  memory: must be a multiple of 4 KiB between 4 KiB and 3\.5 GiB .*got 8589934592 B \(8 GiB\)$/);
    expect(problems(scenario(64 * MiB, { pageSize: '4K', workingSet: 128 * MiB })))
      .toContain('runs[0].workingSet: a working set of 128 MiB in 4K pages needs 160 MiB of memory (after 32 MiB of page tables), but the scenario\'s memory is 64 MiB');
    expect(problems(scenario(64 * MiB, { pageSize: '1G', workingSet: 4096 })))
      .toContain('runs[0].pageSize: a 1 GiB page is larger than the scenario\'s memory (64 MiB)');
    expect(problems(scenario(1536 * MiB, { pageSize: '1G', workingSet: 1536 * MiB })))
      .toContain('runs[0].workingSet: a working set of 1.5 GiB in 1G pages needs 2 GiB of memory (from physical address 0), but the scenario\'s memory is 1.5 GiB');
    expect(problems({ ...scenario(64 * MiB, { pageSize: '4K', workingSet: 1 }), runs: [{ pattern: 'random', workingSet: '0.4B' }] }))
      .toContain('runs[0].workingSet: a size of at least 1 B');
  });

  it('parseScenario (the library translation parser) makes the same checks, naming the field', () => {
    const problems = (sc: unknown) => {
      try { parseScenario(sc, 'lib.json'); return ''; } catch (e) { return (e as Error).message; }
    };
    const full = (memory: number | string, run: { pageSize: '4K' | '2M' | '1G'; workingSet: number }) => ({ ...scenario(0, run), memory });
    expect(problems(full('8GiB', { pageSize: '4K', workingSet: 4096 })))
      .toMatch(/^lib\.json is not a valid scenario:\n  memory: must be a multiple of 4 KiB between 4 KiB and 3\.5 GiB .*got 8589934592 B \(8 GiB\)$/);
    expect(problems(full(64 * MiB, { pageSize: '4K', workingSet: 128 * MiB })))
      .toBe('lib.json is not a valid scenario:\n  runs[0].workingSet: a working set of 128 MiB in 4K pages needs 160 MiB of memory ' +
        '(after 32 MiB of page tables), but the scenario\'s memory is 64 MiB');
    expect(problems(full(64 * MiB, { pageSize: '1G', workingSet: 4096 })))
      .toBe('lib.json is not a valid scenario:\n  runs[0].pageSize: a 1 GiB page is larger than the scenario\'s memory (64 MiB)');
    expect(problems(full(64 * MiB, { pageSize: '2M', workingSet: 33 * MiB })))
      .toBe('lib.json is not a valid scenario:\n  runs[0].workingSet: a working set of 33 MiB in 2M pages needs 66 MiB of memory ' +
        '(after 32 MiB of page tables), but the scenario\'s memory is 64 MiB');
    // A stride that is not a multiple of 8 made the run fault past the working set's end
    // ("unexpected exit PF" after 1363 accesses of a 4 KiB set with stride 3).
    const strided = (stride: number) => ({ ...full(64 * MiB, { pageSize: '4K', workingSet: 4096 }), runs: [{ pattern: 'strided', workingSet: 4096, stride }] });
    expect(problems(strided(3))).toBe('lib.json is not a valid scenario:\n  runs[0].stride: 3 B is not a multiple of 8 B ' +
      '(each access is 8 bytes; the last would run past the working set)');
    expect(problems(strided(4104))).toBe('');
    // The largest that fits still parses.
    expect(parseScenario(full(64 * MiB, { pageSize: '2M', workingSet: 32 * MiB })).runs[0].workingSet).toBe(32 * MiB);
  });
});
