import { realTimers, type Clock, type Timers } from '../../clock.js';
import { silentLogger, type Logger } from '../../log.js';
import { enqueue, lastPublishedPeriod, markReportPublished, reportPublishedAt, type Tx } from '../../store/index.js';
import { nextLocalTime } from '../schedule.js';
import { addDays, BooksError, localDate, localDateTime, parseBooksDate, periodBounds } from './periods.js';
import { Books, reportJson, type BooksOptions, type BooksReport } from './report.js';

// Publishing each closed day's report once, at a local time after the day ends, through the outbox.

/** Topic (under the gateway's prefix) of the daily report. */
export const DAILY_REPORT_TOPIC = 'reports/daily';
/** Local time at which a day is closed and published: a few minutes after midnight, once late loads have settled. */
export const DAY_CLOSE_TIME = '00:05';
/**
 * No gateway of this software started before this local date: a wall clock showing an earlier one (1970 on a board
 * without a battery-backed clock, before NTP) is not set yet, and its "yesterday" is not a day to publish.
 */
export const EARLIEST_BOOKS_DATE = '2026-01-01';
/** The longest the publisher sleeps: a wall-clock step (NTP, an operator) is followed within this. */
export const BOOKS_TICK_MS = 60_000;

/**
 * When the next day closes: the next local `closeAt` (00:05) after now, and the date that closes then (the day
 * before it).
 */
export function schedule(clock: Clock, timeZone: string, closeAt: string = DAY_CLOSE_TIME): { at: number; date: string } {
  const at = nextLocalTime(clock.now(), closeAt, timeZone);
  return { at, date: addDays(localDate(at, timeZone), -1) };
}

export interface BooksPublisherOptions extends BooksOptions {
  readonly logger?: Logger;
  /** Wakes the uplink after a report was enqueued. */
  readonly onCommitted?: () => void;
  /** Local time a day is published after its end. Default 00:05. */
  readonly closeAt?: string;
  /** How many closed days back a start catches up on when days were missed (the daemon was down). Default 7. */
  readonly catchUpDays?: number;
  /**
   * The gateway's first local date: no day before it is published, and a wall clock before it is taken as not set.
   * Default EARLIEST_BOOKS_DATE (the store does not record a first start).
   */
  readonly earliestDate?: string;
  /** Paces the ticks on a monotonic clock; default Node's timers. */
  readonly timers?: Timers;
  /** Sees each day's report inside the transaction that publishes it (the purchase-mismatch alert). */
  readonly onDayReport?: (tx: Tx, report: BooksReport) => void;
}

export interface PublishResult {
  readonly date: string;
  /** False when the date had been published before: nothing was enqueued this time. */
  readonly published: boolean;
  readonly publishedAt: number;
}

/**
 * Publishes each closed day's report on `reports/daily` (class `report`, durable) exactly once per date: the report,
 * its outbox message and the record that the date is published commit in one transaction.
 *
 * It wakes on a monotonic timer at least every BOOKS_TICK_MS and asks the wall clock which day is due, so a clock
 * stepped forward or back is followed within a minute instead of a timer armed for the old time. While the wall
 * clock is before the gateway's earliest date it publishes nothing and says so once.
 *
 * ```ts
 * const publisher = new BooksPublisher({ store, clock, gateway: config.gateway, meters: config.meters, onCommitted: () => drain.notify() });
 * publisher.start(); // catches up on missed days now, then publishes every day at 00:05 local
 * // … on shutdown
 * publisher.stop();
 * ```
 */
export class BooksPublisher {
  private readonly books: Books;
  private readonly log: Logger;
  private readonly timers: Timers;
  private readonly earliestDate: string;
  private timer: unknown;
  private running = false;
  /** True while the wall clock is before the earliest date: logged once per such stretch. */
  private clockBeforeStart = false;
  /** The message of the last failure, so a failure that repeats every tick is logged once. */
  private lastFailure: string | undefined;

  constructor(private readonly opts: BooksPublisherOptions) {
    this.books = new Books(opts);
    this.log = (opts.logger ?? silentLogger).child({ component: 'books' });
    this.timers = opts.timers ?? realTimers;
    this.earliestDate = parseBooksDate(opts.earliestDate ?? EARLIEST_BOOKS_DATE);
  }

