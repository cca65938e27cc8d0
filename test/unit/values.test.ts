import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  centiKwhFromNumber,
  fenFromNumber,
  MAX_AMOUNT_FEN,
  MAX_ENERGY_CENTI_KWH,
  parseCustomerNo,
  parseKwhText,
  parseMeterAddress,
  parseRequestId,
  parseYuanText,
} from '../../src/values/index.js';

/** Writes whole hundredths as the plain decimal text a person would type: 1250 → "12.5" or "12.50". */
const asText = (hundredths: number, pad: boolean): string => {
  const whole = Math.floor(hundredths / 100);
  const cents = hundredths % 100;
  if (cents === 0 && !pad) return String(whole);
  const fraction = String(cents).padStart(2, '0');
  return `${whole}.${pad ? fraction : fraction.replace(/0$/, '')}`;
};

describe('amounts typed by a person (CLI options, counter forms)', () => {
  it('every plain decimal with at most two decimals within the cap is exactly that many hundredths', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: MAX_ENERGY_CENTI_KWH }), fc.boolean(), (hundredths, pad) => {
        expect(parseKwhText(asText(hundredths, pad))).toEqual({ ok: true, value: hundredths });
      }),
    );
    fc.assert(
      fc.property(fc.integer({ min: 1, max: MAX_AMOUNT_FEN }), fc.boolean(), (fen, pad) => {
        expect(parseYuanText(asText(fen, pad))).toEqual({ ok: true, value: fen });
      }),
    );
  });

  it('anything above the cap is refused as too large, however it is written', () => {
    fc.assert(
      fc.property(fc.integer({ min: MAX_ENERGY_CENTI_KWH + 1, max: Number.MAX_SAFE_INTEGER }), (hundredths) => {
        expect(parseKwhText(asText(hundredths, false))).toEqual({ ok: false, reason: 'must be at most 10000 kWh' });
      }),
    );
    for (const text of ['10000.01', '20000', '1e5', '1e308', '1E400', 'Infinity', `9${'9'.repeat(400)}`]) {
      expect(parseKwhText(text)).toEqual({ ok: false, reason: 'must be at most 10000 kWh' });
    }
    expect(parseYuanText('100000.01')).toEqual({ ok: false, reason: 'must be at most 100000 yuan' });
    expect(parseYuanText('100000')).toEqual({ ok: true, value: 10_000_000 });
    expect(parseKwhText('10000')).toEqual({ ok: true, value: 1_000_000 });
  });

  it('refuses every notation but plain decimal digits: hex, binary, octal, exponents, signs, spaces, separators', () => {
    for (const text of ['0x20', '0b11', '0o7', '0x10', '1e2', '1e-2', '+5', ' 2', '2 ', '1_000', '1,5', '.5', '5.', 'NaN', '', '一']) {
      const parsed = parseKwhText(text);
      expect(parsed.ok, text).toBe(false);
      if (!parsed.ok) expect(parsed.reason, text).toMatch(/^must be a positive number with at most 2 decimals in plain decimal digits/);
    }
    expect(parseYuanText('0x10')).toEqual({
      ok: false,
      reason: 'must be a positive number with at most 2 decimals in plain decimal digits (e.g. 12.5), not "0x10"',
    });
  });

  it('refuses zero, negatives and a third decimal, saying which', () => {
    for (const text of ['0', '0.00', '000']) expect(parseKwhText(text)).toEqual({ ok: false, reason: 'must be above 0' });
    for (const text of ['-5', '-0.01', '-1e308']) expect(parseYuanText(text)).toEqual({ ok: false, reason: 'must be above 0' });
    expect(parseKwhText('1.234')).toEqual({
      ok: false,
      reason: 'must be a positive number with at most 2 decimals (0.01 kWh), not "1.234"',
    });
    expect(parseYuanText('1.005')).toEqual({ ok: false, reason: 'must be a positive number with at most 2 decimals (fen), not "1.005"' });
  });

  it('any string either parses to a whole number of hundredths within the cap or is refused with a reason', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 30 }), (text) => {
        for (const parsed of [parseKwhText(text), parseYuanText(text)]) {
          if (parsed.ok) {
            expect(Number.isSafeInteger(parsed.value)).toBe(true);
            expect(parsed.value).toBeGreaterThan(0);
            expect(parsed.value).toBeLessThanOrEqual(MAX_AMOUNT_FEN);
            expect(text).toMatch(/^\d+(\.\d{1,2})?$/);
          } else expect(parsed.reason).toMatch(/^must /);
        }
      }),
    );
  });
});

