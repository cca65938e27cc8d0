import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { Books, type MeterReconciliation } from '../../src/services/books/index.js';
import { LedgerCardSales } from '../../src/cards/index.js';
import { insertReadings, openLedgerEntry, openStore, transitionLedger, type Store } from '../../src/store/index.js';

const TZ = 'Asia/Shanghai';
const local = (date: string, hhmm: string) => Date.parse(`${date}T${hhmm}:00+08:00`);
const clock = new ManualClock(local('2026-11-20', '08:00'));
const METERS = [
  { id: 'room-201', address: '000000000201' },
  { id: 'room-202', address: '000000000202' },
  { id: 'room-203', address: '000000000203' },
];
let store: Store;
let books: Books;
let cards: LedgerCardSales;

beforeEach(() => {
  store = openStore({ path: join(mkdtempSync(join(tmpdir(), 'meterd-books-rec-')), 'meterd.db'), clock });
  books = new Books({ store, clock, gateway: { id: 'gw', timeZone: TZ }, meters: METERS });
  cards = new LedgerCardSales(() => store);
});
afterEach(() => store.close());

function at(date: string, hhmm: string): void {
  clock.set(local(date, hhmm));
}

function counter(meterId: string, count: number): void {
  store.transaction((tx) =>
    insertReadings(tx, [
      {
        meterId,
        takenAt: clock.now(),
        values: { 'credit.purchase.count': { v: count, unit: '' }, 'credit.balance.money': { v: 12.5, unit: 'CNY' } },
      },
    ]),
  );
}

/** A poll that did not get the counter: it says nothing about purchases. */
function pollWithoutCounter(meterId: string): void {
  store.transaction((tx) =>
    insertReadings(tx, [
      {
        meterId,
        takenAt: clock.now(),
        values: { 'credit.purchase.count': { error: 'METER_TIMEOUT' }, 'energy.active.import': { v: 100, unit: 'kWh' } },
      },
    ]),
  );
}

function sellCard(meterNumber: string, purchaseCount: number, amount = 5_000): Promise<void> {
  return cards.record({
    channel: 'card',
    meterNumber,
    purchaseCount,
    amount,
    unit: 'fen',
    operator: 'alice',
    encoder: 'star',
    layout: 'sle4442-dorm',
    at: new Date(clock.now()).toISOString(),
  });
}

function daily(date: string): { byMeter: Record<string, MeterReconciliation>; status: (id: string) => string | undefined } {
  const r = books.report({ kind: 'daily', date });
  const byMeter = Object.fromEntries(r.reconciliation.map((m) => [m.meterId, m]));
  return { byMeter, status: (id) => byMeter[id]?.status };
}

