import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeField, encodeArea, encodeField, layoutChecksum, readRecord, type LayoutField } from '../../protocols/card/index.js';
import { loadCardLayout, parseCardLayout } from '../../src/profiles/card-layout.js';
import { loadEncoderProfile, parseEncoderProfile } from '../../src/profiles/encoder-profile.js';
import { readFileSync } from 'node:fs';
import { cards } from '../../src/sim/encoder/index.js';

const field = (format: LayoutField['format'], length: number, extra: Partial<LayoutField> = {}): LayoutField => ({
  name: 'f',
  offset: 0,
  length,
  format,
  ...extra,
});

describe('card layout fields', () => {
  it('golden encodings: BCD meter number, big- and little-endian integers, ASCII, time', () => {
    expect(encodeField(field('bcd', 6), '000012345678')).toEqual({ ok: true, value: Uint8Array.of(0x00, 0x00, 0x12, 0x34, 0x56, 0x78) });
    expect(encodeField(field('uint-be', 4), 2000)).toEqual({ ok: true, value: Uint8Array.of(0x00, 0x00, 0x07, 0xd0) });
    expect(encodeField(field('uint-le', 4), 2000)).toEqual({ ok: true, value: Uint8Array.of(0xd0, 0x07, 0x00, 0x00) });
    expect(encodeField(field('uint-be', 4, { signed: true }), -150)).toEqual({ ok: true, value: Uint8Array.of(0xff, 0xff, 0xff, 0x6a) });
    expect(encodeField(field('ascii', 4), 'MTRD')).toEqual({ ok: true, value: Uint8Array.of(0x4d, 0x54, 0x52, 0x44) });
    expect(encodeField(field('datetime', 6), '2025-03-01T08:30:05')).toEqual({
      ok: true,
      value: Uint8Array.of(0x25, 0x03, 0x01, 0x08, 0x30, 0x05),
    });
  });

  it('checksums: sum8 is the sum modulo 256, xor8 the XOR', () => {
    const bytes = Uint8Array.of(0x02, 0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x07, 0xd0);
    expect(layoutChecksum('sum8', bytes)).toBe(0xde);
    expect(layoutChecksum('xor8', bytes)).toBe(0xd0);
    expect(layoutChecksum('sum8', Uint8Array.of(0xff, 0x02))).toBe(0x01);
  });

  it('round-trips integers and BCD of every width (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 6 }),
        fc.constantFrom('uint-be' as const, 'uint-le' as const),
        fc.boolean(),
        fc.double({ min: 0, max: 1, noNaN: true }),
        (len, format, signed, t) => {
          const f = field(format, len, signed ? { signed } : {});
          const span = 2 ** (8 * len);
          const min = signed ? -span / 2 : 0;
          const value = Math.floor(min + t * (span - 1));
          const enc = encodeField(f, value);
          expect(enc.ok).toBe(true);
          if (enc.ok) expect(decodeField(f, enc.value)).toEqual({ ok: true, value });
        },
      ),
    );
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 8 }).chain((len) => fc.tuple(fc.constant(len), fc.stringMatching(new RegExp(`^[0-9]{${len * 2}}$`)))),
        ([len, digits]) => {
          const f = field('bcd', len);
          const enc = encodeField(f, digits);
          expect(enc.ok && decodeField(f, enc.value)).toEqual({ ok: true, value: digits });
        },
      ),
    );
  });

  it('values that do not fit are typed errors, never exceptions', () => {
    expect(encodeField(field('uint-be', 1), 256)).toMatchObject({ ok: false, error: { code: 'FIELD_VALUE' } });
    expect(encodeField(field('bcd', 2), '12345')).toMatchObject({ ok: false, error: { code: 'FIELD_VALUE' } });
    expect(decodeField(field('bcd', 2), Uint8Array.of(0x1a, 0x00))).toMatchObject({ ok: false, error: { code: 'FIELD_VALUE' } });
    expect(decodeField(field('datetime', 6), Uint8Array.of(0x25, 0x13, 0x01, 0, 0, 0))).toMatchObject({ ok: false });
    expect(decodeField(field('datetime', 6), new Uint8Array(6).fill(0xff))).toEqual({ ok: true, value: null });
  });
});

