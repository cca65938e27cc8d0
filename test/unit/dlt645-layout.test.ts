import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeLayout, encodeLayout, layoutSize } from '../../protocols/dlt645/index.js';

const layout = [
  { field: 'purchaseCount', format: 'NNNN' },
  { field: 'amount', format: 'XXXXXX.XX' },
  { field: 'customerNumber', format: 'digits(6)' },
];

describe('vendor write payload layouts', () => {
  it('encodes fields low byte first: count 12, 150.25 kWh (15025), customer 000000000042', () => {
    const r = encodeLayout(layout, { purchaseCount: 12, amount: 15025, customerNumber: '42' });
    expect(r.ok && Buffer.from(r.value).toString('hex')).toBe('1200' + '25500100' + '420000000000');
    expect(layoutSize(layout)).toEqual({ ok: true, value: 12 });
  });

  it('decodes what it encodes (property), including binary uint32le fields', () => {
    const withBinary = [...layout, { field: 'amountFen', format: 'uint32le' }];
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 9999 }),
        fc.integer({ min: 0, max: 99_999_999 }),
        fc.integer({ min: 0, max: 0xffffffff }),
        (count, amount, fen) => {
          const bytes = encodeLayout(withBinary, { purchaseCount: count, amount, customerNumber: '880000000001', amountFen: fen });
          expect(bytes.ok).toBe(true);
          if (bytes.ok)
            expect(decodeLayout(withBinary, bytes.value)).toEqual({
              ok: true,
              value: { purchaseCount: count, amount, customerNumber: '880000000001', amountFen: fen },
            });
        },
      ),
    );
  });

  it('refuses an unknown format, a value that does not fit, and a short payload, naming the field', () => {
    expect(encodeLayout([{ field: 'x', format: 'XQ' }], {})).toMatchObject({ ok: false, error: { message: /field x: unknown format/ } });
    expect(encodeLayout(layout, { purchaseCount: 10_000, amount: 1 })).toMatchObject({
      ok: false,
      error: { message: /field purchaseCount/ },
    });
    expect(decodeLayout(layout, new Uint8Array(5))).toMatchObject({ ok: false, error: { code: 'DLT645_SHORT_DATA' } });
  });
});