describe("reconciliation: each active meter's purchase counter over the day against the loads applied in the books", () => {
  it('a card sale is confirmed once a later reading shows the counter at its count; before that it awaits insertion', async () => {
    at('2026-11-20', '07:00');
    counter('room-201', 3);
    at('2026-11-20', '10:00');
    await sellCard('000000000201', 4);
    at('2026-11-20', '22:00');
    counter('room-201', 3);

    const evening = books.report({ kind: 'daily', date: '2026-11-20' });
    expect(evening.totals[0]!.states.awaiting).toEqual({ count: 1, amount: 5_000 });
    expect(evening.unconfirmed.map((u) => u.reason)).toEqual([
      'card sold but not yet inserted: counter of room-201 at 3 on 2026-11-20 22:00, purchase 4 not reached',
    ]);
    expect(evening.reconciliation[0]).toMatchObject({
      meterId: 'room-201',
      counterDelta: 0,
      booksLoads: 1,
      difference: 1,
      status: 'difference',
    });
    expect(evening.reconciliation[0]!.findings.map((f) => f.kind)).toEqual(['card-not-inserted']);

    // The customer inserts the card next morning; the poller reads the counter at 4.
    at('2026-11-21', '08:10');
    counter('room-201', 4);
    const later = books.report({ kind: 'daily', date: '2026-11-20' });
    expect(later.totals[0]!.states).toMatchObject({ applied: { count: 1, amount: 5_000 }, awaiting: { count: 0, amount: 0 } });
    expect(later.unconfirmed).toEqual([]);
    // The 20th's counter did not move that day, and the list says so, and what happened since.
    expect(later.reconciliation[0]!.findings).toEqual([
      {
        kind: 'card-not-inserted',
        purchaseCount: 4,
        requestId: 'card-000000000201-4',
        meaning:
          'card sold but not yet inserted (purchase 4, card-000000000201-4): the counter was at 3 at the end of the period; reached the meter later (counter at 4 on 2026-11-21 08:10)',
      },
    ]);
    // The 21st: the counter moved with no sale that day, explained by the 20th's card.
    const next = daily('2026-11-21').byMeter['room-201']!;
    expect(next).toMatchObject({ opening: { count: 3 }, closing: { count: 4 }, counterDelta: 1, booksLoads: 0, difference: -1 });
    expect(next.findings).toEqual([
      {
        kind: 'earlier-load-confirmed',
        purchaseCount: 4,
        requestId: 'card-000000000201-4',
        meaning: 'card sold on 2026-11-20 (purchase 4, card-000000000201-4) reached the meter in this period',
      },
    ]);
    // Over the month the sale and its insertion meet: balanced.
    expect(books.report({ kind: 'monthly', month: '2026-11' }).reconciliation).toMatchObject([
      { meterId: 'room-201', counterDelta: 1, booksLoads: 1, status: 'balanced', findings: [] },
    ]);
  });

  it('a counter that moved more than the books is a load from outside this system', async () => {
    at('2026-11-20', '07:00');
    counter('room-202', 10);
    at('2026-11-20', '09:00');
    await sellCard('000000000202', 11);
    at('2026-11-20', '18:00');
    counter('room-202', 13);
    const m = daily('2026-11-20').byMeter['room-202']!;
    expect(m).toMatchObject({ counterDelta: 3, booksLoads: 1, difference: -2, status: 'difference' });
    expect(m.findings.map((f) => [f.kind, f.purchaseCount])).toEqual([
      ['outside-load', 12],
      ['outside-load', 13],
    ]);
    expect(m.findings[0]!.meaning).toBe(
      'load from outside this system: the counter reached 12 with no sale of that count in the books (another station, an old or test card)',
    );
  });

  it('a meter without loads that day is listed only when its counter moved', () => {
    at('2026-11-20', '07:00');
    counter('room-201', 5);
    counter('room-202', 8);
    at('2026-11-20', '19:00');
    counter('room-201', 5);
    counter('room-202', 9);
    const day = daily('2026-11-20');
    expect(Object.keys(day.byMeter)).toEqual(['room-202']);
    expect(day.byMeter['room-202']!.findings.map((f) => f.kind)).toEqual(['outside-load']);
  });

  it('a remote load the counter does not show is "load not confirmed"', () => {
    at('2026-11-20', '07:00');
    counter('room-203', 2);
    at('2026-11-20', '11:00');
    // Applied in the books without a read-back of its own, and the day's polls keep reading 2.
    store.transaction((tx) => {
      const { entry } = openLedgerEntry(tx, {
        requestId: 'station-77',
        channel: 'remote',
        meterId: 'room-203',
        unit: 'money',
        amount: 2_000,
        operator: 'carol',
        request: {},
      });
      transitionLedger(tx, entry.id, 'applied', { purchaseCount: 3 });
    });
    at('2026-11-20', '20:00');
    counter('room-203', 2);
    const m = daily('2026-11-20').byMeter['room-203']!;
    expect(m).toMatchObject({ counterDelta: 0, booksLoads: 1, difference: 1 });
    expect(m.findings).toEqual([
      {
        kind: 'load-not-confirmed',
        purchaseCount: 3,
        requestId: 'station-77',
        meaning: 'load not confirmed (purchase 3, station-77): the counter was at 2 at the end of the period',
      },
    ]);
  });

  it('no counter readings that day: not reconcilable, and polls that missed the counter do not count as readings', async () => {
    at('2026-11-19', '22:00');
    counter('room-201', 1);
    at('2026-11-20', '10:00');
    await sellCard('000000000201', 2);
    at('2026-11-20', '12:00');
    pollWithoutCounter('room-201');
    const m = daily('2026-11-20').byMeter['room-201']!;
    expect(m).toMatchObject({ status: 'not-reconcilable', counterDelta: null, difference: null, booksLoads: 1, closing: null });
    expect(m.findings).toEqual([
      { kind: 'no-readings', purchaseCount: null, requestId: null, meaning: 'not reconcilable (no counter readings)' },
    ]);
  });

  it('a card for a meter number not in the config stays awaiting confirmation, with the reason', async () => {
    at('2026-11-20', '10:00');
    await sellCard('000000009999', 1, 3_000);
    const r = books.report({ kind: 'daily', date: '2026-11-20' });
    expect(r.unconfirmed.map((u) => [u.status, u.reason])).toEqual([
      [
        'awaiting',
        "meter 000000009999 is not in the gateway's config: its purchase counter is never read, so the load cannot be confirmed",
      ],
    ]);
    expect(r.reconciliation).toEqual([
      {
        meterId: '000000009999',
        address: null,
        opening: null,
        closing: null,
        counterDelta: null,
        booksLoads: 1,
        difference: null,
        status: 'not-reconcilable',
        swaps: [],
        findings: [
          {
            kind: 'meter-not-configured',
            purchaseCount: null,
            requestId: null,
            meaning: "not reconcilable: meter 000000009999 is not in the gateway's config, its purchase counter is never read",
          },
        ],
      },
    ]);
  });

  it('a counter that went back (meter replaced) is not reconcilable rather than a negative load', () => {
    at('2026-11-20', '07:00');
    counter('room-202', 40);
    at('2026-11-20', '15:00');
    counter('room-202', 0);
    expect(daily('2026-11-20').byMeter['room-202']).toMatchObject({
      status: 'not-reconcilable',
      findings: [{ kind: 'counter-went-back', meaning: 'not reconcilable: the counter went back from 40 to 0 (meter replaced or reset)' }],
    });
  });

  it('the opening is the last counter known before the day, so a card inserted before the first poll still counts', async () => {
    at('2026-11-19', '23:00');
    counter('room-201', 6);
    at('2026-11-20', '00:20');
    await sellCard('000000000201', 7);
    // Inserted at 00:30; the first poll of the day with the counter is at 09:00.
    at('2026-11-20', '09:00');
    counter('room-201', 7);
    expect(daily('2026-11-20').byMeter['room-201']).toMatchObject({
      opening: { count: 6, source: 'reading' },
      closing: { count: 7 },
      counterDelta: 1,
      booksLoads: 1,
      difference: 0,
      status: 'balanced',
      findings: [],
    });
  });
});

