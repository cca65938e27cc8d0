import { MeterdError } from '../../errors.js';
import { localParts, zoneOffsetMs } from '../schedule.js';

// The gateway's local days and months: what a period of the books is, and where it starts and ends.

/** A local day ('2026-11-27') or month ('2026-11') in the gateway's time zone. */
export type BooksPeriod = { readonly kind: 'daily'; readonly date: string } | { readonly kind: 'monthly'; readonly month: string };

export type BooksErrorCode =
  /** A date or month that is not YYYY-MM-DD / YYYY-MM, or not on the calendar. */
  | 'BOOKS_PERIOD_INVALID'
  /** Publishing a day that has not ended yet in the gateway's time zone. */
  | 'BOOKS_DAY_OPEN';

export class BooksError extends MeterdError<BooksErrorCode> {
  override readonly name = 'BooksError';
}

/** Checks a 'YYYY-MM-DD' date; returns it unchanged. */
export function parseBooksDate(text: string): string {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(text);
  const ok = m !== null && calendarOk(Number(m[1]), Number(m[2]), Number(m[3]));
  if (!ok) throw new BooksError('BOOKS_PERIOD_INVALID', `"${text}" is not a date written YYYY-MM-DD (e.g. 2026-11-27)`);
  return text;
}

/** Checks a 'YYYY-MM' month; returns it unchanged. */
export function parseBooksMonth(text: string): string {
  const m = /^(\d{4})-(\d{2})$/.exec(text);
  const ok = m !== null && calendarOk(Number(m[1]), Number(m[2]), 1);
  if (!ok) throw new BooksError('BOOKS_PERIOD_INVALID', `"${text}" is not a month written YYYY-MM (e.g. 2026-11)`);
  return text;
}

/** The period's label: the date or the month. */
export function periodLabel(period: BooksPeriod): string {
  return period.kind === 'daily' ? period.date : period.month;
}

/** [since, until) in epoch ms of a local day or month: from local midnight to the next local midnight. */
export function periodBounds(period: BooksPeriod, timeZone: string): { since: number; until: number } {
  if (period.kind === 'daily') {
    const [y, m, d] = parseBooksDate(period.date).split('-').map(Number) as [number, number, number];
    return { since: localMidnight(y, m, d, timeZone), until: localMidnight(y, m, d + 1, timeZone) };
  }
  const [y, m] = parseBooksMonth(period.month).split('-').map(Number) as [number, number];
  return { since: localMidnight(y, m, 1, timeZone), until: localMidnight(y, m + 1, 1, timeZone) };
}

/** The local date ('2026-11-27') of an instant in a zone. */
export function localDate(epochMs: number, timeZone: string): string {
  const p = localParts(epochMs, timeZone);
  return `${p.year}-${pad(p.month)}-${pad(p.day)}`;
}

/** The local date and time ('2026-11-27 23:59') of an instant in a zone. */
export function localDateTime(epochMs: number, timeZone: string): string {
  const p = localParts(epochMs, timeZone);
  return `${p.year}-${pad(p.month)}-${pad(p.day)} ${pad(p.hour)}:${pad(p.minute)}`;
}

/** The date `days` calendar days after (or before) a 'YYYY-MM-DD' date. */
export function addDays(date: string, days: number): string {
  const [y, m, d] = parseBooksDate(date).split('-').map(Number) as [number, number, number];
  const t = new Date(Date.UTC(y, m - 1, d + days));
  return `${t.getUTCFullYear()}-${pad(t.getUTCMonth() + 1)}-${pad(t.getUTCDate())}`;
}

function localMidnight(year: number, month: number, day: number, timeZone: string): number {
  const guessUtc = Date.UTC(year, month - 1, day);
  // Two passes settle the offset across a daylight-saving change, as nextLocalTime does.
  const t = guessUtc - zoneOffsetMs(guessUtc, timeZone);
  return guessUtc - zoneOffsetMs(t, timeZone);
}

function calendarOk(y: number, m: number, d: number): boolean {
  const t = new Date(Date.UTC(y, m - 1, d));
  return y >= 1970 && t.getUTCFullYear() === y && t.getUTCMonth() === m - 1 && t.getUTCDate() === d;
}

function pad(n: number): string {
  return String(n).padStart(2, '0');
}