describe('amounts as JSON numbers (MQTT fields)', () => {
  it('energyKwh of whole hundredths is exact; a third decimal, zero, negatives and above the cap are refused', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: MAX_ENERGY_CENTI_KWH }), (hundredths) => {
        expect(centiKwhFromNumber(hundredths / 100)).toEqual({ ok: true, value: hundredths });
      }),
    );
    expect(centiKwhFromNumber(1.234)).toEqual({ ok: false, reason: 'must have at most two decimals (0.01 kWh)' });
    expect(centiKwhFromNumber(1e-7)).toEqual({ ok: false, reason: 'must have at most two decimals (0.01 kWh)' });
    expect(centiKwhFromNumber(0)).toEqual({ ok: false, reason: 'must be above 0' });
    expect(centiKwhFromNumber(-1)).toEqual({ ok: false, reason: 'must be above 0' });
    for (const big of [10000.01, 1e5, 1e308, Number.POSITIVE_INFINITY]) {
      expect(centiKwhFromNumber(big)).toEqual({ ok: false, reason: 'must be at most 10000 kWh' });
    }
    expect(centiKwhFromNumber('12.5')).toEqual({ ok: false, reason: 'must be a number of kWh' });
  });

  it('amountFen 1e308 is too large, not "not whole"; fractions of a fen are not whole', () => {
    expect(fenFromNumber(1e308)).toEqual({ ok: false, reason: 'must be at most 10000000 fen (100000 yuan)' });
    expect(fenFromNumber(Number.POSITIVE_INFINITY)).toEqual({ ok: false, reason: 'must be at most 10000000 fen (100000 yuan)' });
    expect(fenFromNumber(1.5)).toEqual({ ok: false, reason: 'must be a whole number of fen (1 yuan = 100 fen)' });
    expect(fenFromNumber(0)).toEqual({ ok: false, reason: 'must be above 0' });
    expect(fenFromNumber(MAX_AMOUNT_FEN)).toEqual({ ok: true, value: MAX_AMOUNT_FEN });
    expect(fenFromNumber(Number.NaN)).toEqual({ ok: false, reason: 'must be a number of fen' });
  });

  it('the CLI text and the MQTT number agree on every amount within the cap', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: MAX_ENERGY_CENTI_KWH }), (hundredths) => {
        expect(parseKwhText(String(hundredths / 100))).toEqual(centiKwhFromNumber(hundredths / 100));
      }),
    );
  });
});

describe('ids', () => {
  it('request ids are 1 to 128 printable ASCII characters without spaces', () => {
    expect(parseRequestId('counter-2026-11-27-0042')).toEqual({ ok: true, value: 'counter-2026-11-27-0042' });
    expect(parseRequestId('x'.repeat(128)).ok).toBe(true);
    expect(parseRequestId('bad id with spaces')).toEqual({ ok: false, reason: 'may hold printable ASCII only, without spaces' });
    expect(parseRequestId('')).toEqual({ ok: false, reason: 'cannot be empty' });
    expect(parseRequestId('x'.repeat(129))).toEqual({ ok: false, reason: 'is longer than 128 characters' });
    for (const id of ['réq', 'a\u0000b', 'tab\there', 12345]) expect(parseRequestId(id).ok, String(id)).toBe(false);
    fc.assert(
      fc.property(fc.string({ minLength: 1, maxLength: 200 }), (id) => {
        expect(parseRequestId(id).ok).toBe(/^[\x21-\x7e]{1,128}$/.test(id));
      }),
    );
  });

  it('customer numbers are 1 to 12 decimal digits, kept with their leading zeros', () => {
    expect(parseCustomerNo('000000000101')).toEqual({ ok: true, value: '000000000101' });
    expect(parseCustomerNo('abc')).toEqual({ ok: false, reason: 'must be 1 to 12 decimal digits, not "abc"' });
    for (const no of ['', '1234567890123', '12 34', '-1', '0x12', '１２']) expect(parseCustomerNo(no).ok, no).toBe(false);
    expect(parseCustomerNo(880000000001)).toEqual({ ok: false, reason: 'must be a string of digits' });
  });

  it('meter addresses: 12 digits for DL/T 645, unit N for Modbus; the short forms only where the bus says which', () => {
    expect(parseMeterAddress('000012349999')).toEqual({ ok: true, value: '000012349999' });
    expect(parseMeterAddress('unit 7')).toEqual({ ok: true, value: 'unit 7' });
    expect(parseMeterAddress(' Unit  12 ')).toEqual({ ok: true, value: 'unit 12' });
    expect(parseMeterAddress('12349999', 'dlt645')).toEqual({ ok: true, value: '000012349999' });
    expect(parseMeterAddress('7', 'modbus')).toEqual({ ok: true, value: 'unit 7' });
    expect(parseMeterAddress(7, 'modbus')).toEqual({ ok: true, value: 'unit 7' });
    // "7" alone could be either: a station's request says which by its form.
    expect(parseMeterAddress('7').ok).toBe(false);
    expect(parseMeterAddress('unit 7', 'dlt645').ok).toBe(false);
    expect(parseMeterAddress('000012349999', 'modbus').ok).toBe(false);
    expect(parseMeterAddress('unit 0')).toEqual({ ok: false, reason: 'names unit 0: a Modbus unit id is 1 to 247' });
    expect(parseMeterAddress('unit 248').ok).toBe(false);
    for (const bad of ['', '0000123499990', 'abc', 'unit', 'unit -1', '12 34']) expect(parseMeterAddress(bad).ok, bad).toBe(false);
    expect(parseMeterAddress(null).ok).toBe(false);
  });
});