  /** Enqueue the daily report of a closed day, once: a date published before is left alone. */
  publishDay(date: string): PublishResult {
    parseBooksDate(date);
    const tz = this.opts.gateway.timeZone;
    const { until } = periodBounds({ kind: 'daily', date }, tz);
    const now = this.opts.clock.now();
    if (now < until)
      throw new BooksError(
        'BOOKS_DAY_OPEN',
        `${date} has not ended yet in ${tz} (it ends at ${localDateTime(until, tz)}); a day is published once, after it closes`,
      );
    const result = this.opts.store.transaction(
      (tx) => {
        const before = reportPublishedAt(tx, 'daily', date);
        if (before !== null) return { date, published: false, publishedAt: before };
        const report = this.books.reportIn(tx, { kind: 'daily', date });
        const { id } = enqueue(tx, { topic: DAILY_REPORT_TOPIC, class: 'report', payload: reportJson(report) });
        this.opts.onDayReport?.(tx, report);
        markReportPublished(tx, 'daily', date, id);
        return { date, published: true, publishedAt: now };
      },
      { durable: true },
    );
    if (result.published) {
      this.log.info({ date }, 'daily report published');
      this.opts.onCommitted?.();
    }
    return result;
  }

  /**
   * Republishes the daily reports of `from..to` (the station's recall), each with `"recalled": true`, computed from the
   * books as they stand now. Days not closed yet, or before the gateway's first date, are returned as missing.
   */
  recallDays(from: string, to: string): { republished: string[]; missing: string[] } {
    parseBooksDate(from);
    parseBooksDate(to);
    const tz = this.opts.gateway.timeZone;
    const today = localDate(this.opts.clock.now(), tz);
    const republished: string[] = [];
    const missing: string[] = [];
    this.opts.store.transaction(
      (tx) => {
        for (let date = from; date <= to; date = addDays(date, 1)) {
          if (date >= today || date < this.earliestDate) {
            missing.push(date);
            continue;
          }
          const report = this.books.reportIn(tx, { kind: 'daily', date });
          enqueue(tx, { topic: DAILY_REPORT_TOPIC, class: 'report', payload: { ...reportJson(report), recalled: true } });
          republished.push(date);
        }
      },
      { durable: true },
    );
    if (republished.length > 0) this.opts.onCommitted?.();
    return { republished, missing };
  }

  /**
   * Publish every closed day not published yet: from the day after the last published one (at most `catchUpDays`
   * back; only yesterday on a gateway that never published; never before the earliest date) up to `upTo` (default
   * yesterday). Returns the dates published now.
   */
  publishDue(upTo?: string): string[] {
    const tz = this.opts.gateway.timeZone;
    const yesterday = addDays(localDate(this.opts.clock.now(), tz), -1);
    const last = upTo ?? yesterday;
    if (last < this.earliestDate) return [];
    const published = this.opts.store.transaction((tx) => lastPublishedPeriod(tx, 'daily'));
    let earliest = addDays(yesterday, 1 - (this.opts.catchUpDays ?? 7));
    if (earliest < this.earliestDate) earliest = this.earliestDate;
    let date = published === null ? yesterday : addDays(published, 1);
    if (date < earliest) date = earliest;
    const out: string[] = [];
    for (; date <= last; date = addDays(date, 1)) if (this.publishDay(date).published) out.push(date);
    return out;
  }

  /** Catch up now, then publish each day at `closeAt` local time until stop(). */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.tick();
  }

  stop(): void {
    this.running = false;
    if (this.timer !== undefined) this.timers.clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Publish what is due by the wall clock now, then sleep until the next close or BOOKS_TICK_MS, whichever is sooner. */
  private tick(): void {
    this.timer = undefined;
    if (!this.running) return;
    const tz = this.opts.gateway.timeZone;
    const now = this.opts.clock.now();
    let wait = BOOKS_TICK_MS;
    if (localDate(now, tz) < this.earliestDate) {
      if (!this.clockBeforeStart)
        this.log.warn(
          { wallClock: new Date(now).toISOString(), earliestDate: this.earliestDate },
          "the wall clock is before the gateway's first date (not set yet?): no daily report is published until it is",
        );
      this.clockBeforeStart = true;
    } else {
      if (this.clockBeforeStart) this.log.info({ wallClock: new Date(now).toISOString() }, 'the wall clock is set: daily reports resume');
      this.clockBeforeStart = false;
      const next = schedule(this.opts.clock, tz, this.opts.closeAt);
      try {
        // The day closing at the next close time is not due yet; every day before it is.
        this.publishDue(addDays(next.date, -1));
        this.lastFailure = undefined;
      } catch (err) {
        const message = (err as Error).message;
        if (message !== this.lastFailure) this.log.error({ err }, 'daily report could not be published; will try again');
        this.lastFailure = message;
      }
      wait = Math.min(Math.max(0, next.at - now), BOOKS_TICK_MS);
    }
    this.timer = this.timers.setTimeout(() => this.tick(), wait);
    (this.timer as { unref?: () => void }).unref?.();
  }
}
