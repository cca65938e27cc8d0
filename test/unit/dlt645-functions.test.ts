import { describe, expect, it } from 'vitest';
import {
  abnormalReply,
  broadcastTime,
  changeBaud,
  changePassword,
  checkReply,
  decodeFrame,
  demandClear,
  describeFrame,
  encodeFrame,
  eventClear,
  freeze,
  fromHex,
  isReplyTo,
  meterClear,
  multiFunctionOutput,
  normalReply,
  parseOperatorCode,
  parsePassword,
  parseReadReply,
  readAddress,
  readData,
  readData1997,
  readFollowUp,
  readReplyData,
  remoteControl,
  securityAuth,
  writeAddress,
  writeData,
  writeData1997,
  type Frame,
  type Password,
} from '../../protocols/dlt645/index.js';

// Golden frames computed by an independent Python implementation of DL/T 645-2007 §7 (sum from the first 68, +33H, DI0 first).
const A = '123456789012';
const pw = (t: string): Password => {
  const r = parsePassword(t);
  if (!r.ok) throw new Error(r.error.message);
  return r.value;
};
const hex = (b: Uint8Array) =>
  Buffer.from(b)
    .toString('hex')
    .toUpperCase()
    .replace(/(..)(?!$)/g, '$1 ');
const wire = (f: Frame) => hex(encodeFrame(f));
const frame = (h: string): Frame => {
  const r = decodeFrame(fromHex(h)!);
  if (!r.ok) throw new Error(r.error.message);
  return r.value.frame;
};
const op = '00000001';
const t = (year: number, month: number, day: number, hour: number, minute: number, second: number) => ({
  year,
  month,
  day,
  hour,
  minute,
  second,
});

describe('DL/T 645-2007 request builders produce the exact wire bytes', () => {
  const cases: [string, Frame, string][] = [
    [
      '0x14 write data: DI, level+password, operator, data',
      writeData(A, '04001001', pw('02123456'), op, Uint8Array.of(0x00, 0x50, 0x00, 0x00)),
      '68 12 90 78 56 34 12 68 14 10 34 43 33 37 35 89 67 45 34 33 33 33 33 83 33 33 DE 16',
    ],
    ['0x15 write address to the wildcard', writeAddress(A), '68 AA AA AA AA AA AA 68 15 06 45 C3 AB 89 67 45 CF 16'],
    [
      '0x08 broadcast time ss mm hh DD MM YY',
      broadcastTime(t(2026, 11, 27, 10, 30, 0)),
      '68 99 99 99 99 99 99 68 08 06 33 63 43 5A 44 59 44 16',
    ],
    ['0x16 freeze now (99999999)', freeze(A, 'now'), '68 12 90 78 56 34 12 68 16 04 CC CC CC CC D0 16'],
    ['0x16 daily freeze at 00:00 (99 99 hh mm)', freeze(A, { hour: 0, minute: 0 }), '68 12 90 78 56 34 12 68 16 04 33 33 CC CC 9E 16'],
    ['0x17 change baud to 9600 (Z = 20H)', changeBaud(A, 9600), '68 12 90 78 56 34 12 68 17 01 53 F1 16'],
    [
      '0x18 change password (DI 04000C03 for level 02)',
      changePassword(A, pw('02123456'), pw('02654321')),
      '68 12 90 78 56 34 12 68 18 0C 36 3F 33 37 35 89 67 45 35 54 76 98 8A 16',
    ],
    ['0x19 demand clear', demandClear(A, pw('02123456'), op), '68 12 90 78 56 34 12 68 19 08 35 89 67 45 34 33 33 33 DE 16'],
    ['0x1A meter clear', meterClear(A, pw('02123456'), op), '68 12 90 78 56 34 12 68 1A 08 35 89 67 45 34 33 33 33 DF 16'],
    [
      '0x1B event clear, all events',
      eventClear(A, pw('02123456'), op),
      '68 12 90 78 56 34 12 68 1B 0C 35 89 67 45 34 33 33 33 32 32 32 32 AC 16',
    ],
    [
      '0x1C trip valid until 2026-11-27 11:30:00',
      remoteControl(A, pw('02123456'), op, 'trip', t(2026, 11, 27, 11, 30, 0)),
      '68 12 90 78 56 34 12 68 1C 10 35 89 67 45 34 33 33 33 4D 33 33 63 44 5A 44 59 3A 16',
    ],
    ['0x1D multi-function output: demand period', multiFunctionOutput(A, 1), '68 12 90 78 56 34 12 68 1D 01 34 D8 16'],
    ['0x12 read follow-up SEQ 2', readFollowUp(A, '03300001', 2), '68 12 90 78 56 34 12 68 12 05 34 33 63 36 35 D2 16'],
    ['0x13 read address', readAddress(), '68 AA AA AA AA AA AA 68 13 00 DF 16'],
  ];
  for (const [name, f, expected] of cases) {
    it(name, () => {
      expect(wire(f)).toBe(expected);
      const back = frame(expected);
      expect(back.address).toBe(f.address);
      expect(back.control).toBe(f.control);
      expect(hex(back.data)).toBe(hex(f.data));
    });
  }

  it('0x03 recharge framing matches the worked example of docs/reference/prepaid.md § Worked recharge frame', () => {
    // operator 00000000, amount 10000 fen, count 6, MAC1 11223344, customer 000000000001, MAC2 55667788 (opaque).
    const payload = fromHex('00000000' + '10270000' + '06000000' + '11223344' + '010000000000' + '55667788')!;
    expect(wire(securityAuth('000000000001', '070102FF', payload))).toBe(
      '68 01 00 00 00 00 00 68 03 1E 32 35 34 3A 33 33 33 33 43 5A 33 33 39 33 33 33 44 55 66 77 34 33 33 33 33 33 88 99 AA BB 97 16',
    );
  });

  it('read with a record count and a start time carries N and mm hh DD MM YY after the DI', () => {
    const f = readData(A, '06010001', { count: 4, from: t(2026, 11, 27, 8, 15, 0) });
    expect(hex(f.data)).toBe('01 00 01 06 04 15 08 27 11 26');
  });
});