describe('the shipped SLE4442 dormitory layout', () => {
  const layout = loadCardLayout('sle4442-dorm');

  it('a card written by it reads back every field, checksum and backup', () => {
    const card = cards.ours(layout, {
      meterNumber: '000012345678',
      customerNumber: '000000000042',
      cardSerial: 7,
      purchaseCount: 5,
      purchaseAmount: 2000,
      writeBack: { balance: -150, purchaseCount: 5, events: 0b101 },
    });
    const r = readRecord(layout, card.main);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.value.values).toMatchObject({
      magic: 'MTRD',
      version: 1,
      meterNumber: '000012345678',
      customerNumber: '000000000042',
      cardSerial: 7,
      role: 2,
      purchaseCount: 5,
      purchaseAmount: 2000,
      wbBalance: -150,
      wbPurchaseCount: 5,
      wbEvents: 5,
    });
    expect(r.value.areas.purchase).toEqual({ checksumOk: true, blank: false, backupMatches: true, backupChecksumOk: true });
    expect(r.value.validFlag).toBe(true);
    // Purchase area 40H..4EH: role 02, count 00000005, amount 000007D0, six reserved 00 → sum8 DEH at 4FH.
    expect(card.main[0x4f]).toBe(0xde);
    expect(card.main.subarray(0x50, 0x60)).toEqual(card.main.subarray(0x40, 0x50));
  });

  it('a changed byte in the purchase area breaks its checksum and its match with the backup', () => {
    const card = cards.ours(layout, { meterNumber: '000012345678', purchaseCount: 5, purchaseAmount: 2000 });
    card.main[0x46] = card.main[0x46]! ^ 0x01;
    const r = readRecord(layout, card.main);
    expect(r.ok && r.value.areas.purchase).toMatchObject({ checksumOk: false, backupMatches: false, backupChecksumOk: true });
  });

  it('encodeArea keeps reserved bytes and refuses a field of another area', () => {
    const card = cards.ours(layout, { meterNumber: '000012345678' });
    card.main[0x4e] = 0x99;
    const r = encodeArea(layout, 'purchase', card.main, { purchaseCount: 1 });
    expect(r.ok && r.value.data[0x0e]).toBe(0x99);
    expect(encodeArea(layout, 'purchase', card.main, { meterNumber: '1' })).toMatchObject({ ok: false });
  });
});

