import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  allDataItems,
  decodeBcdInteger,
  decodeValue,
  encodeAscii,
  encodeBcdInteger,
  encodeDigits,
  encodeNumber,
  encodeTime,
  findDataItem,
  findDataItemByPoint,
  formatSize,
  parseAddress,
  parseFormatNotation,
  plainValue,
  type ValueFormat,
} from '../../protocols/dlt645/index.js';

const b = (...xs: number[]) => Uint8Array.from(xs);
const value = (f: ValueFormat, bytes: Uint8Array) => {
  const r = decodeValue(f, bytes);
  if (!r.ok) throw new Error(r.error.message);
  return plainValue(r.value);
};

describe('BCD number formats (DL/T 645-2007 Appendix A)', () => {
  it('signed items carry the sign in bit 7 of the last byte (shixin08052 data vectors)', () => {
    expect(value({ kind: 'bcd', bytes: 4, decimals: 2, signed: true }, b(0x34, 0x12, 0x00, 0x80))).toBe(-12.34);
    expect(value({ kind: 'bcd', bytes: 3, decimals: 3, signed: true }, b(0x23, 0x51, 0x00))).toBe(5.123);
    expect(value({ kind: 'bcd', bytes: 3, decimals: 3, signed: true }, b(0x23, 0x51, 0x80))).toBe(-5.123);
    expect(value({ kind: 'bcd', bytes: 2, decimals: 3, signed: true }, b(0x85, 0x09))).toBe(0.985);
    expect(value({ kind: 'bcd', bytes: 2, decimals: 3, signed: true }, b(0x00, 0x85))).toBe(-0.5);
  });

  it('unsigned items read bit 7 as a digit, and FF-filled items mean "not available"', () => {
    expect(value({ kind: 'bcd', bytes: 4, decimals: 2 }, b(0x78, 0x56, 0x34, 0x12))).toBe(123456.78);
    expect(value({ kind: 'bcd', bytes: 4, decimals: 2 }, b(0xff, 0xff, 0xff, 0xff))).toBeNull();
  });

  it('a non-BCD nibble is a typed error, not a wrong number', () => {
    const r = decodeValue({ kind: 'bcd', bytes: 2, decimals: 1 }, b(0x1a, 0x22));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.code).toBe('DLT645_NOT_BCD');
  });

  it('keeps the exact scaled integer so money never passes through a float', () => {
    const r = decodeValue({ kind: 'bcd', bytes: 4, decimals: 2 }, b(0x56, 0x98, 0x01, 0x00));
    expect(r.ok && r.value).toEqual({ kind: 'number', value: 198.56, scaled: 19856, decimals: 2 });
  });

  it('encode then decode returns the same integer for every size and sign (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 6 }),
        fc.boolean(),
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.boolean(),
        (size, signed, frac, neg) => {
          const max = 10 ** (size * 2 - (signed ? 1 : 0)) - 1;
          const magnitude = Math.floor(frac * max);
          const v = signed && neg ? -magnitude : magnitude;
          const enc = encodeBcdInteger(v, size, signed);
          expect(enc.ok).toBe(true);
          if (!enc.ok) return;
          const dec = decodeBcdInteger(enc.value, signed);
          expect(dec.ok && dec.value).toBe(v === 0 ? 0 : v);
        },
      ),
    );
  });

  it('refuses to encode a value that would need rounding or does not fit', () => {
    expect(encodeNumber({ kind: 'bcd', bytes: 4, decimals: 2 }, 1.005).ok).toBe(false);
    expect(encodeNumber({ kind: 'bcd', bytes: 2, decimals: 1 }, 1000).ok).toBe(false);
    expect(encodeNumber({ kind: 'bcd', bytes: 2, decimals: 1 }, -1).ok).toBe(false);
  });
});

