/**
 * Infineon SLE4442 facts as data (docs/reference/cards.md § SLE4442; source DangerousPrototypes/BusPirate5-firmware sle4442.c).
 */

/** Main memory: 256 bytes, readable without the PSC, writable after it. */
export const SLE4442_MAIN_SIZE = 256;
/** Bytes 00H–1FH can each be write-protected for good by one protection bit. */
export const SLE4442_PROTECTABLE_BYTES = 32;
/** Protection memory as read: 4 bytes, bit n of byte n÷8 (LSB first) for main byte n; 1 = still writable, 0 = protected. */
export const SLE4442_PROTECTION_SIZE = 4;
/** Security memory: the error counter byte, then the 3-byte PSC (reads as 00 00 00 until the PSC was presented). */
export const SLE4442_SECURITY_SIZE = 4;
export const SLE4442_PSC_SIZE = 3;
/** Error counter when no wrong PSC was presented since the last right one: 3 attempts left. */
export const SLE4442_EC_FULL = 0b111;
/** The PSC a new card leaves the factory with (changed by the issuer when the card is opened). */
export const SLE4442_FACTORY_PSC: Uint8Array = Uint8Array.of(0xff, 0xff, 0xff);
/** The answer to reset of an SLE4442/5542: protocol type S (1010b) in H1, then 13H 10H 91H. */
export const SLE4442_ATR: Uint8Array = Uint8Array.of(0xa2, 0x13, 0x10, 0x91);

/** 2-wire bus commands of the chip; a serial encoder issues them on its own, they are here for reference and logs. */
export const SLE4442_CHIP_COMMANDS = {
  readMain: 0x30,
  updateMain: 0x38,
  readSecurity: 0x31,
  updateSecurity: 0x39,
  readProtection: 0x34,
  writeProtection: 0x3c,
  compareVerificationData: 0x33,
} as const;

/** The card kinds an encoder can meet (docs/reference/cards.md § Card media). */
export type CardKind = 'SLE4442' | 'SLE4428' | 'AT24C' | 'AT88SC102' | 'CPU_T0' | 'CPU_T1' | 'UNKNOWN';

export const CARD_KINDS: readonly CardKind[] = ['SLE4442', 'SLE4428', 'AT24C', 'AT88SC102', 'CPU_T0', 'CPU_T1', 'UNKNOWN'];

export const isCpuKind = (kind: CardKind): boolean => kind === 'CPU_T0' || kind === 'CPU_T1';

/**
 * SLE4442 error counter (SLE4442 data sheet, security memory byte 0): PSC attempts left, the set bits of the low 3 bits.
 * 7 → 3, 3 → 2, 1 → 1, 0 → 0 (locked for good).
 */
export function pscAttemptsLeft(errorCounter: number): number {
  let n = 0;
  for (let bit = 0; bit < 3; bit++) if (errorCounter & (1 << bit)) n++;
  return n;
}

/** SLE4442: the error counter byte after one more wrong PSC (the chip clears one set bit before it compares). */
export function errorCounterAfterWrongPsc(errorCounter: number): number {
  for (let bit = 2; bit >= 0; bit--) if (errorCounter & (1 << bit)) return errorCounter & ~(1 << bit) & SLE4442_EC_FULL;
  return 0;
}

/** SLE4442: whether main byte `addr` is still writable according to the 4 protection-memory bytes (1 = writable). */
export function isByteWritable(protection: Uint8Array, addr: number): boolean {
  if (addr >= SLE4442_PROTECTABLE_BYTES) return true;
  return ((protection[addr >> 3] ?? 0xff) & (1 << (addr & 7))) !== 0;
}

/**
 * Card kind from an answer to reset (ISO 7816-3 for CPU cards, the synchronous-card H1 for memory cards):
 * A2 13 10 91 → SLE4442; TS 3B/3F → a CPU card, T=1 when TD1 announces protocol 1, else T=0; anything else UNKNOWN.
 */
export function kindFromAtr(atr: Uint8Array): CardKind {
  if (atr.length >= 4 && atr[0] === 0xa2 && atr[1] === 0x13 && atr[2] === 0x10 && atr[3] === 0x91) return 'SLE4442';
  if (atr.length >= 2 && (atr[0] === 0x3b || atr[0] === 0x3f)) {
    const t0 = atr[1]!;
    if ((t0 & 0x80) === 0) return 'CPU_T0';
    // TD1 follows TA1, TB1, TC1 when present (bits 4–6 of T0).
    let at = 2;
    for (const bit of [0x10, 0x20, 0x40]) if (t0 & bit) at++;
    const td1 = atr[at];
    return td1 !== undefined && (td1 & 0x0f) === 1 ? 'CPU_T1' : 'CPU_T0';
  }
  return 'UNKNOWN';
}
