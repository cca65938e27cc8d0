import { fail, ok, type Result } from './result.js';
import type { CardKind } from './sle4442.js';
import { encodeStarPacket, STAR_ACK, STAR_MAX_DATA, STAR_NACK, type StarPacket } from './star.js';
import { encodeStxReply, encodeStxRequest, STX_MAX_DATA, stxReplyOf, type StxFrame } from './stx.js';

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

/**
 * Reader refusals by meaning. Each family's status byte or NACK code maps to one of these, and each maps to one driver
 * error code (`errorCodeOfStatus`).
 */
export type ReaderStatusName =
  | 'no-card'
  | 'card-removed'
  | 'card-not-supported'
  | 'psc-rejected'
  | 'card-locked'
  | 'address-out-of-range'
  | 'write-failed'
  | 'bad-parameter'
  | 'not-supported'
  | 'not-powered'
  | 'bad-frame'
  | 'unknown';

export interface ReaderStatus {
  readonly name: ReaderStatusName;
  /** The byte the reader sent (STAR: the NACK code; STX: the STATUS byte). */
  readonly code: number;
  readonly message: string;
}

/** The outcome of one request, as the driver sees it. */
export type CardReply = { readonly ok: true; readonly data: Uint8Array } | { readonly ok: false; readonly status: ReaderStatus };

const STATUS_MESSAGES: Record<ReaderStatusName, string> = {
  'no-card': 'no card in the encoder (or the card does not answer)',
  'card-removed': 'the card was removed during the operation',
  'card-not-supported': 'the encoder cannot drive this kind of card with that command',
  'psc-rejected': 'the card rejected the PSC',
  'card-locked': 'the card is locked: its PSC error counter is 0',
  'address-out-of-range': 'the address is outside the card zone',
  'write-failed': 'the encoder could not write the card',
  'bad-parameter': 'the encoder refused a parameter of the command',
  'not-supported': 'the encoder does not support this command',
  'not-powered': 'the card is not powered up',
  'bad-frame': 'the encoder received a broken frame (communication error)',
  unknown: 'the encoder refused the command',
};

/** The driver error codes a reader refusal can become. */
export type StatusErrorCode = 'NO_CARD' | 'CARD_REMOVED' | 'WRONG_CARD_KIND' | 'PSC_REJECTED' | 'CARD_LOCKED' | 'READER_REFUSED';

/** docs/reference/cards.md § The encoder driver contract, typed errors: the driver error code for a reader refusal of either family. */
export function errorCodeOfStatus(name: ReaderStatusName): StatusErrorCode {
  switch (name) {
    case 'no-card':
      return 'NO_CARD';
    case 'card-removed':
      return 'CARD_REMOVED';
    case 'card-not-supported':
      return 'WRONG_CARD_KIND';
    case 'psc-rejected':
      return 'PSC_REJECTED';
    case 'card-locked':
      return 'CARD_LOCKED';
    default:
      return 'READER_REFUSED';
  }
}

// ---------------------------------------------------------------------------------------------------------------
// STAR family (st102ic.h): command codes as the public header lists them.

/**
 * STAR ST102/717/727 command codes (st102ic.h). Where the header has no command for an operation, the table says how
 * the driver composes it, and what is our assumption ([practice]) rather than the header's.
 */
export const STAR_COMMANDS = {
  powerUp: 0x10, // MEM_ICC_POWER_UP
  powerDown: 0x11, // MEM_ICC_POWER_DOWN
  selectCardType: 0x20, // MEM_ICC_SELECT_CARD
  presentPsc: 0x21, // MEM_ICC_CHECK_SECURITY
  read: 0x23, // MEM_ICC_READ_CARD (zone, addr, len)
  write: 0x24, // MEM_ICC_WRITE_CARD (zone, addr, len, data); changePsc = write to the security zone at 1 [practice]
  writeProtection: 0x27, // MEM_ICC_PROT_WRT_4428; used for the 4442 protection memory too [practice]
  readErrorCounter: 0x51, // MEM_ICC_READ_ERRNUM
  cardStatus: 0x2b, // WAIT_CARD_IN with a 0 s wait: a presence probe that also powers the card up [practice]
  eject: 0x30, // PUSH_CARD (727)
  beep: 0x31, // BUZZER (727); DATA = duration in 10 ms steps [practice]
  cpuPowerUp: 0x6e, // CPU_ICC1_POWER_UP
  cpuPowerDown: 0x4d, // CPU_ICC1_POWER_DOWN
  apduIncoming: 0xda, // CPU_ICC1_INCOMING: CLA INS P1 P2 Lc DATA (T=0 case 3/4)
  apduOutgoing: 0xdb, // CPU_ICC1_OUTGOING: CLA INS P1 P2 Le (T=0 case 1/2)
} as const;

