import { meterTimeOf, type MeterTime } from '../../../protocols/dlt645/index.js';

/**
 * A simulated meter keeps local wall-clock time like a real one (the standard has no zone): these helpers move
 * between epoch milliseconds and the meter's broken-down time in this process's zone, as the codec's meterTimeOf does.
 */
export function meterTimeAt(ms: number): MeterTime {
  return meterTimeOf(new Date(ms));
}

/** Epoch milliseconds of a meter time in this process's zone. */
export function epochOf(t: MeterTime): number {
  return new Date(t.year, t.month - 1, t.day, t.hour, t.minute, t.second).getTime();
}

/** The calendar day a meter is in, as YYYY-MM-DD. */
export function dayOf(ms: number): string {
  const t = meterTimeAt(ms);
  return `${t.year}-${String(t.month).padStart(2, '0')}-${String(t.day).padStart(2, '0')}`;
}

/** The next local midnight strictly after `ms`. */
export function nextMidnight(ms: number): number {
  const d = new Date(ms);
  return new Date(d.getFullYear(), d.getMonth(), d.getDate() + 1, 0, 0, 0).getTime();
}

/** Minutes since local midnight. */
export function minuteOfDay(ms: number): number {
  const d = new Date(ms);
  return d.getHours() * 60 + d.getMinutes();
}
