import { describe, expect, it } from 'vitest';
import { prepareSale, type CardReading } from '../../src/cards/index.js';

const METER = '000012345678';

function card(over: Partial<CardReading> & { count?: number; meterCount?: number | null } = {}): CardReading {
  const { count = 4, meterCount = 4, ...rest } = over;
  return {
    kind: 'SLE4442',
    atr: 'A2131091',
    layout: 'sle4442-dorm',
    role: 'purchase',
    roleCode: 2,
    meterNumber: METER,
    purchase: { count, amount: 2000, unit: '0.01kWh' },
    ...(meterCount === null ? {} : { writeBack: { balance: 1500, purchaseCount: meterCount, events: [], time: '2025-03-01T08:30:00' } }),
    valid: true,
    identityOk: true,
    problems: [],
    pscAttemptsLeft: 3,
    memory: new Uint8Array(256),
    ...rest,
  };
}

describe('prepareSale: may this card take the next sale for this meter?', () => {
  it('the meter loaded the last purchase on the card: sell purchase books + 1', () => {
    expect(prepareSale(card({ count: 4, meterCount: 4 }), { meterNumber: METER, booksCount: 4 })).toEqual({ ok: true, count: 5 });
  });

  it('a newly opened card with no sale and no write-back takes purchase 1', () => {
    expect(prepareSale(card({ count: 0, meterCount: null, role: 'opening' }), { meterNumber: METER, booksCount: 0 })).toEqual({
      ok: true,
      count: 1,
    });
  });

  it("another meter's card: CARD_NOT_FOR_METER", () => {
    expect(prepareSale(card(), { meterNumber: '000012345679', booksCount: 4 })).toMatchObject({ ok: false, code: 'CARD_NOT_FOR_METER' });
  });

  it('card count = books count and the write-back shows the meter one behind: PURCHASE_PENDING (the purchase is still on the card)', () => {
    const r = prepareSale(card({ count: 4, meterCount: 3 }), { meterNumber: METER, booksCount: 4 });
    expect(r).toMatchObject({ ok: false, code: 'PURCHASE_PENDING' });
    expect(!r.ok && r.message).toMatch(/purchase 4 is still on the card.*meter is at 3/);
  });

  it('a sold card never inserted in the meter is PURCHASE_PENDING too', () => {
    expect(prepareSale(card({ count: 1, meterCount: null }), { meterNumber: METER, booksCount: 1 })).toMatchObject({
      ok: false,
      code: 'PURCHASE_PENDING',
    });
  });

  it('card ahead of the books, books ahead of the card, meter ahead of the books: CARD_COUNT_MISMATCH', () => {
    expect(prepareSale(card({ count: 5, meterCount: 4 }), { meterNumber: METER, booksCount: 4 })).toMatchObject({
      ok: false,
      code: 'CARD_COUNT_MISMATCH',
    });
    const behind = prepareSale(card({ count: 3, meterCount: 3 }), { meterNumber: METER, booksCount: 4 });
    expect(behind).toMatchObject({ ok: false, code: 'CARD_COUNT_MISMATCH' });
    expect(!behind.ok && behind.message).toMatch(/card reissue/);
    expect(prepareSale(card({ count: 6, meterCount: 6 }), { meterNumber: METER, booksCount: 4 })).toMatchObject({
      ok: false,
      code: 'CARD_COUNT_MISMATCH',
    });
  });

  it('an interrupted write (not valid) is sellable when the meter has everything the books have', () => {
    expect(prepareSale(card({ valid: false, count: 5, meterCount: 4 }), { meterNumber: METER, booksCount: 4 })).toEqual({
      ok: true,
      count: 5,
    });
  });

  it('a card that is not valid while the meter is behind the books needs a re-issue, not a sale', () => {
    expect(prepareSale(card({ valid: false, count: 0, meterCount: 3 }), { meterNumber: METER, booksCount: 4 })).toMatchObject({
      ok: false,
      code: 'PURCHASE_PENDING',
    });
  });

  it('a check or clear card takes no sale: WRONG_CARD_ROLE; a damaged identity: CARD_DAMAGED', () => {
    expect(prepareSale(card({ role: 'check' }), { meterNumber: METER, booksCount: 4 })).toMatchObject({
      ok: false,
      code: 'WRONG_CARD_ROLE',
    });
    expect(prepareSale(card({ identityOk: false }), { meterNumber: METER, booksCount: 4 })).toMatchObject({
      ok: false,
      code: 'CARD_DAMAGED',
    });
  });
});
