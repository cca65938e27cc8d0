import { describe, expect, it } from 'vitest';
import {
  addDays,
  BooksError,
  formatUnits,
  localDate,
  parseBooksDate,
  parseBooksMonth,
  periodBounds,
} from '../../src/services/books/index.js';

describe('books periods are local days and months of the gateway', () => {
  it('a Shanghai day runs from 16:00 UTC the day before to 16:00 UTC', () => {
    expect(periodBounds({ kind: 'daily', date: '2026-11-27' }, 'Asia/Shanghai')).toEqual({
      since: Date.parse('2026-11-26T16:00:00Z'),
      until: Date.parse('2026-11-27T16:00:00Z'),
    });
  });

  it("a month runs from its first local midnight to the next month's, across the year end", () => {
    expect(periodBounds({ kind: 'monthly', month: '2026-12' }, 'Asia/Shanghai')).toEqual({
      since: Date.parse('2026-11-30T16:00:00Z'),
      until: Date.parse('2026-12-31T16:00:00Z'),
    });
  });

  it('a day with a daylight-saving change is 23 or 25 hours long', () => {
    const spring = periodBounds({ kind: 'daily', date: '2026-03-29' }, 'Europe/Berlin');
    expect(spring).toEqual({ since: Date.parse('2026-03-28T23:00:00Z'), until: Date.parse('2026-03-29T22:00:00Z') });
    const autumn = periodBounds({ kind: 'daily', date: '2026-10-25' }, 'Europe/Berlin');
    expect((autumn.until - autumn.since) / 3_600_000).toBe(25);
  });

  it('the local date of an instant', () => {
    expect(localDate(Date.parse('2026-11-26T15:59:59Z'), 'Asia/Shanghai')).toBe('2026-11-26');
    expect(localDate(Date.parse('2026-11-26T16:00:00Z'), 'Asia/Shanghai')).toBe('2026-11-27');
    expect(addDays('2026-12-31', 1)).toBe('2027-01-01');
    expect(addDays('2026-03-01', -1)).toBe('2026-02-28');
  });

  it('dates and months must be on the calendar', () => {
    expect(parseBooksDate('2028-02-29')).toBe('2028-02-29');
    for (const bad of ['2026-02-29', '2026-1-5', '26-11-27', '2026-11-27T00:00', '']) expect(() => parseBooksDate(bad)).toThrow(BooksError);
    expect(parseBooksMonth('2026-11')).toBe('2026-11');
    for (const bad of ['2026-00', '2026-13', '2026-11-01']) expect(() => parseBooksMonth(bad)).toThrow(BooksError);
  });

  it('amounts are formatted from whole fen / 0.01 kWh without floating point', () => {
    expect(formatUnits(0)).toBe('0.00');
    expect(formatUnits(5)).toBe('0.05');
    expect(formatUnits(1_005)).toBe('10.05');
    expect(formatUnits(-2_000)).toBe('-20.00');
    expect(formatUnits(-50)).toBe('-0.50');
    expect(formatUnits(900_719_925_474_099)).toBe('9007199254740.99');
  });
});