/**
 * STAR NACK codes (E0H replies) by meaning [practice]: the public driver returns ICCE_NACK without reading the code, so
 * meterd uses the driver's own ICCE_* numbering (st102ic.h) as the code byte, which is what the simulator sends.
 */
export const STAR_NACK_CODES: Readonly<Record<number, ReaderStatusName>> = {
  0x71: 'card-removed', // ICCER_SCR 113: smart card removed
  0xa2: 'bad-frame', // COM_ERROR
  0xd2: 'no-card', // ICCE_RESET 210: reset not performed (no card answers)
  0xd3: 'bad-parameter', // ICCE_IN 211
  0xd4: 'address-out-of-range', // ICCE_OUTZ 212
  0xd5: 'write-failed', // ICCE_RETRY 213: retry impossible in write
  0xd8: 'card-locked', // ICCE_BLOQ 216: card disabled
  0xdc: 'card-not-supported', // ICCE_MSK 220
  0xdd: 'not-supported', // ICCE_SPE 221
  0xde: 'no-card', // ICCE_ES 222: card or line status incorrect
  0xe0: 'psc-rejected', // ICCE_1CF 224: 1 false code submitted
  0xe1: 'psc-rejected', // ICCE_2CF 225: 2 false codes submitted
};

/** The code the simulator sends for each refusal (the first code of STAR_NACK_CODES with that meaning). */
const STAR_NACK_OF: Partial<Record<ReaderStatusName, number>> = {
  'card-removed': 0x71,
  'bad-frame': 0xa2,
  'no-card': 0xde,
  'bad-parameter': 0xd3,
  'address-out-of-range': 0xd4,
  'write-failed': 0xd5,
  'card-locked': 0xd8,
  'card-not-supported': 0xdc,
  'not-supported': 0xdd,
  'not-powered': 0xd2,
  'psc-rejected': 0xe0,
};

// ---------------------------------------------------------------------------------------------------------------
// STX family: meterd's generic binary dialect. Every code below is ours, documented here and nowhere else.

/** Command codes of meterd's generic binary STX dialect. */
export const STX_COMMANDS = {
  readerInfo: 0x01, // → DATA: ASCII "model;firmware;serial"
  cardStatus: 0x02, // → DATA: flags (bit 0 present, bit 1 powered) [ATR when powered]
  powerUp: 0x10, // memory card reset → DATA: ATR
  powerDown: 0x11,
  cpuPowerUp: 0x12, // ISO 7816 reset → DATA: ATR
  cpuPowerDown: 0x13,
  selectCardType: 0x14, // DATA: card type code (CARD_TYPE_CODES)
  read: 0x20, // DATA: zone, addr (2, BE), len (2, BE) → DATA: the bytes
  write: 0x21, // DATA: zone, addr (2, BE), bytes…
  presentPsc: 0x22, // DATA: PSC (3)
  readErrorCounter: 0x23, // → DATA: EC byte
  changePsc: 0x24, // DATA: new PSC (3); the PSC must have been presented
  writeProtection: 0x25, // DATA: addr, the bytes now at addr…
  apdu: 0x30, // DATA: command APDU → DATA: response data SW1 SW2
  beep: 0x40, // DATA: ms (2, BE)
  eject: 0x41,
} as const;

/** STATUS bytes of meterd's generic binary STX dialect. */
export const STX_STATUS: Readonly<Record<number, ReaderStatusName>> = {
  0x01: 'no-card',
  0x02: 'card-removed',
  0x03: 'card-not-supported',
  0x04: 'psc-rejected',
  0x05: 'card-locked',
  0x06: 'address-out-of-range',
  0x07: 'write-failed',
  0x08: 'bad-parameter',
  0x09: 'not-supported',
  0x0a: 'not-powered',
  0x0b: 'bad-frame',
};
export const STX_OK = 0x00;

