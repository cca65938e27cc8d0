import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { exactOffsetMs, intlOffsetMs, zoneOffsetMs } from '../../src/services/schedule.js';
import { adoptProcessTimeZone, hostTimeZone, isTimeZone, processTimeZone } from '../../src/time-zone.js';

const ZONES = ['Asia/Shanghai', 'Europe/Berlin', 'America/New_York', 'Australia/Lord_Howe', 'Asia/Kathmandu', 'UTC'];

describe('zoneOffsetMs (kept per 15-minute window)', () => {
  it('equals the exact offset at any instant, in zones with and without daylight saving', () => {
    fc.assert(
      fc.property(fc.constantFrom(...ZONES), fc.integer({ min: 0, max: 4_102_444_800_000 }), (zone, t) => {
        expect(zoneOffsetMs(t, zone)).toBe(exactOffsetMs(t, zone));
      }),
      { numRuns: 2000 },
    );
  });

  it('is exact on both sides of a transition, second by second', () => {
    // Europe/Berlin leaves summer time at 2026-10-25 01:00 UTC; Lord Howe moves by half an hour.
    for (const [zone, transition] of [
      ['Europe/Berlin', Date.UTC(2026, 9, 25, 1, 0, 0)],
      ['Australia/Lord_Howe', Date.UTC(2026, 3, 4, 15, 0, 0)],
    ] as const) {
      const seen = new Set<number>();
      for (let t = transition - 20 * 60_000; t <= transition + 20 * 60_000; t += 1000) {
        expect(zoneOffsetMs(t, zone)).toBe(exactOffsetMs(t, zone));
        seen.add(zoneOffsetMs(t, zone));
      }
      expect(seen.size).toBe(2);
    }
  });
});

describe('the daemon zone (offsets from Date, not Intl)', () => {
  const saved = process.env.TZ;
  afterEach(() => {
    if (saved === undefined) delete process.env.TZ;
    else process.env.TZ = saved;
  });

  it('gives the offset Intl gives, at any instant, in zones with and without daylight saving', () => {
    for (const zone of ZONES) {
      adoptProcessTimeZone(zone);
      expect(processTimeZone()).toBe(zone);
      fc.assert(
        fc.property(fc.integer({ min: 0, max: 4_102_444_800_000 }), (t) => {
          expect(exactOffsetMs(t, zone)).toBe(intlOffsetMs(t, zone));
        }),
        { numRuns: 500 },
      );
      // Second by second across Berlin's autumn change, where Date and Intl could disagree by an hour.
      const transition = Date.UTC(2026, 9, 25, 1, 0, 0);
      for (let t = transition - 5 * 60_000; t <= transition + 5 * 60_000; t += 1000)
        expect(exactOffsetMs(t, 'Europe/Berlin')).toBe(intlOffsetMs(t, 'Europe/Berlin'));
    }
  });

  it('falls back to Intl once TZ is changed behind its back', () => {
    adoptProcessTimeZone('Asia/Shanghai');
    process.env.TZ = 'UTC';
    expect(processTimeZone()).toBeUndefined();
    expect(exactOffsetMs(Date.UTC(2026, 0, 1), 'Asia/Shanghai')).toBe(8 * 3_600_000);
  });
});

describe('isTimeZone and hostTimeZone', () => {
  it('knows canonical names and aliases, and refuses anything else', () => {
    expect(isTimeZone('Asia/Shanghai')).toBe(true);
    expect(isTimeZone('UTC')).toBe(true);
    expect(isTimeZone('Asia/Calcutta')).toBe(true);
    expect(isTimeZone('Asia/Beijing')).toBe(false);
    expect(isTimeZone('CST-8')).toBe(false);
    expect(isTimeZone('')).toBe(false);
    expect(isTimeZone('Asia')).toBe(false);
    expect(isTimeZone('../../etc/passwd')).toBe(false);
  });

  it('answers with a zone Intl accepts', () => {
    expect(isTimeZone(hostTimeZone())).toBe(true);
  });
});
