import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  decodeFrame,
  decodeIdentityReply,
  decodeIdentityRequest,
  decodeLoadPayload,
  encodeFrame,
  encodeIdentityReply,
  encodeIdentityRequest,
  encodeLoadPayload,
  fromHex,
  meterDiversifier,
  RECHARGE_DI,
  securityAuth,
  toHex,
  type LoadPayload,
} from '../../protocols/dlt645/index.js';

// The worked example of docs/reference/prepaid.md § Worked recharge frame: a recharge to meter 000000000001, operator
// 00000000, 10000 fen, count 6, placeholder MACs 11223344 / 55667788, customer number 1.
const WORKED_FRAME =
  '68 01 00 00 00 00 00 68 03 1E 32 35 34 3A 33 33 33 33 43 5A 33 33 39 33 33 33 44 55 66 77 34 33 33 33 33 33 88 99 AA BB 97 16';
const worked: LoadPayload = {
  operator: '00000000',
  amount: 10_000,
  purchaseCount: 6,
  mac1: fromHex('11223344')!,
  customerNo: '000000000001',
  mac2: fromHex('55667788')!,
};

describe('0x03 load payload (070101FF / 070102FF)', () => {
  it('lays out the worked example byte for byte, and the whole frame matches the reference', () => {
    const p = encodeLoadPayload(worked);
    expect(p.ok).toBe(true);
    if (!p.ok) return;
    expect(toHex(p.value)).toBe('00000000' + '10270000' + '06000000' + '11223344' + '010000000000' + '55667788');
    expect(toHex(encodeFrame(securityAuth('000000000001', RECHARGE_DI, p.value)))).toBe(WORKED_FRAME.replace(/ /g, ''));
  });

  it('reads the worked example back from the frame on the wire', () => {
    const f = decodeFrame(fromHex(WORKED_FRAME)!);
    expect(f.ok).toBe(true);
    if (!f.ok) return;
    const d = decodeLoadPayload(f.value.frame.data.subarray(4));
    expect(d).toEqual({ ok: true, value: worked });
  });

  it('round-trips every operator, 32-bit amount and count, customer number and MAC', () => {
    const payload = fc.record({
      operator: fc.uint8Array({ minLength: 4, maxLength: 4 }).map(toHex),
      amount: fc.integer({ min: 0, max: 0xffffffff }),
      purchaseCount: fc.integer({ min: 0, max: 0xffffffff }),
      mac1: fc.uint8Array({ minLength: 4, maxLength: 4 }),
      customerNo: fc.stringMatching(/^\d{12}$/),
      mac2: fc.uint8Array({ minLength: 4, maxLength: 4 }),
    });
    fc.assert(
      fc.property(payload, (p) => {
        const e = encodeLoadPayload(p);
        expect(e.ok).toBe(true);
        if (e.ok) expect(decodeLoadPayload(e.value)).toEqual({ ok: true, value: p });
      }),
    );
  });

  it('pads a short customer number with leading zeros, as the meter stores it', () => {
    const e = encodeLoadPayload({ ...worked, customerNo: '1' });
    expect(e.ok && decodeLoadPayload(e.value)).toMatchObject({ ok: true, value: { customerNo: '000000000001' } });
  });

  it('refuses what does not fit instead of wrapping it', () => {
    expect(encodeLoadPayload({ ...worked, amount: 2 ** 32 })).toMatchObject({ ok: false, error: { code: 'DLT645_VALUE_RANGE' } });
    expect(encodeLoadPayload({ ...worked, amount: 1.5 })).toMatchObject({ ok: false, error: { code: 'DLT645_VALUE_RANGE' } });
    expect(encodeLoadPayload({ ...worked, purchaseCount: -1 })).toMatchObject({ ok: false, error: { code: 'DLT645_VALUE_RANGE' } });
    expect(encodeLoadPayload({ ...worked, customerNo: '1234567890123' })).toMatchObject({
      ok: false,
      error: { code: 'DLT645_VALUE_RANGE' },
    });
    expect(encodeLoadPayload({ ...worked, customerNo: '12a' })).toMatchObject({ ok: false });
    expect(encodeLoadPayload({ ...worked, operator: '0000' })).toMatchObject({ ok: false, error: { code: 'DLT645_BAD_OPERATOR' } });
    expect(encodeLoadPayload({ ...worked, mac1: new Uint8Array(3) })).toMatchObject({ ok: false, error: { code: 'DLT645_VALUE_RANGE' } });
  });

  it('refuses a payload of the wrong length or a customer number that is not BCD', () => {
    expect(decodeLoadPayload(new Uint8Array(25))).toMatchObject({ ok: false, error: { code: 'DLT645_SHORT_DATA' } });
    expect(decodeLoadPayload(new Uint8Array(27))).toMatchObject({ ok: false, error: { code: 'DLT645_SHORT_DATA' } });
    const bad = encodeLoadPayload(worked);
    if (!bad.ok) throw new Error('worked example');
    bad.value[16] = 0x1a;
    expect(decodeLoadPayload(bad.value)).toMatchObject({ ok: false, error: { code: 'DLT645_NOT_BCD' } });
  });
});

describe('0x03 identity authentication (070000FF)', () => {
  it('derives the diversifier from the meter number: 00 00 + the address as on the wire', () => {
    expect(toHex(meterDiversifier('123456789012'))).toBe('0000129078563412');
  });

  it('lays out operator, ciphertext1, random1 and diversifier in that order and reads them back', () => {
    const request = {
      operator: '0000000A',
      ciphertext: fromHex('0102030405060708')!,
      random1: fromHex('1112131415161718')!,
      diversifier: meterDiversifier('000000000001'),
    };
    const e = encodeIdentityRequest(request);
    expect(e.ok && toHex(e.value)).toBe('0A000000' + '0102030405060708' + '1112131415161718' + '0000010000000000');
    if (e.ok) expect(decodeIdentityRequest(e.value)).toEqual({ ok: true, value: request });
    expect(encodeIdentityRequest({ ...request, random1: new Uint8Array(7) })).toMatchObject({ ok: false });
    expect(decodeIdentityRequest(new Uint8Array(27))).toMatchObject({ ok: false, error: { code: 'DLT645_SHORT_DATA' } });
  });

  it('reads random2 and the ESAM serial from the reply, and refuses a short one', () => {
    const reply = { random2: fromHex('A1A2A3A4')!, esamSerial: fromHex('E55A010000000000')! };
    const e = encodeIdentityReply(reply);
    expect(e.ok && toHex(e.value)).toBe('A1A2A3A4E55A010000000000');
    if (e.ok) expect(decodeIdentityReply(e.value)).toEqual({ ok: true, value: reply });
    expect(decodeIdentityReply(new Uint8Array(11))).toMatchObject({ ok: false, error: { code: 'DLT645_SHORT_DATA' } });
  });
});