/** Card type codes for "select card type" in both families [practice; SLE4442 = 4 as in the QFIC vendor API's chip flag]. */
export const CARD_TYPE_CODES: Readonly<Partial<Record<CardKind, number>>> = { AT24C: 0x01, AT88SC102: 0x02, SLE4428: 0x03, SLE4442: 0x04 };

/** Zone bytes of read/write in both families [practice: the STAR header names the zone parameter, not its values]. */
export const ZONE_CODES: Readonly<Record<MemoryZone, number>> = { main: 0x00, protection: 0x01, security: 0x02 };

const zoneOf = (code: number): MemoryZone | undefined => (Object.keys(ZONE_CODES) as MemoryZone[]).find((z) => ZONE_CODES[z] === code);
const kindOfTypeCode = (code: number): CardKind | undefined =>
  (Object.keys(CARD_TYPE_CODES) as CardKind[]).find((k) => CARD_TYPE_CODES[k] === code);

/** A request ready for the wire: the bytes, and the command code (STX replies echo it; STAR replies do not). */
export interface EncodedRequest {
  readonly bytes: Uint8Array;
  readonly code: number;
}

function isByte(n: number): boolean {
  return Number.isInteger(n) && n >= 0 && n <= 0xff;
}

/**
 * STAR (60 LEN CMD DATA LRC 03, ASCII-hex) or meterd's STX dialect: the wire bytes of one vendor-neutral request.
 * Returns NOT_IN_FAMILY for an operation the family has no command for, BAD_COMMAND_DATA for values that do not fit.
 *
 * @example
 * encodeCardRequest('star', { op: 'read', zone: 'main', addr: 0x20, len: 16 }); // bytes "60042300201077" + 03H, code 23H
 */
export function encodeCardRequest(family: CardFamily, req: CardRequest): Result<EncodedRequest> {
  const body = family === 'star' ? starBody(req) : stxBody(req);
  if (!body.ok) return body;
  const { code, data } = body.value;
  if (family === 'star') return ok({ code, bytes: encodeStarPacket({ head: STAR_ACK, code, data }) });
  return ok({ code, bytes: encodeStxRequest(code, data) });
}

type Body = Result<{ code: number; data: Uint8Array }>;

function starBody(req: CardRequest): Body {
  const C = STAR_COMMANDS;
  switch (req.op) {
    case 'readerInfo':
      return fail('NOT_IN_FAMILY', 'STAR readers have no reader-information command');
    case 'cardStatus':
      return ok({ code: C.cardStatus, data: Uint8Array.of(0) });
    case 'selectCardType': {
      const t = CARD_TYPE_CODES[req.kind];
      if (t === undefined) return fail('BAD_COMMAND_DATA', `no card type code for ${req.kind}`);
      return ok({ code: C.selectCardType, data: Uint8Array.of(t) });
    }
    case 'powerUp':
    case 'powerDown':
    case 'cpuPowerUp':
    case 'cpuPowerDown':
    case 'readErrorCounter':
    case 'eject':
      return ok({ code: C[req.op], data: new Uint8Array() });
    case 'read':
      if (!isByte(req.addr) || !Number.isInteger(req.len) || req.len < 1 || req.len > STAR_MAX_DATA) {
        return fail(
          'BAD_COMMAND_DATA',
          `a STAR read is at a byte address (0–255) for 1–${STAR_MAX_DATA} bytes, not ${req.len} at ${req.addr}`,
        );
      }
      return ok({ code: C.read, data: Uint8Array.of(ZONE_CODES[req.zone], req.addr, req.len) });
    case 'write':
      return starWrite(req.zone, req.addr, req.data);
    case 'changePsc':
      if (req.psc.length !== 3) return fail('BAD_COMMAND_DATA', `a PSC is 3 bytes, not ${req.psc.length}`);
      return starWrite('security', 1, req.psc);
    case 'presentPsc':
      if (req.psc.length !== 3) return fail('BAD_COMMAND_DATA', `a PSC is 3 bytes, not ${req.psc.length}`);
      return ok({ code: C.presentPsc, data: req.psc.slice() });
    case 'writeProtection': {
      if (!isByte(req.addr) || req.data.length < 1 || req.data.length > STAR_MAX_DATA - 2)
        return fail('BAD_COMMAND_DATA', 'a protection write is at a byte address with 1 or more bytes');
      const data = new Uint8Array(req.data.length + 2);
      data[0] = req.addr;
      data[1] = req.data.length;
      data.set(req.data, 2);
      return ok({ code: C.writeProtection, data });
    }
    case 'apdu': {
      const shape = apduShape(req.apdu);
      if (!shape.ok) return shape;
      const a = req.apdu;
      // T=0 carries either data to the card (Lc, "incoming") or a length to expect back (Le, "outgoing"), never both.
      if (shape.value.lc > 0) return ok({ code: C.apduIncoming, data: a.slice(0, 5 + shape.value.lc) });
      return ok({ code: C.apduOutgoing, data: Uint8Array.of(a[0]!, a[1]!, a[2]!, a[3]!, shape.value.le ?? 0) });
    }
    case 'beep':
      if (!Number.isFinite(req.ms) || req.ms < 0) return fail('BAD_COMMAND_DATA', `a beep lasts 0 or more ms, not ${req.ms}`);
      return ok({ code: C.beep, data: Uint8Array.of(Math.min(255, Math.round(req.ms / 10))) });
  }
}