describe("an allowance written to a meter's free-energy registers", () => {
  it('is in the books under allowances, confirmed by its read-back, and outside the purchase-counter reconciliation', () => {
    at('2026-11-20', '07:00');
    counter('room-202', 5);
    at('2026-11-20', '08:00');
    store.transaction((tx) => {
      const { entry } = openLedgerEntry(tx, {
        requestId: 'allowance dorm-free/t1/r1/room-202 #1',
        channel: 'allowance',
        meterId: 'room-202',
        unit: 'energy',
        amount: 3000,
        operator: 'system',
        request: { wallet: 'subsidy' },
      });
      const registers = [{ name: 'credit.free.energy', before: 150, target: 3150, consumedBefore: 50_000 }];
      transitionLedger(tx, entry.id, 'writing', { attempts: 1, subsidy: { registers } });
      transitionLedger(tx, entry.id, 'verifying', {});
      transitionLedger(tx, entry.id, 'applied', { subsidy: { registers: [{ ...registers[0]!, after: 3150 }] } });
    });
    at('2026-11-20', '22:00');
    counter('room-202', 5);

    const r = books.report({ kind: 'daily', date: '2026-11-20' });
    const energy = r.totals.find((t) => t.unit === 'energy')!;
    expect(energy.allowances).toEqual({ count: 1, amount: 3000 });
    expect(energy.cash.sales).toEqual({ count: 0, amount: 0 });
    expect(energy.states.applied).toEqual({ count: 1, amount: 3000 });
    expect(r.unconfirmed).toEqual([]);
    // The purchase counter did not move and the books have no purchase on it: nothing to reconcile, nothing to explain.
    expect(r.reconciliation.filter((m) => m.meterId === 'room-202')).toEqual([]);
  });
});
