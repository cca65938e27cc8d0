import { Buffer } from 'node:buffer';
import { createRequire } from 'node:module';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { crc16, decodeRtuFrame, encodeRtuFrame, type ModbusPdu, type RtuDirection } from '../../protocols/modbus/index.js';

// modbus-serial's own CRC, used only as an independent oracle.
const referenceCrc = createRequire(import.meta.url)('modbus-serial/utils/crc16') as (b: Buffer) => number;

const bytes = (...xs: number[]) => Uint8Array.from(xs);
const hex = (b: Uint8Array) =>
  Buffer.from(b)
    .toString('hex')
    .toUpperCase()
    .replace(/(..)(?=.)/g, '$1 ');

function decoded(frame: Uint8Array, direction?: RtuDirection) {
  const r = decodeRtuFrame(frame, direction ? { direction } : {});
  if (!r.ok) throw new Error(`${r.error.code}: ${r.error.message}`);
  return r.value;
}

describe('CRC-16/MODBUS', () => {
  it('matches golden vectors, low byte first on the wire', () => {
    expect(hex(encodeRtuFrame(0x01, 0x03, [0x00, 0x00, 0x00, 0x0a]))).toBe('01 03 00 00 00 0A C5 CD');
    // The worked example of the serial-line specification: unit 17 reads holding registers 108–110.
    expect(hex(encodeRtuFrame(0x11, 0x03, [0x00, 0x6b, 0x00, 0x03]))).toBe('11 03 00 6B 00 03 76 87');
    expect(hex(encodeRtuFrame(0x01, 0x04, [0x00, 0x00, 0x00, 0x02]))).toBe('01 04 00 00 00 02 71 CB');
    expect(crc16(bytes(0x01, 0x03, 0x00, 0x00, 0x00, 0x0a))).toBe(0xcdc5);
  });

  it('agrees with modbus-serial on any bytes (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 256 }), (data) => {
        expect(crc16(data)).toBe(referenceCrc(Buffer.from(data)));
      }),
    );
  });
});