function starWrite(zone: MemoryZone, addr: number, bytes: Uint8Array): Body {
  if (!isByte(addr) || bytes.length < 1 || bytes.length > STAR_MAX_DATA - 3)
    return fail('BAD_COMMAND_DATA', `a STAR write is at a byte address (0–255) with 1–${STAR_MAX_DATA - 3} bytes`);
  const data = new Uint8Array(bytes.length + 3);
  data[0] = ZONE_CODES[zone];
  data[1] = addr;
  data[2] = bytes.length;
  data.set(bytes, 3);
  return ok({ code: STAR_COMMANDS.write, data });
}

function stxBody(req: CardRequest): Body {
  const C = STX_COMMANDS;
  const u16 = (n: number): [number, number] => [(n >> 8) & 0xff, n & 0xff];
  switch (req.op) {
    case 'readerInfo':
    case 'cardStatus':
    case 'powerUp':
    case 'powerDown':
    case 'cpuPowerUp':
    case 'cpuPowerDown':
    case 'readErrorCounter':
    case 'eject':
      return ok({ code: C[req.op], data: new Uint8Array() });
    case 'selectCardType': {
      const t = CARD_TYPE_CODES[req.kind];
      if (t === undefined) return fail('BAD_COMMAND_DATA', `no card type code for ${req.kind}`);
      return ok({ code: C.selectCardType, data: Uint8Array.of(t) });
    }
    case 'read':
      if (
        !Number.isInteger(req.addr) ||
        req.addr < 0 ||
        req.addr > 0xffff ||
        !Number.isInteger(req.len) ||
        req.len < 1 ||
        req.len > STX_MAX_DATA
      ) {
        return fail('BAD_COMMAND_DATA', `an STX read is at an address 0–65535 for 1–${STX_MAX_DATA} bytes, not ${req.len} at ${req.addr}`);
      }
      return ok({ code: C.read, data: Uint8Array.of(ZONE_CODES[req.zone], ...u16(req.addr), ...u16(req.len)) });
    case 'write': {
      if (!Number.isInteger(req.addr) || req.addr < 0 || req.addr > 0xffff || req.data.length < 1 || req.data.length > STX_MAX_DATA - 3) {
        return fail('BAD_COMMAND_DATA', `an STX write is at an address 0–65535 with 1–${STX_MAX_DATA - 3} bytes`);
      }
      const data = new Uint8Array(req.data.length + 3);
      data.set([ZONE_CODES[req.zone], ...u16(req.addr)]);
      data.set(req.data, 3);
      return ok({ code: C.write, data });
    }
    case 'presentPsc':
    case 'changePsc':
      if (req.psc.length !== 3) return fail('BAD_COMMAND_DATA', `a PSC is 3 bytes, not ${req.psc.length}`);
      return ok({ code: C[req.op], data: req.psc.slice() });
    case 'writeProtection': {
      if (!isByte(req.addr) || req.data.length < 1 || req.data.length > STX_MAX_DATA - 1)
        return fail('BAD_COMMAND_DATA', 'a protection write is at a byte address with 1 or more bytes');
      const data = new Uint8Array(req.data.length + 1);
      data[0] = req.addr;
      data.set(req.data, 1);
      return ok({ code: C.writeProtection, data });
    }
    case 'apdu': {
      const shape = apduShape(req.apdu);
      if (!shape.ok) return shape;
      return ok({ code: C.apdu, data: req.apdu.slice() });
    }
    case 'beep':
      if (!Number.isFinite(req.ms) || req.ms < 0) return fail('BAD_COMMAND_DATA', `a beep lasts 0 or more ms, not ${req.ms}`);
      return ok({ code: C.beep, data: Uint8Array.of(...u16(Math.min(0xffff, Math.round(req.ms)))) });
  }
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

// ---------------------------------------------------------------------------------------------------------------
// Replies, as the driver reads them.

/** STAR (60/E0 LEN STATUS DATA LRC 03): any packet is the reply to the one request outstanding, as STAR replies carry no command. */
export function starReply(packet: StarPacket): CardReply {
  if (packet.head === STAR_NACK) return { ok: false, status: statusOf(STAR_NACK_CODES[packet.code], packet.code) };
  if (packet.head !== STAR_ACK)
    return {
      ok: false,
      status: { name: 'bad-frame', code: packet.head, message: `the encoder answered with an unknown head byte ${hex2(packet.head)}` },
    };
  // An ACK's status byte is the reader status (E7H after an APDU whose SW is not 9000); the SW in DATA says the rest.
  return { ok: true, data: packet.data };
}

/** meterd's STX dialect: the reply (CMD STATUS DATA) to the request with command `code`. */
export function stxReply(frame: StxFrame): CardReply {
  const r = stxReplyOf(frame);
  if (!r) return { ok: false, status: { name: 'bad-frame', code: 0, message: 'the encoder answered without a status byte' } };
  if (r.status === STX_OK) return { ok: true, data: r.data };
  return { ok: false, status: statusOf(STX_STATUS[r.status], r.status) };
}

function statusOf(name: ReaderStatusName | undefined, code: number): ReaderStatus {
  const n = name ?? 'unknown';
  return { name: n, code, message: name ? STATUS_MESSAGES[n] : `the encoder refused the command with code ${hex2(code)}` };
}

const hex2 = (n: number): string => `${n.toString(16).toUpperCase().padStart(2, '0')}H`;

// ---------------------------------------------------------------------------------------------------------------
// The encoder's side (the simulator): requests in, replies out.

/** STAR or STX: a decoded request frame back to the vendor-neutral request; UNKNOWN_COMMAND or BAD_COMMAND_DATA otherwise. */
export function decodeCardRequest(family: CardFamily, code: number, data: Uint8Array): Result<CardRequest> {
  return family === 'star' ? decodeStar(code, data) : decodeStx(code, data);
}

function decodeStar(code: number, data: Uint8Array): Result<CardRequest> {
  const C = STAR_COMMANDS;
  const bad = (what: string) => fail('BAD_COMMAND_DATA', `STAR command ${hex2(code)}: ${what}`);
  switch (code) {
    case C.powerUp:
      return ok({ op: 'powerUp' });
    case C.powerDown:
      return ok({ op: 'powerDown' });
    case C.cpuPowerUp:
      return ok({ op: 'cpuPowerUp' });
    case C.cpuPowerDown:
      return ok({ op: 'cpuPowerDown' });
    case C.readErrorCounter:
      return ok({ op: 'readErrorCounter' });
    case C.eject:
      return ok({ op: 'eject' });
    case C.cardStatus:
      return ok({ op: 'cardStatus' });
    case C.beep:
      return data.length === 1 ? ok({ op: 'beep', ms: data[0]! * 10 }) : bad('expected 1 data byte');
    case C.selectCardType: {
      const kind = data.length === 1 ? kindOfTypeCode(data[0]!) : undefined;
      return kind ? ok({ op: 'selectCardType', kind }) : bad('unknown card type');
    }
    case C.presentPsc:
      return data.length === 3 ? ok({ op: 'presentPsc', psc: data.slice() }) : bad('a PSC is 3 bytes');
    case C.read: {
      const zone = zoneOf(data[0] ?? -1);
      if (data.length !== 3 || !zone || data[2] === 0) return bad('expected zone, addr, len');
      return ok({ op: 'read', zone, addr: data[1]!, len: data[2]! });
    }
    case C.write: {
      const zone = zoneOf(data[0] ?? -1);
      if (data.length < 4 || !zone || data[2] !== data.length - 3) return bad('expected zone, addr, len and len bytes');
      return ok({ op: 'write', zone, addr: data[1]!, data: data.slice(3) });
    }
    case C.writeProtection:
      if (data.length < 3 || data[1] !== data.length - 2) return bad('expected addr, len and len bytes');
      return ok({ op: 'writeProtection', addr: data[0]!, data: data.slice(2) });
    case C.apduIncoming:
    case C.apduOutgoing: {
      const shape = apduShape(data);
      return shape.ok ? ok({ op: 'apdu', apdu: data.slice() }) : shape;
    }
    default:
      return fail('UNKNOWN_COMMAND', `STAR command ${hex2(code)} is not one meterd knows`);
  }
}

function decodeStx(code: number, data: Uint8Array): Result<CardRequest> {
  const C = STX_COMMANDS;
  const bad = (what: string) => fail('BAD_COMMAND_DATA', `STX command ${hex2(code)}: ${what}`);
  const u16 = (at: number): number => (data[at]! << 8) | data[at + 1]!;
  switch (code) {
    case C.readerInfo:
      return ok({ op: 'readerInfo' });
    case C.cardStatus:
      return ok({ op: 'cardStatus' });
    case C.powerUp:
      return ok({ op: 'powerUp' });
    case C.powerDown:
      return ok({ op: 'powerDown' });
    case C.cpuPowerUp:
      return ok({ op: 'cpuPowerUp' });
    case C.cpuPowerDown:
      return ok({ op: 'cpuPowerDown' });
    case C.readErrorCounter:
      return ok({ op: 'readErrorCounter' });
    case C.eject:
      return ok({ op: 'eject' });
    case C.beep:
      return data.length === 2 ? ok({ op: 'beep', ms: u16(0) }) : bad('expected 2 data bytes');
    case C.selectCardType: {
      const kind = data.length === 1 ? kindOfTypeCode(data[0]!) : undefined;
      return kind ? ok({ op: 'selectCardType', kind }) : bad('unknown card type');
    }
    case C.presentPsc:
    case C.changePsc:
      if (data.length !== 3) return bad('a PSC is 3 bytes');
      return ok({ op: code === C.presentPsc ? 'presentPsc' : 'changePsc', psc: data.slice() });
    case C.read: {
      const zone = zoneOf(data[0] ?? -1);
      if (data.length !== 5 || !zone || u16(3) === 0) return bad('expected zone, addr (2), len (2)');
      return ok({ op: 'read', zone, addr: u16(1), len: u16(3) });
    }
    case C.write: {
      const zone = zoneOf(data[0] ?? -1);
      if (data.length < 4 || !zone) return bad('expected zone, addr (2) and bytes');
      return ok({ op: 'write', zone, addr: u16(1), data: data.slice(3) });
    }
    case C.writeProtection:
      if (data.length < 2) return bad('expected addr and bytes');
      return ok({ op: 'writeProtection', addr: data[0]!, data: data.slice(1) });
    case C.apdu: {
      const shape = apduShape(data);
      return shape.ok ? ok({ op: 'apdu', apdu: data.slice() }) : shape;
    }
    default:
      return fail('UNKNOWN_COMMAND', `STX command ${hex2(code)} is not one meterd's dialect knows`);
  }
}

/** What an encoder answers: data, or a refusal by meaning. */
export type EncoderAnswer =
  | { readonly ok: true; readonly data: Uint8Array; readonly readerStatus?: number }
  | { readonly ok: false; readonly status: ReaderStatusName };

/** STAR or STX: the reply frame an encoder sends for an answer to the request with command `code`. */
export function encodeCardReply(family: CardFamily, code: number, answer: EncoderAnswer): Uint8Array {
  if (family === 'star') {
    if (answer.ok) return encodeStarPacket({ head: STAR_ACK, code: answer.readerStatus ?? 0x00, data: answer.data });
    return encodeStarPacket({ head: STAR_NACK, code: STAR_NACK_OF[answer.status] ?? 0xdd, data: new Uint8Array() });
  }
  if (answer.ok) return encodeStxReply({ cmd: code, status: STX_OK, data: answer.data });
  const status = Number(Object.entries(STX_STATUS).find(([, n]) => n === answer.status)?.[0] ?? 0x09);
  return encodeStxReply({ cmd: code, status, data: new Uint8Array() });
}
