import { describe, expect, it } from 'vitest';
import {
  decodeCardRequest,
  decodeStarCommand,
  decodeStxCommand,
  encodeCardReply,
  encodeCardRequest,
  encodeStarAnswer,
  encodeStarCommand,
  encodeStxAnswer,
  encodeStxCommand,
  toHex,
  type CardRequest,
} from '../../protocols/card/index.js';

const requests: CardRequest[] = [
  { op: 'cardStatus' },
  { op: 'powerUp' },
  { op: 'read', zone: 'main', addr: 0x20, len: 16 },
  { op: 'write', zone: 'main', addr: 0x40, data: Uint8Array.of(1, 2, 3) },
  { op: 'presentPsc', psc: Uint8Array.of(0xff, 0xff, 0xff) },
  { op: 'apdu', apdu: Uint8Array.of(0x00, 0x84, 0x00, 0x00, 0x08) },
];

describe('each encoder family has its own command module; the family-neutral entry points dispatch to them', () => {
  it('the documented examples hold', () => {
    const star = encodeStarCommand({ op: 'read', zone: 'main', addr: 0x20, len: 16 });
    expect(star.ok && { code: star.value.code, text: Buffer.from(star.value.bytes).toString('latin1') }).toEqual({
      code: 0x23,
      text: '60042300201077\x03',
    });
    const stx = encodeStxCommand({ op: 'cardStatus' });
    expect(stx.ok && { code: stx.value.code, hex: toHex(stx.value.bytes) }).toEqual({ code: 0x02, hex: '020001020300' });
  });

  it.each(requests)('$op: the STAR and STX modules give what encodeCardRequest and decodeCardRequest give', (req) => {
    for (const [family, encode, decode] of [
      ['star', encodeStarCommand, decodeStarCommand],
      ['stx', encodeStxCommand, decodeStxCommand],
    ] as const) {
      const own = encode(req);
      expect(encodeCardRequest(family, req)).toEqual(own);
      if (!own.ok) throw new Error(own.error.message);
      const data = family === 'star' ? starData(own.value.bytes) : stxData(own.value.bytes);
      expect(decode(own.value.code, data)).toEqual(decodeCardRequest(family, own.value.code, data));
      expect(decode(own.value.code, data)).toEqual({ ok: true, value: req });
    }
  });

  it('answers are framed by the family modules', () => {
    const answer = { ok: true, data: Uint8Array.of(0xa2, 0x13) } as const;
    expect(encodeCardReply('star', 0x10, answer)).toEqual(encodeStarAnswer(answer));
    expect(encodeCardReply('stx', 0x10, answer)).toEqual(encodeStxAnswer(0x10, answer));
    expect(encodeCardReply('stx', 0x10, { ok: false, status: 'no-card' })).toEqual(encodeStxAnswer(0x10, { ok: false, status: 'no-card' }));
  });
});

/** STAR: ASCII hex HEAD LEN CMD DATA LRC, then ETX; DATA is LEN − 1 bytes after CMD. */
function starData(bytes: Uint8Array): Uint8Array {
  const raw = Buffer.from(Buffer.from(bytes.subarray(0, -1)).toString('latin1'), 'hex');
  return new Uint8Array(raw.subarray(3, 3 + raw[1]! - 1));
}

/** STX: STX LEN(2) CMD DATA ETX BCC. */
function stxData(bytes: Uint8Array): Uint8Array {
  return bytes.subarray(4, bytes.length - 2);
}
