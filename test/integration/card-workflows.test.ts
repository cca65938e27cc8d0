import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { readRecord } from '../../protocols/card/index.js';
import {
  makeCheckCard,
  makeClearCard,
  readCard,
  reissueCard,
  sellCard,
  writePurchase,
  type CardSale,
  type SaleRecorder,
} from '../../src/cards/index.js';
import { ManualClock } from '../../src/clock.js';
import { CardError, SerialCardEncoder, type CardEncoder } from '../../src/devices/card-encoder/index.js';
import { loadCardLayout } from '../../src/profiles/card-layout.js';
import { loadEncoderProfile } from '../../src/profiles/encoder-profile.js';
import { cards, insertIntoMeter, SimulatedEncoder, type VirtualSle4442 } from '../../src/sim/encoder/index.js';
import { createPtyPair, type PtyPair } from '../helpers/pty.js';

/** The books as far as a card sale is concerned: an array of what was recorded (a test double of our own interface). */
class RecordedSales implements SaleRecorder {
  readonly sales: CardSale[] = [];
  async record(sale: CardSale): Promise<void> {
    this.sales.push(sale);
  }
}

const layout = loadCardLayout('sle4442-dorm');
const PSC = layout.psc;
const METER = '000012345678';
const OTHER_METER = '000012345679';

async function failure(p: Promise<unknown>): Promise<CardError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CardError);
  return err as CardError;
}

/** A customer's card whose last purchase (count) the meter has loaded. */
const loadedCard = (count = 4) =>
  cards.ours(layout, {
    meterNumber: METER,
    customerNumber: '000000000042',
    cardSerial: 9,
    purchaseCount: count,
    purchaseAmount: 1000,
    writeBack: { balance: 350, purchaseCount: count, events: 0b10 },
  });

