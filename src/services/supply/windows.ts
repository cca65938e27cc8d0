import type { ProtectedWindow } from '../../config/supply.js';
import { addDays, localDate, periodBounds } from '../books/periods.js';
import { localParts, nextLocalTime } from '../schedule.js';

// When a cut may be carried out: the protected windows of the config (daily hours, dates) in the gateway's zone.

/** The protected window `at` falls in, or undefined when a cut may go ahead then. Pure. */
export function protectedWindowAt(at: number, windows: readonly ProtectedWindow[], timeZone: string): ProtectedWindow | undefined {
  if (windows.length === 0) return undefined;
  const p = localParts(at, timeZone);
  const minute = p.hour * 60 + p.minute;
  const date = localDate(at, timeZone);
  return windows.find((w) => {
    if (w.kind === 'dates') return w.from <= date && date <= w.to;
    // A span past midnight (20:00-08:00) is the evening part and the morning part.
    return w.fromMinute < w.toMinute ? minute >= w.fromMinute && minute < w.toMinute : minute >= w.fromMinute || minute < w.toMinute;
  });
}

/** When the window holding `at` ends (local time), the first instant after `at` it no longer covers. Pure. */
export function windowEnd(at: number, w: ProtectedWindow, timeZone: string): number {
  if (w.kind === 'dates') return periodBounds({ kind: 'daily', date: addDays(w.to, 0) }, timeZone).until;
  const hhmm = `${String(Math.floor(w.toMinute / 60)).padStart(2, '0')}:${String(w.toMinute % 60).padStart(2, '0')}`;
  return nextLocalTime(at, hhmm, timeZone);
}

/**
 * The first instant at or after `from` outside every protected window: when an approved cut whose earliest time is
 * `from` is carried out. Windows that touch or overlap are walked through one after the other. Pure.
 */
export function firstAllowedAt(from: number, windows: readonly ProtectedWindow[], timeZone: string): number {
  let t = from;
  // Bounded: each step leaves one window; 64 windows cannot chain for more than a few hundred steps.
  for (let step = 0; step < 1000; step++) {
    const w = protectedWindowAt(t, windows, timeZone);
    if (w === undefined) return t;
    t = windowEnd(t, w, timeZone);
  }
  return t;
}