describe('dates, texts and words', () => {
  it('YYMMDDWW goes on the wire as WW DD MM YY (V26: 2016-01-11, Monday)', () => {
    const r = decodeValue({ kind: 'time', layout: 'YYMMDDWW' }, b(0x01, 0x11, 0x01, 0x16));
    expect(r.ok && r.value).toEqual({ kind: 'time', value: '2016-01-11', weekday: 1 });
    expect(Array.from(encodeTime('YYMMDDWW', { year: 2016, month: 1, day: 11, hour: 0, minute: 0, second: 0, weekday: 1 }))).toEqual([
      0x01, 0x11, 0x01, 0x16,
    ]);
  });

  it('a month 13 is a typed time error', () => {
    const r = decodeValue({ kind: 'time', layout: 'YYMMDDhhmmss' }, b(0x00, 0x00, 0x00, 0x01, 0x13, 0x26));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.code).toBe('DLT645_BAD_TIME');
  });

  it('ASCII arrives reversed and NUL-padded (V33 "220.0V", V34 "5.0A")', () => {
    expect(value({ kind: 'ascii', bytes: 6 }, b(0x56, 0x30, 0x2e, 0x30, 0x32, 0x32))).toBe('220.0V');
    expect(value({ kind: 'ascii', bytes: 6 }, b(0x00, 0x00, 0x41, 0x30, 0x2e, 0x35))).toBe('5.0A');
    expect(Array.from(encodeAscii('5.0A', 6))).toEqual([0x00, 0x00, 0x41, 0x30, 0x2e, 0x35]);
  });

  it('digit strings keep their leading zeros (meter numbers)', () => {
    expect(value({ kind: 'digits', bytes: 6 }, b(0x08, 0x02, 0x02, 0x41, 0x22, 0x00))).toBe('002241020208');
    const enc = encodeDigits('002241020208', 6);
    expect(enc.ok && Array.from(enc.value)).toEqual([0x08, 0x02, 0x02, 0x41, 0x22, 0x00]);
  });

  it('status words are unsigned, low byte first', () => {
    expect(value({ kind: 'word', bytes: 2 }, b(0x10, 0x00))).toBe(0x0010);
    expect(value({ kind: 'word', bytes: 2 }, b(0x00, 0x01))).toBe(0x0100);
  });

  it('blocks are sized by the length byte; a voltage block with two phases missing reads as [220.1, null, null]', () => {
    const item = findDataItem('0201FF00')!;
    expect(value(item.format, b(0x01, 0x22, 0xff, 0xff, 0xff, 0xff))).toEqual([220.1, null, null]);
  });

  it('the notation of the standard parses into formats', () => {
    expect(parseFormatNotation('XXXXXX.XX')).toEqual({ kind: 'bcd', bytes: 4, decimals: 2, signed: false });
    expect(parseFormatNotation('NNNN')).toEqual({ kind: 'bcd', bytes: 2, decimals: 0, signed: false });
    expect(parseFormatNotation('YYMMDDhhmmss')).toEqual({ kind: 'time', layout: 'YYMMDDhhmmss' });
    expect(parseFormatNotation('ascii(32)')).toEqual({ kind: 'ascii', bytes: 32 });
    expect(parseFormatNotation('XXX')).toBeUndefined();
  });
});

describe('data identifier table', () => {
  const canonical: [string, string, string | undefined][] = [
    ['energy.active.total', '00000000', 'kWh'],
    ['energy.active.import', '00010000', 'kWh'],
    ['energy.active.export', '00020000', 'kWh'],
    ['energy.active.import.t3', '00010300', 'kWh'],
    ['voltage.a', '02010100', 'V'],
    ['current.a', '02020100', 'A'],
    ['power.active', '02030000', 'kW'],
    ['power.factor', '02060000', ''],
    ['frequency', '02800002', 'Hz'],
    ['credit.balance.money', '00900200', 'CNY'],
    ['credit.balance.energy', '00900100', 'kWh'],
    ['credit.purchase.count', '03330201', ''],
    ['status.word3', '04000503', undefined],
    ['events.cover-open.count', '03300D00', ''],
    ['events.power-down.count', '03110000', ''],
  ];
  for (const [point, di, unit] of canonical) {
    it(`${point} is identifier ${di}`, () => {
      const item = findDataItemByPoint(point);
      expect(item?.di).toBe(di);
      expect(item?.unit).toBe(unit);
    });
  }

  it('every fixed identifier has a name and a decodable format of its stated size', () => {
    for (const item of allDataItems('2007').concat(allDataItems('1997'))) {
      expect(item.name.length).toBeGreaterThan(0);
      const size = formatSize(item.format) ?? (item.format.kind === 'repeat' ? (formatSize(item.format.item) ?? 1) * 3 : 8);
      // 0x01 in every byte is valid BCD and a valid date (month 1, day 1) for every layout.
      expect(decodeValue(item.format, new Uint8Array(size).fill(1)).ok, `${item.di} ${item.name}`).toBe(true);
    }
  });

  it('generated families: settlement periods, purchase records, daily freezes', () => {
    expect(findDataItem('00010001')?.name).toMatch(/1 settlement period/);
    expect(findDataItem('03330201')?.point).toBe('credit.purchase.count');
    expect(findDataItem('03330302')?.point).toBeUndefined();
    expect(findDataItem('05060101')?.unit).toBe('kWh');
    expect(findDataItem('12345678')).toBeUndefined();
  });

  it('addresses pad short numbers and refuse half-wildcard bytes', () => {
    expect(parseAddress('12345678')).toEqual({ ok: true, value: '000012345678' });
    expect(parseAddress('AAAAAA345678').ok).toBe(true);
    expect(parseAddress('A23456789012').ok).toBe(false);
    expect(parseAddress('12-34').ok).toBe(false);
  });
});