describe.each(['star', 'stx'] as const)('card workflows against the simulated %s encoder over a pty pair', (family) => {
  let pty: PtyPair;
  let sim: SimulatedEncoder;
  let encoder: CardEncoder;
  let books: RecordedSales;
  const clock = new ManualClock(Date.UTC(2025, 2, 1, 9, 0, 0));

  beforeAll(async () => {
    pty = await createPtyPair();
    sim = new SimulatedEncoder({ framing: family });
    await sim.attach(pty.b);
    const profile = loadEncoderProfile(family === 'star' ? 'star-st102' : 'generic-stx');
    encoder = new SerialCardEncoder({ id: 'counter1', port: pty.a, profile: { ...profile, replyTimeoutMs: 300, writeTimeoutMs: 300 } });
    await encoder.open();
  });
  afterAll(async () => {
    await encoder?.close();
    await sim?.close();
    await pty?.close();
  });
  beforeEach(() => {
    books = new RecordedSales();
  });
  afterEach(() => {
    sim.remove();
  });

  const sell = (booksCount: number, amount = 2000, extra: { forcePsc?: boolean; psc?: Uint8Array } = {}) =>
    sellCard(
      encoder,
      layout,
      { meterNumber: METER, booksCount, amount, operator: 'alice', psc: extra.psc ?? PSC, ...(extra.forcePsc ? { forcePsc: true } : {}) },
      books,
      { clock },
    );

  it('card read shows role, numbers, the purchase on the card and the meter write-back', async () => {
    sim.insert(loadedCard(4));
    const card = await readCard(encoder, layout);
    expect(card).toMatchObject({
      kind: 'SLE4442',
      role: 'purchase',
      meterNumber: METER,
      customerNumber: '000000000042',
      cardSerial: 9,
      purchase: { count: 4, amount: 1000, unit: '0.01kWh' },
      writeBack: { balance: 350, purchaseCount: 4, events: ['low-balance'], time: '2025-03-01T08:30:00' },
      valid: true,
      problems: [],
      pscAttemptsLeft: 3,
    });
  });

  it('a foreign card and a blank card are NOT_OUR_CARD; a CPU card is WRONG_CARD_KIND; an empty slot NO_CARD', async () => {
    sim.insert(cards.foreign());
    expect(await failure(readCard(encoder, layout))).toMatchObject({
      code: 'NOT_OUR_CARD',
      message: expect.stringMatching(/another system/),
    });
    sim.insert(cards.blank());
    expect(await failure(readCard(encoder, layout))).toMatchObject({ code: 'NOT_OUR_CARD', message: expect.stringMatching(/blank/) });
    sim.insert(cards.cpu());
    expect((await failure(readCard(encoder, layout))).code).toBe('WRONG_CARD_KIND');
    sim.remove();
    expect((await failure(readCard(encoder, layout))).code).toBe('NO_CARD');
  });

  it('a sale writes count = books + 1 and the amount, verified, then records it once; the meter loads it and the next sale goes on', async () => {
    const vcard = loadedCard(4);
    sim.insert(vcard);
    const sale = await sell(4, 2000);
    expect(sale).toMatchObject({
      channel: 'card',
      meterNumber: METER,
      customerNumber: '000000000042',
      cardSerial: 9,
      purchaseCount: 5,
      amount: 2000,
      unit: '0.01kWh',
      operator: 'alice',
      encoder: 'counter1',
      at: '2025-03-01T09:00:00.000Z',
    });
    expect(books.sales).toEqual([sale]);
    const image = readRecord(layout, vcard.main);
    expect(image.ok && image.value).toMatchObject({
      validFlag: true,
      values: { purchaseCount: 5, purchaseAmount: 2000, role: layout.roles.purchase },
      areas: { purchase: { checksumOk: true, backupMatches: true } },
    });

    const meter = insertIntoMeter(vcard, layout, { meterNumber: METER, purchaseCount: 4, balance: 350 });
    expect(meter).toMatchObject({ outcome: 'loaded', meter: { purchaseCount: 5, balance: 2350 } });
    expect((await sell(5, 1000)).purchaseCount).toBe(6);
    expect(books.sales.map((s) => s.purchaseCount)).toEqual([5, 6]);
  });

  it('a second sale on top of a purchase not yet inserted is refused (PURCHASE_PENDING) and nothing is recorded or written', async () => {
    const vcard = loadedCard(4);
    sim.insert(vcard);
    await sell(4);
    const before = vcard.main.slice();
    const err = await failure(sell(5));
    expect(err.code).toBe('PURCHASE_PENDING');
    expect(books.sales).toHaveLength(1);
    expect(vcard.main).toEqual(before);
  });

  it("another meter's card is CARD_NOT_FOR_METER, not written, not recorded", async () => {
    const vcard = cards.ours(layout, {
      meterNumber: OTHER_METER,
      purchaseCount: 1,
      purchaseAmount: 500,
      writeBack: { balance: 0, purchaseCount: 1 },
    });
    sim.insert(vcard);
    expect((await failure(sell(1))).code).toBe('CARD_NOT_FOR_METER');
    expect(books.sales).toEqual([]);
  });

  it('a card pulled mid-write fails closed: CARD_REMOVED, not recorded, not valid for the meter; the sale can then be written again', async () => {
    const vcard = loadedCard(4);
    sim.insert(vcard);
    // Write 1 clears the valid flag; write 2 (the purchase data) is cut after 3 bytes.
    sim.removeDuringNextWrite({ skipWrites: 1, afterBytes: 3 });
    const err = await failure(sell(4, 2000));
    expect(err.code).toBe('CARD_REMOVED');
    expect(books.sales).toEqual([]);
    expect(vcard.main[layout.valid.at]).toBe(layout.valid.clear);
    expect(insertIntoMeter(vcard, layout, { meterNumber: METER, purchaseCount: 4, balance: 350 })).toMatchObject({
      outcome: 'rejected',
      reason: expect.stringMatching(/not valid/),
    });

    sim.insert(vcard);
    const seen = await readCard(encoder, layout);
    expect(seen.valid).toBe(false);
    expect(seen.problems.join(' ')).toMatch(/valid flag not set/);
    expect((await sell(4, 2000)).purchaseCount).toBe(5);
    expect(insertIntoMeter(vcard, layout, { meterNumber: METER, purchaseCount: 4, balance: 350 }).outcome).toBe('loaded');
  });

  it('a wrong PSC fails the sale with PSC_REJECTED after one presentation; nothing is recorded', async () => {
    const vcard = loadedCard(4);
    sim.insert(vcard);
    const err = await failure(sell(4, 2000, { psc: Uint8Array.of(1, 2, 3) }));
    expect(err).toMatchObject({ code: 'PSC_REJECTED', attemptsLeft: 2 });
    expect(vcard.presentations).toBe(1);
    expect(books.sales).toEqual([]);
  });

  it('a card with 2 PSC attempts left is not sold on without --force; with it the sale goes through', async () => {
    const vcard = loadedCard(4);
    vcard.setErrorCounter(0b110);
    sim.insert(vcard);
    expect((await failure(sell(4))).code).toBe('PSC_ATTEMPTS_LOW');
    expect(vcard.presentations).toBe(0);
    expect((await sell(4, 2000, { forcePsc: true })).purchaseCount).toBe(5);
  });

  it('when the books refuse the sale after the card was written, the cashier is told exactly what the card carries', async () => {
    sim.insert(loadedCard(4));
    const failing: SaleRecorder = { record: async () => Promise.reject(new Error('disk full')) };
    const err = await failure(
      sellCard(encoder, layout, { meterNumber: METER, booksCount: 4, amount: 2000, operator: 'alice', psc: PSC }, failing),
    );
    expect(err.code).toBe('SALE_NOT_RECORDED');
    expect(err.message).toMatch(/purchase 5 .*disk full/);
  });

  it('writePurchase refuses to write a card other than the one that was checked (CARD_SWAPPED)', async () => {
    sim.insert(loadedCard(4));
    const checked = await readCard(encoder, layout);
    const other = cards.ours(layout, {
      meterNumber: OTHER_METER,
      purchaseCount: 2,
      purchaseAmount: 100,
      writeBack: { balance: 0, purchaseCount: 2 },
    });
    sim.insert(other);
    await encoder.powerUp('SLE4442');
    const before = other.main.slice();
    expect(
      (await failure(writePurchase(encoder, layout, { count: 5, amount: 2000, role: 'purchase', psc: PSC, card: checked }))).code,
    ).toBe('CARD_SWAPPED');
    expect(other.main).toEqual(before);
  });

  it("reissue writes the books' last purchase again with the same count, as a replacement, and records nothing", async () => {
    // Purchase 5 was sold, then the card was damaged before the meter loaded it.
    const vcard = cards.ours(layout, {
      meterNumber: METER,
      purchaseCount: 5,
      purchaseAmount: 2000,
      writeBack: { balance: 350, purchaseCount: 4 },
      valid: false,
    });
    sim.insert(vcard);
    const r = await reissueCard(encoder, layout, { meterNumber: METER, lastSale: { count: 5, amount: 2000 }, psc: PSC });
    expect(r).toEqual({ count: 5, amount: 2000 });
    const card = await readCard(encoder, layout);
    expect(card).toMatchObject({ role: 'replacement', purchase: { count: 5, amount: 2000 }, valid: true });
    expect(insertIntoMeter(vcard, layout, { meterNumber: METER, purchaseCount: 4, balance: 350 })).toMatchObject({
      outcome: 'loaded',
      meter: { purchaseCount: 5 },
    });
    sim.insert(vcard);
    expect((await failure(reissueCard(encoder, layout, { meterNumber: METER, lastSale: { count: 5, amount: 2000 }, psc: PSC }))).code).toBe(
      'ALREADY_LOADED',
    );
  });

  it("a check card collects any meter's state; it is not made from a card that still carries a purchase", async () => {
    const pending = cards.ours(layout, {
      meterNumber: METER,
      purchaseCount: 5,
      purchaseAmount: 2000,
      writeBack: { balance: 350, purchaseCount: 4 },
    });
    sim.insert(pending);
    expect((await failure(makeCheckCard(encoder, layout, { psc: PSC, anyMeter: true }))).code).toBe('PURCHASE_PENDING');

    const vcard = loadedCard(4);
    sim.insert(vcard);
    const check = await makeCheckCard(encoder, layout, { psc: PSC, anyMeter: true });
    expect(check).toMatchObject({ role: 'check', meterNumber: '000000000000', valid: true });
    expect(check.writeBack).toBeUndefined();
    expect(insertIntoMeter(vcard, layout, { meterNumber: OTHER_METER, purchaseCount: 17, balance: 4200 }, { events: 0b1 }).outcome).toBe(
      'written-back',
    );
    sim.insert(vcard);
    expect((await readCard(encoder, layout)).writeBack).toMatchObject({ balance: 4200, purchaseCount: 17, events: ['relay-open'] });
  });

  it('a clear card needs confirmation; confirmed, it is bound to one meter and clears its balance there', async () => {
    const vcard = loadedCard(4);
    sim.insert(vcard);
    const before = vcard.main.slice();
    expect((await failure(makeClearCard(encoder, layout, { psc: PSC, meterNumber: OTHER_METER, confirm: false }))).code).toBe(
      'CONFIRMATION_REQUIRED',
    );
    expect(vcard.main).toEqual(before);
    const clear = await makeClearCard(encoder, layout, { psc: PSC, meterNumber: OTHER_METER, confirm: true });
    expect(clear).toMatchObject({ role: 'clear', meterNumber: OTHER_METER, valid: true });
    expect(insertIntoMeter(vcard, layout, { meterNumber: METER, purchaseCount: 4, balance: 350 }).outcome).toBe('rejected');
    expect(insertIntoMeter(vcard, layout, { meterNumber: OTHER_METER, purchaseCount: 9, balance: 999 })).toMatchObject({
      outcome: 'written-back',
      meter: { balance: 0 },
    });
  });

  it('a locked card cannot take a sale: CARD_LOCKED, nothing recorded', async () => {
    const vcard: VirtualSle4442 = loadedCard(4);
    sim.insert(vcard);
    sim.lock();
    expect((await failure(sell(4))).code).toBe('CARD_LOCKED');
    expect(books.sales).toEqual([]);
  });
});
