import { processTimeZone } from '../time-zone.js';

/** Offset of a time zone from UTC at an instant, in ms (positive east of Greenwich). */
export function zoneOffsetMs(epochMs: number, timeZone: string): number {
  // Intl formatting costs tens of microseconds and start-up asks for thousands of meters' schedules at once, so an
  // offset is kept per zone and 15-minute window when it is the same at both ends of the window: an offset cannot
  // change and change back within 15 minutes, so it then holds for the whole window. A window holding a transition
  // is computed exactly on every call.
  const window = Math.floor(epochMs / OFFSET_WINDOW_MS);
  const key = `${timeZone}|${window}`;
  const cached = offsetCache.get(key);
  if (cached !== undefined) return cached ?? exactOffsetMs(epochMs, timeZone);
  const start = exactOffsetMs(window * OFFSET_WINDOW_MS, timeZone);
  const end = exactOffsetMs((window + 1) * OFFSET_WINDOW_MS - 1000, timeZone);
  if (offsetCache.size >= OFFSET_CACHE_MAX) offsetCache.clear();
  offsetCache.set(key, start === end ? start : null);
  return start === end ? start : exactOffsetMs(epochMs, timeZone);
}

const OFFSET_WINDOW_MS = 15 * 60_000;
const OFFSET_CACHE_MAX = 4096;
/** Offset per `zone|window`; null marks a window that holds a transition. */
const offsetCache = new Map<string, number | null>();

/** Offset of a time zone from UTC at an instant, in ms: from Date in the daemon's own zone, else asked of Intl. */
export function exactOffsetMs(epochMs: number, timeZone: string): number {
  // `|| 0`: UTC would otherwise give -0.
  if (timeZone === processTimeZone()) return -Math.round(new Date(epochMs).getTimezoneOffset() * 60) * 1000 || 0;
  return intlOffsetMs(epochMs, timeZone);
}

/** Offset of a time zone from UTC at an instant, in ms, asked of Intl every time. */
export function intlOffsetMs(epochMs: number, timeZone: string): number {
  const parts = formatterFor(timeZone).formatToParts(new Date(epochMs));
  const get = (t: string) => Number(parts.find((p) => p.type === t)!.value);
  const asUtc = Date.UTC(get('year'), get('month') - 1, get('day'), get('hour'), get('minute'), get('second'));
  return asUtc - Math.floor(epochMs / 1000) * 1000;
}

/** Local calendar date and time of an instant in a zone. */
export function localParts(
  epochMs: number,
  timeZone: string,
): { year: number; month: number; day: number; hour: number; minute: number; second: number; weekday: number } {
  const d = new Date(epochMs + zoneOffsetMs(epochMs, timeZone));
  return {
    year: d.getUTCFullYear(),
    month: d.getUTCMonth() + 1,
    day: d.getUTCDate(),
    hour: d.getUTCHours(),
    minute: d.getUTCMinutes(),
    second: d.getUTCSeconds(),
    weekday: d.getUTCDay(),
  };
}

/** The next instant after `afterMs` when the local clock in `timeZone` reads `hhmm` ("00:10"). */
export function nextLocalTime(afterMs: number, hhmm: string, timeZone: string): number {
  const [h, m] = hhmm.split(':').map(Number) as [number, number];
  const local = localParts(afterMs, timeZone);
  for (let addDays = 0; addDays <= 2; addDays++) {
    const guessUtc = Date.UTC(local.year, local.month - 1, local.day + addDays, h, m);
    // Two passes settle the offset across a daylight-saving change.
    let t = guessUtc - zoneOffsetMs(guessUtc, timeZone);
    t = guessUtc - zoneOffsetMs(t, timeZone);
    if (t > afterMs) return t;
  }
  return afterMs + 86_400_000;
}

/** Spread n items over an interval: item i starts at i/n of it, so a bus is never flooded at :00. */
export function phaseOffset(index: number, count: number, intervalMs: number): number {
  return count <= 1 ? 0 : Math.floor((index * intervalMs) / count);
}

// Building a DateTimeFormat costs far more than using one; schedules ask for the same zone all the time.
const formatters = new Map<string, Intl.DateTimeFormat>();
function formatterFor(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
    });
    formatters.set(timeZone, f);
  }
  return f;
}
