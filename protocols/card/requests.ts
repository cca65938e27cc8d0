import { fail, ok, type Result } from './result.js';
import type { CardKind } from './sle4442.js';

/** Which serial framing a reader speaks; the encoder profile names it. */
export type CardFamily = 'star' | 'stx';
export const CARD_FAMILIES: readonly CardFamily[] = ['star', 'stx'];

export type MemoryZone = 'main' | 'protection' | 'security';

/** What the driver asks of any encoder, whatever its framing (docs/reference/cards.md § The encoder driver contract). */
export type CardRequest =
  | { readonly op: 'readerInfo' }
  | { readonly op: 'cardStatus' }
  | { readonly op: 'selectCardType'; readonly kind: CardKind }
  | { readonly op: 'powerUp' }
  | { readonly op: 'powerDown' }
  | { readonly op: 'cpuPowerUp' }
  | { readonly op: 'cpuPowerDown' }
  | { readonly op: 'read'; readonly zone: MemoryZone; readonly addr: number; readonly len: number }
  | { readonly op: 'write'; readonly zone: MemoryZone; readonly addr: number; readonly data: Uint8Array }
  | { readonly op: 'presentPsc'; readonly psc: Uint8Array }
  | { readonly op: 'readErrorCounter' }
  | { readonly op: 'changePsc'; readonly psc: Uint8Array }
  /** SLE4442 protection: `data` must equal the bytes now in main memory at `addr` (the chip compares before it protects). */
  | { readonly op: 'writeProtection'; readonly addr: number; readonly data: Uint8Array }
  /** A whole ISO 7816 command APDU (CLA INS P1 P2 [Lc data] [Le]). */
  | { readonly op: 'apdu'; readonly apdu: Uint8Array }
  | { readonly op: 'beep'; readonly ms: number }
  | { readonly op: 'eject' };

export type CardOp = CardRequest['op'];

/** Card type codes for "select card type" in both families [practice; SLE4442 = 4 as in the QFIC vendor API's chip flag]. */
export const CARD_TYPE_CODES: Readonly<Partial<Record<CardKind, number>>> = { AT24C: 0x01, AT88SC102: 0x02, SLE4428: 0x03, SLE4442: 0x04 };

/** Zone bytes of read/write in both families [practice: the STAR header names the zone parameter, not its values]. */
export const ZONE_CODES: Readonly<Record<MemoryZone, number>> = { main: 0x00, protection: 0x01, security: 0x02 };

/** The zone a zone byte names, if any. */
export const zoneOfCode = (code: number): MemoryZone | undefined =>
  (Object.keys(ZONE_CODES) as MemoryZone[]).find((z) => ZONE_CODES[z] === code);
/** The card kind a card type code names, if any. */
export const kindOfTypeCode = (code: number): CardKind | undefined =>
  (Object.keys(CARD_TYPE_CODES) as CardKind[]).find((k) => CARD_TYPE_CODES[k] === code);

/** A request ready for the wire: the bytes, and the command code (STX replies echo it; STAR replies do not). */
export interface EncodedRequest {
  readonly bytes: Uint8Array;
  readonly code: number;
}

/** The command code and data of one request, before a family's framing goes around them. */
export type CommandBody = Result<{ code: number; data: Uint8Array }>;

/** Whether `n` fits one byte (an SLE4442 main-memory address, a length). */
export function isByte(n: number): boolean {
  return Number.isInteger(n) && n >= 0 && n <= 0xff;
}

/** ISO 7816-4 short APDU cases: Lc (bytes sent) and Le (bytes expected, undefined when absent). */
export function apduShape(apdu: Uint8Array): Result<{ lc: number; le: number | undefined }> {
  if (apdu.length < 4) return fail('BAD_COMMAND_DATA', `an APDU has at least 4 bytes (CLA INS P1 P2), not ${apdu.length}`);
  if (apdu.length === 4) return ok({ lc: 0, le: undefined });
  if (apdu.length === 5) return ok({ lc: 0, le: apdu[4]! });
  const lc = apdu[4]!;
  if (lc > 0 && apdu.length === 5 + lc) return ok({ lc, le: undefined });
  if (lc > 0 && apdu.length === 6 + lc) return ok({ lc, le: apdu[5 + lc]! });
  return fail('BAD_COMMAND_DATA', `an APDU of ${apdu.length} bytes with Lc = ${lc} is neither case 3 nor case 4`);
}

/** 41H: a byte, a code or a card address as technicians read them in layouts and data sheets. */
export const hexByte = (n: number): string => `${n.toString(16).toUpperCase().padStart(2, '0')}H`;
