// The walk explorer's library side: explainWalk's rows agree with the core's counters for
// every lab address, mode, level count and page size, cold and warm; the uncached nested
// walk is the (n+1)(m+1)−1 grid; faults carry the core's error code and qualification.
import { describe, it, expect } from 'vitest';
import { WalkLab, LAB_ADDRESSES, decodePfec, decodeEptQualification } from '../../src/index.js';

const SIZES = ['4K', '2M', '1G'] as const;

describe('explainWalk over the walk lab', () => {
  for (const mode of ['native', 'nested', 'shadow'] as const) {
    it(`${mode}: every explanation matches the core's counters (cold and warm caches)`, async () => {
      for (const guestPage of SIZES) for (const eptPage of mode !== 'native' ? SIZES : (['4K'] as const)) {
        for (const [levels, caches] of [[4, true], [5, true], [4, false]] as const) {
          const lab = await WalkLab.create({ mode, guestLevels: levels, guestPage, eptLevels: levels, eptPage, caches });
          for (let rep = 0; rep < 2; rep++) for (const a of LAB_ADDRESSES) {
            const x = lab.walk(a.va, a.access);
            const where = `${guestPage}/${eptPage} ${levels} ${a.label}`;
            expect(x.check, where).toEqual([]);
            expect(x.shadow?.hidden.check ?? [], where).toEqual([]);
            expect(x.shadow?.guest.check ?? [], where).toEqual([]);
          }
        }
      }
    });
  }

  it('an uncached 4-level × 4-level nested walk is the 24-reference grid', async () => {
    const lab = await WalkLab.create({ mode: 'nested', guestLevels: 4, guestPage: '4K', eptLevels: 4, eptPage: '4K', caches: false });
    const x = lab.walk(LAB_ADDRESSES[0].va, LAB_ADDRESSES[0].access);
    expect(x.result.ok).toBe(true);
    expect(x.rows.length).toBe(5);
    expect(x.rows.every((r) => r.ntlb === 'miss' && r.ept.length === 4)).toBe(true);
    expect(x.rows.reduce((s, r) => s + (r.guest ? 1 : 0) + r.ept.length, 0)).toBe(24);
    expect(x.counters.walkRefs).toBe(24);
    expect(x.check).toEqual([]);
  });

  it('a repeated access hits the TLB; a write to a read-only page gives #PF error code P|W|U', async () => {
    const lab = await WalkLab.create({ mode: 'native', guestLevels: 4, guestPage: '4K', eptLevels: 4, eptPage: '4K', caches: true });
    lab.walk(LAB_ADDRESSES[0].va, LAB_ADDRESSES[0].access);
    expect(lab.walk(LAB_ADDRESSES[0].va, LAB_ADDRESSES[0].access).tlbHit).toBe('L1');
    const ro = lab.walk(0x7f12_8000_0010n, { user: true, write: true });
    expect(ro.result).toMatchObject({ ok: false, fault: 'PF', errorCode: 7 });
    expect(decodePfec(7).filter((b) => b.value === 1).map((b) => b.name)).toEqual(['P', 'W/R', 'U/S']);
  });

  it('a write to an EPT read-only gpa is an EPT violation: write, readable, GLA valid, final', async () => {
    const lab = await WalkLab.create({ mode: 'nested', guestLevels: 4, guestPage: '4K', eptLevels: 4, eptPage: '4K', caches: true });
    const x = lab.walk(0x7f15_0000_0008n, { user: true, write: true });
    expect(x.result).toMatchObject({ ok: false, fault: 'EPT_VIOLATION', gpa: 0xc0_0008n });
    const q = (x.result as { qualification: number }).qualification;
    expect(decodeEptQualification(q).filter((b) => b.value === 1).map((b) => b.name)).toEqual(['write', 'readable', 'GLA valid', 'final']);
    expect(x.rows.at(-1)!.guestLevel).toBe(0);
  });

  it('shadow paging gives every lab address the same result as nested paging, through a hidden fault first', async () => {
    for (const guestPage of SIZES) {
      const o = { guestLevels: 4, guestPage, eptLevels: 4, eptPage: '4K', caches: true } as const;
      const nested = await WalkLab.create({ ...o, mode: 'nested' });
      const shadow = await WalkLab.create({ ...o, mode: 'shadow' });
      for (const a of LAB_ADDRESSES) {
        const want = nested.walk(a.va, a.access).result;
        const got = shadow.walk(a.va, a.access);
        expect(got.result, `${guestPage} ${a.label}`).toEqual(want);
      }
      const first = (await WalkLab.create({ ...o, mode: 'shadow' })).walk(LAB_ADDRESSES[0].va, LAB_ADDRESSES[0].access);
      expect(first.shadow?.outcome.action).toBe('retry');
      expect(first.shadow?.hidden.result).toMatchObject({ ok: false, fault: 'PF' });
      expect(first.result.ok).toBe(true);
    }
  });
});
