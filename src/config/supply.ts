import { z } from 'zod';
import { isCalendarDate } from './allowances.js';

// `supply:` in the gateway config: the notice period before an approved cut, and the hours and dates when a cut is
// never carried out (docs/lifecycle.md § When a cut is not carried out).

const HHMM = /^([01]\d|2[0-3]):([0-5]\d)$/;
const calendarDate = (what: string) =>
  z
    .string({ error: `${what} is a date YYYY-MM-DD` })
    .refine(isCalendarDate, `${what} is a date on the calendar written YYYY-MM-DD, e.g. 2027-02-10`);

/** One protected window: daily hours (`20:00-08:00`, may run past midnight), one date, or a range of dates. */
const windowSchema = z.union(
  [
    z.strictObject({
      daily: z
        .string({ error: 'daily is a span of local hours HH:MM-HH:MM, e.g. "20:00-08:00"' })
        .regex(/^([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d$/, 'daily is a span of local hours HH:MM-HH:MM, e.g. "20:00-08:00"')
        .refine((v) => v.slice(0, 5) !== v.slice(6), 'daily starts and ends at the same time: give a span, e.g. "20:00-08:00"'),
    }),
    z.strictObject({ date: calendarDate('date') }),
    z.strictObject({ from: calendarDate('from'), to: calendarDate('to') }).refine((v) => v.from <= v.to, {
      message: 'to is before from: a range of dates runs from the earlier date to the later one',
      path: ['to'],
    }),
  ],
  { error: 'a protected window is { daily: "20:00-08:00" }, { date: "2027-02-10" } or { from: "2027-02-09", to: "2027-02-17" }' },
);

export const supplySchema = z
  .strictObject({
    /** Hours between a notice and the earliest cut (停电通知). 0 allowed: a cut may follow its approval at once. */
    noticeHours: z
      .number({ error: 'noticeHours is a number of hours' })
      .min(0, 'noticeHours is 0 or more hours')
      .max(24 * 31, 'noticeHours is at most 744 (31 days)')
      .default(24),
    /** Local hours and dates (gateway.timeZone) when no cut is carried out, except for safety. */
    protectedWindows: z.array(windowSchema).max(64, 'at most 64 protected windows').default([]),
  })
  .default({ noticeHours: 24, protectedWindows: [] });

/** A protected window, resolved: minutes of the local day, or a span of local dates (inclusive). */
export type ProtectedWindow =
  | { readonly kind: 'daily'; readonly fromMinute: number; readonly toMinute: number; readonly text: string }
  | { readonly kind: 'dates'; readonly from: string; readonly to: string; readonly text: string };

/** The supply settings the daemon uses. */
export interface SupplySettings {
  readonly noticeMs: number;
  readonly protectedWindows: readonly ProtectedWindow[];
}

const minuteOf = (hhmm: string): number => {
  const m = HHMM.exec(hhmm)!;
  return Number(m[1]) * 60 + Number(m[2]);
};

/** The `supply:` section as the daemon uses it (the schema has checked every field). */
export function resolveSupply(raw: z.output<typeof supplySchema>): SupplySettings {
  return {
    noticeMs: Math.round(raw.noticeHours * 3_600_000),
    protectedWindows: raw.protectedWindows.map((w): ProtectedWindow => {
      if ('daily' in w)
        return { kind: 'daily', fromMinute: minuteOf(w.daily.slice(0, 5)), toMinute: minuteOf(w.daily.slice(6)), text: w.daily };
      if ('date' in w) return { kind: 'dates', from: w.date, to: w.date, text: w.date };
      return { kind: 'dates', from: w.from, to: w.to, text: `${w.from}..${w.to}` };
    }),
  };
}
