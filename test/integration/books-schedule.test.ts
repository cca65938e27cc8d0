import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock, type Timers } from '../../src/clock.js';
import { BOOKS_TICK_MS, BooksPublisher } from '../../src/services/books/index.js';
import { LedgerCardSales } from '../../src/cards/index.js';
import { openStore, type Store } from '../../src/store/index.js';

// The publisher's schedule under wall-clock steps: a board that boots at 1970 (no RTC), gets NTP, is stepped back
// to 1970 and forward again. Time moves only when the test says so: the wall clock is a ManualClock, the monotonic
// timers are the test's own.

const TZ = 'Asia/Shanghai';
const local = (date: string, hhmm: string) => Date.parse(`${date}T${hhmm}:00+08:00`);
const BOOT = Date.UTC(1970, 0, 1, 0, 0, 42);

/** One-shot timers the test fires by hand; `fire()` runs the armed one and says how long it was armed for. */
class HandTimers implements Timers {
  armed: { fn: () => void; ms: number } | undefined;
  private mono = 0;
  now(): number {
    return this.mono;
  }
  setTimeout(fn: () => void, ms: number): unknown {
    expect(this.armed).toBeUndefined(); // the publisher keeps one timer, never a growing pile
    this.armed = { fn, ms };
    return this.armed;
  }
  clearTimeout(handle: unknown): void {
    if (handle === this.armed) this.armed = undefined;
  }
  fire(): number {
    const t = this.armed!;
    this.armed = undefined;
    this.mono += t.ms;
    t.fn();
    return t.ms;
  }
}

let store: Store;
let clock: ManualClock;
let timers: HandTimers;
let lines: Record<string, unknown>[];
let publisher: BooksPublisher;

const reports = () => store.outbox.peek({ limit: 100 }).filter((m) => m.class === 'report');
const periods = () => reports().map((m) => JSON.parse(m.payload).period as string);
const logged = (level: number) => lines.filter((l) => l.level === level).map((l) => l.msg);

beforeEach(async () => {
  clock = new ManualClock(local('2026-11-26', '09:00'));
  store = openStore({ path: join(mkdtempSync(join(tmpdir(), 'meterd-books-sched-')), 'meterd.db'), clock });
  // A card sale on 2026-11-26, so that day's report has something in it.
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
  lines = [];
  timers = new HandTimers();
  publisher = new BooksPublisher({
    store,
    clock,
    timers,
    gateway: { id: 'gw-sched', timeZone: TZ },
    meters: [{ id: 'room-102', address: '000000000102' }],
    logger: pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l)) }),
  });
});
afterEach(() => {
  publisher.stop();
  store.close();
});

describe('the books publisher follows the wall clock on a monotonic tick', () => {
  it('at 1970 (no RTC) publishes nothing and warns once; after NTP it catches up; a step back to 1970 warns once more', () => {
    clock.set(BOOT);
    publisher.start();
    for (let i = 0; i < 5; i++) {
      expect(timers.fire()).toBeLessThanOrEqual(BOOKS_TICK_MS);
      clock.advance(BOOKS_TICK_MS);
    }
    expect(reports()).toEqual([]);
    expect(logged(40)).toEqual([
      "the wall clock is before the gateway's first date (not set yet?): no daily report is published until it is",
    ]);
    expect(logged(50)).toEqual([]); // no BOOKS_PERIOD_INVALID on every try

    // NTP steps the clock to 2026-11-27 03:00: the next tick (at most a minute later) publishes the closed day.
    clock.set(local('2026-11-27', '03:00'));
    timers.fire();
    expect(periods()).toEqual(['2026-11-26']);
    expect(logged(30)).toContain('the wall clock is set: daily reports resume');

    // Stepped back to 1970 (a bad NTP answer, an operator): nothing published, one more warning, not one per tick.
    clock.set(BOOT);
    for (let i = 0; i < 3; i++) timers.fire();
    expect(periods()).toEqual(['2026-11-26']);
    expect(logged(40)).toHaveLength(2);
    expect(logged(50)).toEqual([]);
  });

  it('a day is published only once its close time (00:05) has passed, and each tick waits at most a minute', () => {
    clock.set(local('2026-11-26', '23:00'));
    publisher.start();
    expect(periods()).toEqual(['2026-11-25']);
    expect(timers.armed!.ms).toBe(BOOKS_TICK_MS);
    clock.set(local('2026-11-27', '00:03'));
    timers.fire();
    expect(periods()).toEqual(['2026-11-25']); // 2026-11-26 has ended, but late loads get until 00:05
    expect(timers.armed!.ms).toBe(BOOKS_TICK_MS);
    clock.set(local('2026-11-27', '00:04') + 30_000);
    timers.fire();
    expect(timers.armed!.ms).toBe(30_000); // wakes exactly at 00:05
    clock.advance(30_000);
    timers.fire();
    expect(periods()).toEqual(['2026-11-25', '2026-11-26']);
  });

  it('a forward step over several days catches up each missed day once; a step back publishes nothing again', () => {
    clock.set(local('2026-11-27', '03:00'));
    publisher.start();
    expect(periods()).toEqual(['2026-11-26']);
    clock.set(local('2026-11-30', '08:00'));
    timers.fire();
    expect(periods()).toEqual(['2026-11-26', '2026-11-27', '2026-11-28', '2026-11-29']);
    clock.set(local('2026-11-28', '08:00'));
    timers.fire();
    clock.set(local('2026-11-30', '09:00'));
    timers.fire();
    expect(periods()).toEqual(['2026-11-26', '2026-11-27', '2026-11-28', '2026-11-29']);
  });

  it('never publishes a day before the earliest date, even when the clock is past it', () => {
    const p = new BooksPublisher({
      store,
      clock,
      timers: new HandTimers(),
      gateway: { id: 'gw-sched', timeZone: TZ },
      meters: [],
      earliestDate: '2026-11-27',
    });
    clock.set(local('2026-11-27', '12:00'));
    expect(p.publishDue()).toEqual([]);
    clock.set(local('2026-11-29', '12:00'));
    expect(p.publishDue()).toEqual(['2026-11-28']);
    expect(() => new BooksPublisher({ store, clock, gateway: { id: 'g', timeZone: TZ }, meters: [], earliestDate: '2026-13-01' })).toThrow(
      'is not a date',
    );
  });

  it('stop() leaves no timer armed', () => {
    clock.set(local('2026-11-27', '03:00'));
    publisher.start();
    expect(timers.armed).toBeDefined();
    publisher.stop();
    expect(timers.armed).toBeUndefined();
  });
});
