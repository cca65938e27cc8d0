import { describe, expect, it } from 'vitest';
import { decodeMeterTime, encodeTime } from '../../protocols/dlt645/index.js';

describe('decodeMeterTime: a command time field back into its parts', () => {
  it('reads ss mm hh DD MM YY (broadcast time, 0x1C valid-until) as the time encodeTime wrote', () => {
    const t = { year: 2026, month: 11, day: 27, hour: 23, minute: 54, second: 9 };
    const r = decodeMeterTime('YYMMDDhhmmss', encodeTime('YYMMDDhhmmss', t));
    expect(r).toEqual({ ok: true, value: t });
  });

  it('returns only the fields a layout carries, with the weekday of YYMMDDWW', () => {
    expect(decodeMeterTime('YYMMDDWW', Uint8Array.of(0x01, 0x11, 0x01, 0x16))).toEqual({
      ok: true,
      value: { year: 2016, month: 1, day: 11, weekday: 1 },
    });
    expect(decodeMeterTime('hhmmss', Uint8Array.of(0x30, 0x15, 0x08))).toEqual({ ok: true, value: { hour: 8, minute: 15, second: 30 } });
  });

  it('refuses a month of 13, non-BCD bytes and the all-FF "not available" value', () => {
    expect(decodeMeterTime('YYMMDDhhmmss', Uint8Array.of(0, 0, 0, 1, 0x13, 0x26)).ok).toBe(false);
    expect(decodeMeterTime('hhmmss', Uint8Array.of(0x0a, 0, 0)).ok).toBe(false);
    const na = decodeMeterTime('hhmmss', Uint8Array.of(0xff, 0xff, 0xff));
    expect(na.ok ? undefined : na.error.code).toBe('DLT645_BAD_TIME');
  });
});