describe('RTU frames: requests, replies and exceptions of FC01–06, 15, 16', () => {
  it('decodes a read request and its register reply', () => {
    expect(decoded(bytes(0x01, 0x03, 0x00, 0x00, 0x00, 0x0a, 0xc5, 0xcd))).toEqual({
      unit: 1,
      functionCode: 3,
      pdu: { kind: 'read-request', start: 0, quantity: 10 },
    });
    expect(decoded(encodeRtuFrame(1, 4, [4, 0x43, 0x66, 0x00, 0x00])).pdu).toEqual({
      kind: 'read-registers-reply',
      words: [0x4366, 0x0000],
    });
  });

  it('decodes a bit reply with the first coil in the least significant bit', () => {
    expect(decoded(encodeRtuFrame(1, 1, [1, 0b0000_0101])).pdu).toEqual({
      kind: 'read-bits-reply',
      bits: [true, false, true, false, false, false, false, false],
    });
  });

  it('decodes an exception reply into the named exception and the function it answers', () => {
    expect(decoded(encodeRtuFrame(1, 0x83, [0x02]))).toEqual({
      unit: 1,
      functionCode: 0x83,
      pdu: {
        kind: 'exception',
        function: 3,
        exception: {
          code: 2,
          name: 'ILLEGAL_DATA_ADDRESS',
          message:
            'the meter has no register at this address, or the request runs into an unmapped register (check 0- vs 1-based addresses and the bridged gaps)',
        },
      },
    });
  });

  it('decodes single writes (request and echo are the same bytes) and refuses an FC05 value other than FF00/0000', () => {
    expect(decoded(encodeRtuFrame(1, 5, [0x00, 0x00, 0xff, 0x00]))).toEqual({
      unit: 1,
      functionCode: 5,
      pdu: { kind: 'write-single-coil', address: 0, on: true },
    });
    expect(decoded(encodeRtuFrame(1, 6, [0x00, 0x07, 0x00, 0x0a])).pdu).toEqual({ kind: 'write-single-register', address: 7, value: 10 });
    const bad = decodeRtuFrame(encodeRtuFrame(1, 5, [0x00, 0x00, 0x12, 0x34]));
    expect(bad.ok === false && bad.error).toEqual({
      code: 'MALFORMED_PDU',
      message: 'an FC05 value is FF00 (on) or 0000 (off), this one is 1234',
    });
  });

  it('decodes multiple writes: a credit write of purchase count and amount, and the reply', () => {
    const request = encodeRtuFrame(1, 16, [0x02, 0x00, 0x00, 0x03, 0x06, 0x00, 0x08, 0x00, 0x00, 0x27, 0x10]);
    expect(decoded(request).pdu).toEqual({ kind: 'write-registers-request', start: 0x200, quantity: 3, words: [8, 0, 10000] });
    expect(decoded(encodeRtuFrame(1, 16, [0x02, 0x00, 0x00, 0x03])).pdu).toEqual({
      kind: 'write-multiple-reply',
      start: 0x200,
      quantity: 3,
    });
    // Ten coils from address 19: CD 01 (the specification's FC15 example).
    expect(decoded(encodeRtuFrame(1, 15, [0x00, 0x13, 0x00, 0x0a, 0x02, 0xcd, 0x01])).pdu).toEqual({
      kind: 'write-coils-request',
      start: 19,
      quantity: 10,
      bits: [true, false, true, true, false, false, true, true, true, false],
    });
  });

  it('reports both readings of a frame that is a plausible FC01 request and a 3-byte reply, unless told the direction', () => {
    const frame = encodeRtuFrame(1, 1, [0x03, 0x00, 0x00, 0x0a]);
    expect(decoded(frame)).toEqual({
      unit: 1,
      functionCode: 1,
      pdu: { kind: 'read-request', start: 0x300, quantity: 10 },
      alternative: {
        kind: 'read-bits-reply',
        bits: [
          false,
          false,
          false,
          false,
          false,
          false,
          false,
          false,
          false,
          false,
          false,
          false,
          false,
          false,
          false,
          false,
          false,
          true,
          false,
          true,
          false,
          false,
          false,
          false,
        ],
      },
    });
    expect(decoded(frame, 'response').alternative).toBeUndefined();
    // Quantity 0xBBCC is beyond the 2000-bit limit, so only the reply reading is plausible.
    expect(decoded(encodeRtuFrame(1, 1, [0x03, 0xaa, 0xbb, 0xcc]))).toMatchObject({ pdu: { kind: 'read-bits-reply' } });
    expect(decoded(encodeRtuFrame(1, 1, [0x03, 0xaa, 0xbb, 0xcc])).alternative).toBeUndefined();
  });

  it('keeps unknown function codes as raw data', () => {
    expect(decoded(encodeRtuFrame(1, 0x2b, [0x0e, 0x01, 0x00])).pdu).toEqual({ kind: 'other', data: bytes(0x0e, 0x01, 0x00) });
  });
});