describe('DL/T 645-2007 replies', () => {
  const req = readData(A, '00010000');

  it('a normal reply with the follow-up bit (B1) is parsed with more = true', () => {
    const r = parseReadReply(frame('68 12 90 78 56 34 12 68 B1 08 33 33 34 33 AB 89 67 45 EC 16'));
    expect(r.ok && r.value).toMatchObject({ di: '00010000', more: true });
  });

  it('a 0x92 follow-up reply returns its SEQ separately from the value', () => {
    const r = parseReadReply(frame('68 12 90 78 56 34 12 68 92 08 34 33 63 36 34 35 36 35 F4 16'));
    expect(r.ok).toBe(true);
    if (r.ok) {
      expect(r.value.di).toBe('03300001');
      expect(r.value.seq).toBe(2);
      expect(hex(r.value.value)).toBe('01 02 03');
    }
  });

  const abnormal: [string, string, number, string[]][] = [
    ['D1 no requested data', '68 12 90 78 56 34 12 68 D1 01 35 8D 16', 0x11, ['no-requested-data']],
    ['D4 wrong password', '68 12 90 78 56 34 12 68 D4 01 37 92 16', 0x14, ['password-error']],
    ['DC trip refused, unauthorised', '68 12 90 78 56 34 12 68 DC 01 37 9A 16', 0x1c, ['password-error']],
    ['C3 SERR repeat recharge (2 bytes)', '68 12 90 78 56 34 12 68 C3 02 35 33 B3 16', 0x03, ['repeat-recharge']],
  ];
  for (const [name, h, fn, errors] of abnormal) {
    it(`abnormal reply ${name} decodes to its named errors`, () => {
      const r = checkReply(frame(h), fn);
      expect(r.ok).toBe(false);
      if (!r.ok) {
        expect(r.error.code).toBe('DLT645_ABNORMAL');
        expect('errors' in r.error && r.error.errors).toEqual(errors);
      }
      expect(describeFrame(frame(h)).errors).toEqual(errors);
    });
  }

  it('acknowledgements with no data (94, 9C) pass checkReply; 97 echoes Z; 98 echoes the new password', () => {
    expect(checkReply(frame('68 12 90 78 56 34 12 68 94 00 1A 16'), 0x14).ok).toBe(true);
    expect(checkReply(frame('68 12 90 78 56 34 12 68 9C 00 22 16'), 0x1c).ok).toBe(true);
    const baud = checkReply(frame('68 12 90 78 56 34 12 68 97 01 53 71 16'), 0x17);
    expect(baud.ok && Array.from(baud.value.data)).toEqual([0x20]);
    const pwd = checkReply(frame('68 12 90 78 56 34 12 68 98 04 35 54 76 98 B9 16'), 0x18);
    expect(pwd.ok && hex(pwd.value.data)).toBe('02 21 43 65');
  });

  // Every other reply the standard defines, normal and abnormal (independent Python computation, as above).
  const replies: [string, number, string, string | undefined][] = [
    [
      '0x83 security reply: DI 070000FF + random2 + ESAM serial',
      0x03,
      '68 12 90 78 56 34 12 68 83 10 32 33 33 3A 44 55 66 77 34 35 36 37 38 39 3A 3B 1D 16',
      undefined,
    ],
    ['0x95 write-address ack', 0x15, '68 12 90 78 56 34 12 68 95 00 1B 16', undefined],
    ['0x96 freeze ack', 0x16, '68 12 90 78 56 34 12 68 96 00 1C 16', undefined],
    ['0x99 demand-clear ack', 0x19, '68 12 90 78 56 34 12 68 99 00 1F 16', undefined],
    ['0x9A meter-clear ack', 0x1a, '68 12 90 78 56 34 12 68 9A 00 20 16', undefined],
    ['0x9B event-clear ack', 0x1b, '68 12 90 78 56 34 12 68 9B 00 21 16', undefined],
    ['0x9D multi-function output ack', 0x1d, '68 12 90 78 56 34 12 68 9D 01 34 58 16', undefined],
    ['0xD2 follow-up refused: no data', 0x12, '68 12 90 78 56 34 12 68 D2 01 35 8E 16', 'no-requested-data'],
    ['0xD6 freeze refused: other', 0x16, '68 12 90 78 56 34 12 68 D6 01 34 91 16', 'other-error'],
    ['0xD7 baud refused', 0x17, '68 12 90 78 56 34 12 68 D7 01 3B 99 16', 'baud-rate-unchangeable'],
    ['0xD8 password change refused', 0x18, '68 12 90 78 56 34 12 68 D8 01 37 96 16', 'password-error'],
    ['0xD9 demand clear refused', 0x19, '68 12 90 78 56 34 12 68 D9 01 37 97 16', 'password-error'],
    ['0xDA meter clear refused', 0x1a, '68 12 90 78 56 34 12 68 DA 01 34 95 16', 'other-error'],
    ['0xDB event clear refused', 0x1b, '68 12 90 78 56 34 12 68 DB 01 37 99 16', 'password-error'],
    ['0xDD output refused', 0x1d, '68 12 90 78 56 34 12 68 DD 01 34 98 16', 'other-error'],
    ['0xC3 SERR MAC failed', 0x03, '68 12 90 78 56 34 12 68 C3 02 37 33 B5 16', 'mac-failed'],
    ['0xC3 SERR purchase count error', 0x03, '68 12 90 78 56 34 12 68 C3 02 53 33 D1 16', 'purchase-count-error'],
  ];
  for (const [name, fn, h, error] of replies) {
    it(`${name}: built by the meter-side helpers byte for byte, and checked by checkReply`, () => {
      const f = frame(h);
      const request: Frame = { address: A, control: fn, data: new Uint8Array(0) };
      const rebuilt =
        error === undefined
          ? normalReply(request, A, f.data)
          : abnormalReply(request, A, f.data.length === 2 ? f.data[0]! | (f.data[1]! << 8) : f.data[0]!);
      expect(wire(rebuilt)).toBe(h);
      const r = checkReply(f, fn);
      if (error === undefined) expect(r.ok).toBe(true);
      else expect(!r.ok && 'errors' in r.error && r.error.errors).toEqual([error]);
    });
  }

  it('a reply matches its request by direction, function, address and DI echo', () => {
    const good = normalReply(req, A, readReplyData('00010000', Uint8Array.of(0, 0, 0, 0)));
    expect(isReplyTo(req, good)).toBe(true);
    expect(isReplyTo(req, req)).toBe(false); // our own echo
    expect(isReplyTo(req, normalReply(req, '000000000001', good.data))).toBe(false); // another meter
    expect(isReplyTo(req, normalReply(req, A, readReplyData('02010100', Uint8Array.of(0, 0))))).toBe(false); // late reply to an earlier read
    expect(isReplyTo(req, abnormalReply(req, A, 0x02))).toBe(true);
    // A wildcard request accepts the meter's real address.
    expect(isReplyTo(readAddress(), normalReply(readAddress(), A, Uint8Array.of(0x12, 0x90, 0x78, 0x56, 0x34, 0x12)))).toBe(true);
  });

  it('passwords and operator codes are 8 hex digits with a readable error otherwise', () => {
    expect(pw('02000000')).toEqual({ level: 2, code: '000000' });
    const bad = parsePassword('2000');
    expect(bad.ok).toBe(false);
    if (!bad.ok) expect(bad.error.message).toMatch(/8 hex digits/);
    expect(parseOperatorCode('xyz').ok).toBe(false);
  });
});

