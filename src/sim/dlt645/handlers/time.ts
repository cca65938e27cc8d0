import { decodeMeterTime, type Frame, type MeterTime } from '../../../../protocols/dlt645/index.js';
import { clockMs, ERR, errReply, okReply, type MeterState } from '../meter-state.js';
import { dayOf, epochOf, minuteOfDay } from '../time.js';

/** No broadcast time is taken this close to midnight, either side, so a day's freeze is never skipped or doubled. */
const MIDNIGHT_GUARD_MIN = 5;

/**
 * 0x08 broadcast time, with the hzy1981 firmware's silent refusals: none near midnight, none beyond the allowed
 * skew, one per day (docs/reference/dlt645.md § Broadcast time 0x08). Never answered.
 */
export function broadcastTime(m: MeterState, req: Frame): void {
  if (req.data.length !== 6) return;
  const t = decodeMeterTime('YYMMDDhhmmss', req.data);
  if (!t.ok) return;
  const next = epochOf(t.value as MeterTime);
  const current = clockMs(m);
  if (nearMidnight(current) || nearMidnight(next)) return;
  if (Math.abs(next - current) > m.clock.maxBroadcastSkewMs) return;
  if (m.clock.lastBroadcastDay === dayOf(current)) return;
  m.clock.offsetMs = next - m.clock.now;
  m.clock.lastBroadcastDay = dayOf(next);
}

/**
 * 0x16 freeze command (docs/reference/dlt645.md § Freezes): 99999999 freezes now, into the daily list, so a test
 * can have one without waiting for midnight; a schedule (mm hh DD MM, 99 = every) is accepted and not kept.
 */
export function freeze(m: MeterState, req: Frame): Frame {
  if (req.data.length !== 4) return errReply(m, req, ERR.other);
  const fields = [...req.data];
  if (fields.every((b) => b === 0x99)) {
    m.energy.dailyFreeze(clockMs(m));
    return okReply(m, req);
  }
  const valid = fields.every((b) => b === 0x99 || ((b & 0x0f) <= 9 && b >> 4 <= 9));
  return valid ? okReply(m, req) : errReply(m, req, ERR.other);
}

function nearMidnight(ms: number): boolean {
  const minute = minuteOfDay(ms);
  return minute >= 24 * 60 - MIDNIGHT_GUARD_MIN || minute < MIDNIGHT_GUARD_MIN;
}