describe('damaged frames are typed errors', () => {
  const code = (frame: Uint8Array, direction?: RtuDirection) => {
    const r = decodeRtuFrame(frame, direction ? { direction } : {});
    return r.ok ? 'ok' : r.error.code;
  };

  it('a bad CRC is BAD_CRC and names both values', () => {
    const frame = encodeRtuFrame(1, 3, [0, 0, 0, 10]);
    frame[7] = frame[7]! ^ 0xff;
    expect(decodeRtuFrame(frame)).toEqual({
      ok: false,
      error: { code: 'BAD_CRC', message: 'CRC C5 32 on the wire, C5 CD computed (bytes sent low first)' },
    });
  });

  it('a frame cut short of what its header announces is TRUNCATED; over 256 bytes is TOO_LONG', () => {
    const reply = encodeRtuFrame(1, 3, [20, ...new Array<number>(20).fill(0x11)]);
    expect(code(reply.subarray(0, 7))).toBe('TRUNCATED');
    expect(code(reply.subarray(0, 10))).toBe('TRUNCATED');
    expect(code(reply.subarray(0, 3))).toBe('TRUNCATED');
    expect(code(new Uint8Array(257))).toBe('TOO_LONG');
  });

  it('a valid CRC around an inconsistent PDU is MALFORMED_PDU', () => {
    expect(code(encodeRtuFrame(1, 3, [4, 0, 1]))).toBe('MALFORMED_PDU');
    expect(code(encodeRtuFrame(1, 3, [3, 0, 1, 2, 3]))).toBe('MALFORMED_PDU');
    expect(code(encodeRtuFrame(1, 16, [0, 0, 0, 2, 2, 0, 1]))).toBe('MALFORMED_PDU');
    expect(code(encodeRtuFrame(1, 0x83, [2, 0]))).toBe('MALFORMED_PDU');
    expect(code(encodeRtuFrame(1, 3, [0, 0, 0, 10]), 'response')).toBe('MALFORMED_PDU');
  });

  it('any bytes give a frame or a typed error, never an exception (property)', () => {
    const codes = new Set(['TRUNCATED', 'TOO_LONG', 'BAD_CRC', 'MALFORMED_PDU']);
    const withValidCrc = fc
      .tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 1, max: 255 }), fc.uint8Array({ maxLength: 40 }))
      .map(([u, f, d]) => encodeRtuFrame(u, f, d));
    fc.assert(
      fc.property(
        fc.oneof(fc.uint8Array({ maxLength: 300 }), withValidCrc),
        fc.constantFrom<RtuDirection | undefined>(undefined, 'request', 'response'),
        (frame, direction) => {
          const r = decodeRtuFrame(frame, direction ? { direction } : {});
          if (!r.ok) expect(codes.has(r.error.code)).toBe(true);
        },
      ),
    );
  });

  it('code errors in encodeRtuFrame throw with a specific message', () => {
    expect(() => encodeRtuFrame(256, 3, [])).toThrow('unit id 256 is not a byte');
    expect(() => encodeRtuFrame(1, 3, new Array<number>(253).fill(0))).toThrow('data is 253 bytes; an RTU frame carries at most 252');
    expect(() => encodeRtuFrame(1, 3, [300])).toThrow('data byte 0 is 300, not 0–255');
  });
});

describe('encode then decode (property)', () => {
  const u16 = fc.integer({ min: 0, max: 0xffff });
  const be = (n: number) => [n >> 8, n & 0xff];
  const cases: fc.Arbitrary<{ fc: number; data: number[]; direction: RtuDirection; pdu: ModbusPdu }> = fc.oneof(
    fc.tuple(fc.constantFrom(1, 2, 3, 4), u16, u16).map(([f, start, quantity]) => ({
      fc: f,
      data: [...be(start), ...be(quantity)],
      direction: 'request' as const,
      pdu: { kind: 'read-request' as const, start, quantity },
    })),
    fc.array(u16, { minLength: 1, maxLength: 125 }).map((words) => ({
      fc: 3,
      data: [words.length * 2, ...words.flatMap(be)],
      direction: 'response' as const,
      pdu: { kind: 'read-registers-reply' as const, words },
    })),
    fc.tuple(u16, fc.array(u16, { minLength: 1, maxLength: 123 })).map(([start, words]) => ({
      fc: 16,
      data: [...be(start), ...be(words.length), words.length * 2, ...words.flatMap(be)],
      direction: 'request' as const,
      pdu: { kind: 'write-registers-request' as const, start, quantity: words.length, words },
    })),
  );

  it('a frame built from a PDU decodes back to that PDU with the same unit', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 247 }), cases, (unit, c) => {
        const frame = decoded(encodeRtuFrame(unit, c.fc, c.data), c.direction);
        expect(frame).toEqual({ unit, functionCode: c.fc, pdu: c.pdu });
      }),
    );
  });
});
