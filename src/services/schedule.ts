/** Offset of a time zone from UTC at an instant, in ms (positive east of Greenwich). */
export function zoneOffsetMs(epochMs: number, timeZone: string): number {
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
