import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { exactOffsetMs, zoneOffsetMs } from '../../src/services/schedule.js';

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