describe('card layout and encoder profile validation (file:line errors)', () => {
  const file = '/layouts/sle4442-dorm.yaml';
  const text = readFileSync(loadCardLayout('sle4442-dorm').source, 'utf8');
  const lineOf = (needle: string) => text.split('\n').findIndex((l) => l.includes(needle)) + 1;
  const issuesOf = (t: string, f = file) => {
    const r = parseCardLayout(t, f);
    expect(r.ok).toBe(false);
    return r.ok ? [] : r.issues;
  };

  it('the shipped layout and encoder profiles load', () => {
    expect(parseCardLayout(text, file).ok).toBe(true);
    expect(loadEncoderProfile('star-st102').framing).toBe('star');
    expect(loadEncoderProfile('generic-stx').capabilities.eject).toBe(true);
  });

  it('overlapping fields are one error on the later field, naming both, at its line', () => {
    const issues = issuesOf(text.replace('customerNumber:  { offset: 0x2B', 'customerNumber:  { offset: 0x2A'));
    expect(issues).toHaveLength(1);
    expect(issues[0]).toMatchObject({ file, line: lineOf('customerNumber:  {'), path: 'fields.customerNumber.offset' });
    expect(issues[0]!.message).toMatch(/overlaps meterNumber/);
  });

  it('a field outside its area, a wrong format, a missing required field', () => {
    expect(issuesOf(text.replace('purchaseCount:   { offset: 0x41', 'purchaseCount:   { offset: 0x61'))[0]!.message).toMatch(
      /not inside the purchase area/,
    );
    expect(
      issuesOf(
        text.replace(
          'meterNumber:     { offset: 0x25, length: 6, format: bcd',
          'meterNumber:     { offset: 0x25, length: 6, format: ascii',
        ),
      )[0]!.message,
    ).toMatch(/meterNumber is bcd/);
    const missing = issuesOf(text.replace(/^ {2}purchaseAmount:.*$/m, ''));
    expect(missing[0]!.message).toMatch(/missing field purchaseAmount/);
  });

  it('the parameter area is data: its fields are required with it, must lie inside it, and the layout works without it', () => {
    const missing = issuesOf(text.replace(/^ {2}paramHoarding:.*$/m, ''));
    expect(missing[0]!.message).toBe('missing field paramHoarding (in the parameter area)');
    const outside = issuesOf(text.replace('paramAlarm2:     { offset: 0x98', 'paramAlarm2:     { offset: 0xB0'));
    expect(outside[0]).toMatchObject({ line: lineOf('paramAlarm2:'), path: 'fields.paramAlarm2.offset' });
    expect(outside[0]!.message).toMatch(/not inside the parameter area/);
    const without = text.replace(/^ {2}parameter: +#.*\n {4}from: 0x90[\s\S]*?at: 0xAF \}\n/m, '').replace(/^ {2}param[A-Z]\w*:.*\n/gm, '');
    expect(parseCardLayout(without, file)).toMatchObject({ ok: true, layout: { hasParameters: false } });
    expect(parseCardLayout(text, file)).toMatchObject({ ok: true, layout: { hasParameters: true } });
  });

  it('an area the station rewrites may not sit in the protectable bytes 00H–1FH', () => {
    const issues = issuesOf(
      text
        .replace('    from: 0x60\n    to: 0x7E', '    from: 0x10\n    to: 0x1E')
        .replace('checksum: { kind: xor8, at: 0x7F }', 'checksum: { kind: xor8, at: 0x1F }'),
    );
    expect(issues.some((i) => /write-protected for good/.test(i.message))).toBe(true);
  });

  it('an unquoted PSC, a valid flag of FFH, and an unknown key are each named', () => {
    expect(issuesOf(text.replace('psc: "FFFFFF"', 'psc: 123456'))[0]).toMatchObject({ path: 'psc', line: lineOf('psc: "FFFFFF"') });
    expect(issuesOf(text.replace('set: 0xA5', 'set: 0xFF'))[0]!.message).toMatch(/blank card look valid/);
    expect(issuesOf(text.replace('amountUnit: 0.01kWh', 'amountUnit: 0.01kWh\ncolour: blue'))[0]).toMatchObject({
      path: 'colour',
      message: 'unknown field "colour"',
    });
  });

  it('the id must equal the file name', () => {
    expect(issuesOf(text, '/layouts/other.yaml')[0]).toMatchObject({ path: 'id' });
  });

  it('an encoder profile with a chunk too large for its framing, or STAR claiming reader info, is refused with the line', () => {
    const star = readFileSync(loadEncoderProfile('star-st102').source, 'utf8');
    const r = parseEncoderProfile(
      star.replace('chunkBytes: 64', 'chunkBytes: 300').replace('readerInfo: false', 'readerInfo: true'),
      '/enc/star-st102.yaml',
    );
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.issues.map((i) => i.path)).toEqual(['chunkBytes', 'capabilities.readerInfo']);
    expect(r.issues[0]!.line).toBe(star.split('\n').findIndex((l) => l.startsWith('chunkBytes')) + 1);
  });
});
