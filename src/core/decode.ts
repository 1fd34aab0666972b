// Bit-by-bit decoding of the architectural words a walk produces: paging entries (x86-64
// and EPT), the #PF error code and the EPT-violation exit qualification. Used by the
// browser's walk explorer and by anyone printing a walk; the bit positions are the SDM's
// (and bits.ts's: PTE, EPT, PFEC, EPT_QUAL).

import { PFEC, EPT_QUAL } from './bits.js';

export interface BitField {
  /** "0", "63", or a range "51:12". */
  bits: string;
  name: string;
  /** The field's value: 0/1 for a flag, a hex string for an address or a number field. */
  value: number | string;
  meaning: string;
}

const bit = (v: bigint, n: number): number => Number((v >> BigInt(n)) & 1n);
const flag = (v: bigint, n: number, name: string, on: string, off: string): BitField =>
  ({ bits: String(n), name, value: bit(v, n), meaning: bit(v, n) ? on : off });
const hexOf = (v: bigint): string => '0x' + v.toString(16);
const ADDR = 0x000f_ffff_ffff_f000n;

/** An x86-64 paging entry at `level` (1 = PTE, 2 = PDE, 3 = PDPTE, 4 = PML4E, 5 = PML5E). */
export function decodePte(v: bigint, level: number): BitField[] {
  const leaf = level === 1 || ((v & 0x80n) !== 0n && level <= 3);
  const size = level === 1 ? 12n : level === 2 ? 21n : 30n;
  const out: BitField[] = [
    flag(v, 0, 'P', 'present', 'not present'),
    flag(v, 1, 'R/W', 'writable', 'read-only'),
    flag(v, 2, 'U/S', 'user', 'supervisor only'),
    flag(v, 3, 'PWT', 'write-through', 'write-back'),
    flag(v, 4, 'PCD', 'cache disabled', 'cacheable'),
    flag(v, 5, 'A', 'accessed', 'not accessed'),
  ];
  if (leaf) out.push(flag(v, 6, 'D', 'dirty', 'clean'));
  if (level >= 2 && level <= 3) out.push(flag(v, 7, 'PS', `maps a ${level === 2 ? '2 MiB' : '1 GiB'} page`, 'points to a table'));
  if (leaf) out.push(flag(v, 8, 'G', 'global', 'not global'));
  const addrMask = leaf ? ADDR & ~((1n << size) - 1n) : ADDR;
  out.push({ bits: leaf ? `51:${size}` : '51:12', name: leaf ? 'page frame' : 'next table',
    value: hexOf(v & addrMask), meaning: leaf ? 'physical base of the page' : 'physical address of the next table' });
  if (leaf) out.push({ bits: '62:59', name: 'PKEY', value: Number((v >> 59n) & 15n), meaning: 'protection key (with CR4.PKE)' });
  out.push(flag(v, 63, 'XD', 'no instruction fetch (with EFER.NXE)', 'executable'));
  return out;
}

/** An EPT entry at EPT `level`. */
export function decodeEptEntry(v: bigint, level: number): BitField[] {
  const leaf = level === 1 || ((v & 0x80n) !== 0n && level <= 3);
  const out: BitField[] = [
    flag(v, 0, 'R', 'readable', 'not readable'),
    flag(v, 1, 'W', 'writable', 'not writable'),
    flag(v, 2, 'X', 'executable', 'not executable'),
  ];
  if (leaf) {
    const mt = Number((v >> 3n) & 7n);
    out.push({ bits: '5:3', name: 'MT', value: mt, meaning: ['UC', 'WC', '?', '?', 'WT', 'WP', 'WB', '?'][mt] + ' memory type' });
    out.push(flag(v, 6, 'IPAT', 'ignore guest PAT', 'use guest PAT'));
  }
  if (level >= 2 && level <= 3) out.push(flag(v, 7, 'PS', `maps a ${level === 2 ? '2 MiB' : '1 GiB'} page`, 'points to a table'));
  out.push(flag(v, 8, 'A', 'accessed', 'not accessed'));
  if (leaf) out.push(flag(v, 9, 'D', 'dirty', 'clean'));
  out.push({ bits: '51:12', name: leaf ? 'host frame' : 'next table', value: hexOf(v & ADDR),
    meaning: leaf ? 'host-physical base of the page' : 'host-physical address of the next EPT table' });
  return out;
}

/** The #PF error code (SDM 4.7). */
export function decodePfec(code: number): BitField[] {
  const b = (m: number) => ((code & m) !== 0 ? 1 : 0);
  return [
    { bits: '0', name: 'P', value: b(PFEC.P), meaning: b(PFEC.P) ? 'a protection violation on a present page' : 'a not-present page' },
    { bits: '1', name: 'W/R', value: b(PFEC.W), meaning: b(PFEC.W) ? 'the access was a write' : 'the access was a read' },
    { bits: '2', name: 'U/S', value: b(PFEC.U), meaning: b(PFEC.U) ? 'a user-mode access' : 'a supervisor-mode access' },
    { bits: '3', name: 'RSVD', value: b(PFEC.RSVD), meaning: b(PFEC.RSVD) ? 'a reserved bit was set in an entry' : 'no reserved bit set' },
    { bits: '4', name: 'I/D', value: b(PFEC.ID), meaning: b(PFEC.ID) ? 'an instruction fetch' : 'not an instruction fetch' },
    { bits: '5', name: 'PK', value: b(PFEC.PK), meaning: b(PFEC.PK) ? 'a protection-key violation' : 'no protection-key violation' },
  ];
}

/** The EPT-violation exit qualification (SDM 28.2.3.2, Table 28-7). */
export function decodeEptQualification(q: number): BitField[] {
  const b = (m: number) => ((q & m) !== 0 ? 1 : 0);
  return [
    { bits: '0', name: 'read', value: b(EPT_QUAL.READ), meaning: b(EPT_QUAL.READ) ? 'the access was a data read' : 'not a data read' },
    { bits: '1', name: 'write', value: b(EPT_QUAL.WRITE), meaning: b(EPT_QUAL.WRITE) ? 'the access was a data write' : 'not a data write' },
    { bits: '2', name: 'fetch', value: b(EPT_QUAL.FETCH), meaning: b(EPT_QUAL.FETCH) ? 'the access was an instruction fetch' : 'not an instruction fetch' },
    { bits: '3', name: 'readable', value: b(EPT_QUAL.READABLE), meaning: b(EPT_QUAL.READABLE) ? 'the gpa was readable' : 'the gpa was not readable' },
    { bits: '4', name: 'writable', value: b(EPT_QUAL.WRITABLE), meaning: b(EPT_QUAL.WRITABLE) ? 'the gpa was writable' : 'the gpa was not writable' },
    { bits: '5', name: 'executable', value: b(EPT_QUAL.EXECUTABLE), meaning: b(EPT_QUAL.EXECUTABLE) ? 'the gpa was executable' : 'the gpa was not executable' },
    { bits: '7', name: 'GLA valid', value: b(EPT_QUAL.GLA_VALID), meaning: b(EPT_QUAL.GLA_VALID) ? 'a guest linear address is known' : 'no guest linear address' },
    { bits: '8', name: 'final', value: b(EPT_QUAL.FINAL), meaning: b(EPT_QUAL.FINAL) ? 'the final translation of the access' : 'a guest paging-structure reference' },
  ];
}
