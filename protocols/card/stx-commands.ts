import { fail, ok, type Result } from './result.js';
import { readerStatus, type CardReply, type EncoderAnswer, type ReaderStatusName } from './reader-status.js';
import {
  apduShape,
  CARD_TYPE_CODES,
  hexByte,
  isByte,
  kindOfTypeCode,
  ZONE_CODES,
  zoneOfCode,
  type CardRequest,
  type CommandBody,
  type EncodedRequest,
} from './requests.js';
import { encodeStxReply, encodeStxRequest, STX_MAX_DATA, stxReplyOf, type StxFrame } from './stx.js';

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

/**
 * meterd's STX dialect (STX LEN CMD DATA ETX BCC): the wire bytes of one vendor-neutral request; BAD_COMMAND_DATA for
 * values that do not fit.
 *
 * @example
 * encodeStxCommand({ op: 'cardStatus' }); // bytes 02 0001 02 03 00, code 02H
 */
export function encodeStxCommand(req: CardRequest): Result<EncodedRequest> {
  const body = stxBody(req);
  if (!body.ok) return body;
  const { code, data } = body.value;
  return ok({ code, bytes: encodeStxRequest(code, data) });
}

function stxBody(req: CardRequest): CommandBody {
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

/** meterd's STX dialect: the reply (CMD STATUS DATA) to the request with command `code`. */
export function stxReply(frame: StxFrame): CardReply {
  const r = stxReplyOf(frame);
  if (!r) return { ok: false, status: { name: 'bad-frame', code: 0, message: 'the encoder answered without a status byte' } };
  if (r.status === STX_OK) return { ok: true, data: r.data };
  return { ok: false, status: readerStatus(STX_STATUS[r.status], r.status) };
}

/** An STX request frame's command and data back to the vendor-neutral request (the simulator's side). */
export function decodeStxCommand(code: number, data: Uint8Array): Result<CardRequest> {
  const C = STX_COMMANDS;
  const bad = (what: string) => fail('BAD_COMMAND_DATA', `STX command ${hexByte(code)}: ${what}`);
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
      const zone = zoneOfCode(data[0] ?? -1);
      if (data.length !== 5 || !zone || u16(3) === 0) return bad('expected zone, addr (2), len (2)');
      return ok({ op: 'read', zone, addr: u16(1), len: u16(3) });
    }
    case C.write: {
      const zone = zoneOfCode(data[0] ?? -1);
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
      return fail('UNKNOWN_COMMAND', `STX command ${hexByte(code)} is not one meterd's dialect knows`);
  }
}

/** The frame an STX encoder sends for an answer to the request with command `code`: the command echoed, STATUS, data. */
export function encodeStxAnswer(code: number, answer: EncoderAnswer): Uint8Array {
  if (answer.ok) return encodeStxReply({ cmd: code, status: STX_OK, data: answer.data });
  const status = Number(Object.entries(STX_STATUS).find(([, n]) => n === answer.status)?.[0] ?? 0x09);
  return encodeStxReply({ cmd: code, status, data: new Uint8Array() });
}
