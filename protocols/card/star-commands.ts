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
  type MemoryZone,
} from './requests.js';
import { encodeStarPacket, STAR_ACK, STAR_MAX_DATA, STAR_NACK, type StarPacket } from './star.js';

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

/**
 * STAR (60 LEN CMD DATA LRC 03, ASCII-hex): the wire bytes of one vendor-neutral request. NOT_IN_FAMILY for an
 * operation STAR readers have no command for, BAD_COMMAND_DATA for values that do not fit.
 *
 * @example
 * encodeStarCommand({ op: 'read', zone: 'main', addr: 0x20, len: 16 }); // bytes "60042300201077" + 03H, code 23H
 */
export function encodeStarCommand(req: CardRequest): Result<EncodedRequest> {
  const body = starBody(req);
  if (!body.ok) return body;
  const { code, data } = body.value;
  return ok({ code, bytes: encodeStarPacket({ head: STAR_ACK, code, data }) });
}

function starBody(req: CardRequest): CommandBody {
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

function starWrite(zone: MemoryZone, addr: number, bytes: Uint8Array): CommandBody {
  if (!isByte(addr) || bytes.length < 1 || bytes.length > STAR_MAX_DATA - 3)
    return fail('BAD_COMMAND_DATA', `a STAR write is at a byte address (0–255) with 1–${STAR_MAX_DATA - 3} bytes`);
  const data = new Uint8Array(bytes.length + 3);
  data[0] = ZONE_CODES[zone];
  data[1] = addr;
  data[2] = bytes.length;
  data.set(bytes, 3);
  return ok({ code: STAR_COMMANDS.write, data });
}

/** STAR (60/E0 LEN STATUS DATA LRC 03): any packet is the reply to the one request outstanding, as STAR replies carry no command. */
export function starReply(packet: StarPacket): CardReply {
  if (packet.head === STAR_NACK) return { ok: false, status: readerStatus(STAR_NACK_CODES[packet.code], packet.code) };
  if (packet.head !== STAR_ACK)
    return {
      ok: false,
      status: { name: 'bad-frame', code: packet.head, message: `the encoder answered with an unknown head byte ${hexByte(packet.head)}` },
    };
  // An ACK's status byte is the reader status (E7H after an APDU whose SW is not 9000); the SW in DATA says the rest.
  return { ok: true, data: packet.data };
}

/** A STAR request packet's command and data back to the vendor-neutral request (the simulator's side). */
export function decodeStarCommand(code: number, data: Uint8Array): Result<CardRequest> {
  const C = STAR_COMMANDS;
  const bad = (what: string) => fail('BAD_COMMAND_DATA', `STAR command ${hexByte(code)}: ${what}`);
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
      const zone = zoneOfCode(data[0] ?? -1);
      if (data.length !== 3 || !zone || data[2] === 0) return bad('expected zone, addr, len');
      return ok({ op: 'read', zone, addr: data[1]!, len: data[2]! });
    }
    case C.write: {
      const zone = zoneOfCode(data[0] ?? -1);
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
      return fail('UNKNOWN_COMMAND', `STAR command ${hexByte(code)} is not one meterd knows`);
  }
}

/** The packet a STAR reader sends for an answer: ACK with the reader status and data, or NACK with its code. */
export function encodeStarAnswer(answer: EncoderAnswer): Uint8Array {
  if (answer.ok) return encodeStarPacket({ head: STAR_ACK, code: answer.readerStatus ?? 0x00, data: answer.data });
  return encodeStarPacket({ head: STAR_NACK, code: STAR_NACK_OF[answer.status] ?? 0xdd, data: new Uint8Array() });
}