describe('DL/T 645-1997 frames', () => {
  it('0x01 read of 9010 uses a 2-byte identifier', () => {
    expect(wire(readData1997(A, '9010'))).toBe('68 12 90 78 56 34 12 68 01 02 43 C3 8F 16');
  });

  it('0x81 reply of 9010 decodes forward active energy in kWh', () => {
    const d = describeFrame(frame('68 12 90 78 56 34 12 68 81 06 43 C3 AB 89 67 45 F3 16'));
    expect(d).toMatchObject({ edition: '1997', function: 'readData', di: '9010', value: 123456.78, unit: 'kWh' });
  });

  it('B611 voltage is whole volts and B621 current has two decimals in 1997', () => {
    expect(describeFrame(frame('68 12 90 78 56 34 12 68 81 04 44 E9 53 35 C0 16'))).toMatchObject({ di: 'B611', value: 220, unit: 'V' });
    expect(describeFrame(frame('68 12 90 78 56 34 12 68 81 04 54 E9 83 45 10 16'))).toMatchObject({ di: 'B621', value: 12.5, unit: 'A' });
  });

  it('a 1997 abnormal reply names the 1997 error bits', () => {
    const d = describeFrame(frame('68 12 90 78 56 34 12 68 C1 01 35 7D 16'));
    expect(d.errors).toEqual(['di-error']);
  });

  it('0x04 write has no operator code', () => {
    expect(wire(writeData1997(A, 'C010', pw('02123456'), Uint8Array.of(0x05, 0x27, 0x11, 0x26)))).toBe(
      '68 12 90 78 56 34 12 68 04 0A 43 F3 35 89 67 45 38 5A 44 59 63 16',
    );
  });
});
