import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { BooksError, BooksPublisher, DAILY_REPORT_TOPIC, schedule } from '../../src/services/books/index.js';
import { LedgerCardSales } from '../../src/cards/index.js';
import { openStore, type Store } from '../../src/store/index.js';

const TZ = 'Asia/Shanghai';
const local = (date: string, hhmm: string) => Date.parse(`${date}T${hhmm}:00+08:00`);
const clock = new ManualClock(local('2026-11-26', '09:00'));
let path: string;
let store: Store;
let wakeUps: number;

function publisher(s: Store = store): BooksPublisher {
  return new BooksPublisher({
    store: s,
    clock,
    gateway: { id: 'gw-books', timeZone: TZ },
    meters: [{ id: 'room-102', address: '000000000102' }],
    onCommitted: () => wakeUps++,
  });
}

function reports(s: Store = store) {
  return s.outbox.peek({ limit: 100 }).filter((m) => m.class === 'report');
}

beforeEach(async () => {
  path = join(mkdtempSync(join(tmpdir(), 'meterd-books-pub-')), 'meterd.db');
  store = openStore({ path, clock });
  wakeUps = 0;
  clock.set(local('2026-11-26', '09:00'));
  await new LedgerCardSales(() => store).record({
    channel: 'card',
    meterNumber: '000000000102',
    purchaseCount: 4,
    amount: 20_000,
    unit: 'fen',
    operator: 'alice',
    encoder: 'star',
    layout: 'sle4442-dorm',
    at: new Date(clock.now()).toISOString(),
  });
});
afterEach(() => store.close());

describe('the daily report is published at day end, once per date', () => {
  it("enqueues the day's report JSON on reports/daily as a report message, and wakes the uplink", () => {
    clock.set(local('2026-11-27', '00:05'));
    expect(publisher().publishDay('2026-11-26')).toEqual({ date: '2026-11-26', published: true, publishedAt: clock.now() });
    const [message, ...rest] = reports();
    expect(rest).toEqual([]);
    expect(message).toMatchObject({ topic: DAILY_REPORT_TOPIC, class: 'report', qos: 1, retain: false });
    expect(DAILY_REPORT_TOPIC).toBe('reports/daily');
    const payload = JSON.parse(message!.payload);
    expect(payload).toMatchObject({ report: 'daily', period: '2026-11-26', gateway: 'gw-books', asOf: '2026-11-26T16:05:00.000Z' });
    expect(payload.totals[0]).toMatchObject({ unit: 'money', loads: { count: 1, amount: 20_000, text: '200.00 CNY' } });
    expect(wakeUps).toBe(1);
  });

  it('publishing the same date again, or after a restart, enqueues nothing', () => {
    clock.set(local('2026-11-27', '00:05'));
    publisher().publishDay('2026-11-26');
    clock.advance(60_000);
    expect(publisher().publishDay('2026-11-26')).toMatchObject({ published: false, publishedAt: local('2026-11-27', '00:05') });
    store.close();
    store = openStore({ path, clock });
    expect(publisher().publishDay('2026-11-26').published).toBe(false);
    expect(reports()).toHaveLength(1);
    expect(wakeUps).toBe(1);
  });

  it('also after the uplink delivered it: the date, not the outbox row, remembers the publication', () => {
    clock.set(local('2026-11-27', '00:05'));
    publisher().publishDay('2026-11-26');
    store.outbox.ack(reports()[0]!.id);
    expect(publisher().publishDay('2026-11-26').published).toBe(false);
    expect(reports()).toEqual([]);
  });

  it("refuses to publish a day that has not ended in the gateway's time zone", () => {
    clock.set(local('2026-11-26', '23:59'));
    expect(() => publisher().publishDay('2026-11-26')).toThrow(BooksError);
    expect(() => publisher().publishDay('2026-11-26')).toThrow(
      '2026-11-26 has not ended yet in Asia/Shanghai (it ends at 2026-11-27 00:00)',
    );
    expect(reports()).toEqual([]);
  });

  it('publishDue catches up on every closed day since the last one published, each once', () => {
    clock.set(local('2026-11-27', '00:05'));
    expect(publisher().publishDue()).toEqual(['2026-11-26']);
    expect(publisher().publishDue()).toEqual([]);
    // The gateway was off for three days.
    clock.set(local('2026-11-30', '10:00'));
    expect(publisher().publishDue()).toEqual(['2026-11-27', '2026-11-28', '2026-11-29']);
    expect(reports().map((m) => JSON.parse(m.payload).period)).toEqual(['2026-11-26', '2026-11-27', '2026-11-28', '2026-11-29']);
  });

  it('a gateway that never published starts with yesterday; a long outage catches up at most catchUpDays', () => {
    clock.set(local('2026-11-27', '12:00'));
    expect(publisher().publishDue()).toEqual(['2026-11-26']);
    clock.set(local('2026-12-20', '12:00'));
    const p = new BooksPublisher({ store, clock, gateway: { id: 'gw', timeZone: TZ }, meters: [], catchUpDays: 3 });
    expect(p.publishDue()).toEqual(['2026-12-17', '2026-12-18', '2026-12-19']);
  });

  it('start() catches up at once; stop() leaves no timer behind', () => {
    clock.set(local('2026-11-27', '03:00'));
    const p = publisher();
    p.start();
    p.stop();
    expect(reports().map((m) => JSON.parse(m.payload).period)).toEqual(['2026-11-26']);
  });

  it('schedule: the next local 00:05 and the day that closes then', () => {
    clock.set(local('2026-11-26', '15:00'));
    expect(schedule(clock, TZ)).toEqual({ at: local('2026-11-27', '00:05'), date: '2026-11-26' });
    clock.set(local('2026-11-27', '00:04'));
    expect(schedule(clock, TZ)).toEqual({ at: local('2026-11-27', '00:05'), date: '2026-11-26' });
    clock.set(local('2026-11-27', '00:05'));
    expect(schedule(clock, TZ)).toEqual({ at: local('2026-11-28', '00:05'), date: '2026-11-27' });
    expect(schedule(clock, TZ, '00:30')).toEqual({ at: local('2026-11-27', '00:30'), date: '2026-11-26' });
  });
});
