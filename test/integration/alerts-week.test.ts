import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { AlertDistrict } from '../helpers/alert-district.js';

const MIN = 60_000;
const DAY = 1440 * MIN;

/** A small deterministic random source, so a failure can be replayed. */
function lcg(seed: number): () => number {
  let x = seed;
  return () => {
    x = (x * 1664525 + 1013904223) % 4294967296;
    return x / 4294967296;
  };
}

const dir = mkdtempSync(join(tmpdir(), 'meterd-alert-week-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('a clean week raises nothing but the comm-loss it should', () => {
  it('five meters with noisy voltage, changing loads and zero-load nights, one offline for a day: only that comm-loss, raised and cleared once', async () => {
    const rooms = ['room-101', 'room-102', 'room-103', 'room-104'];
    const district = new AlertDistrict({
      dir,
      startWall: Date.UTC(2026, 10, 2, 0, 20),
      meters: [
        ...rooms.map((id, i) => ({
          id,
          profile: 'dlt645-2007-single-phase-prepaid-money',
          spec: { address: String(101 + i), kind: 'money' as const, balance: 3000, hoardingLimit: 99999, overdraftLimit: 50 },
        })),
        { id: 'd1-general', profile: 'dlt645-2007-three-phase', spec: { address: '900', kind: 'plain' as const, phases: 3 as const } },
      ],
      // Routine instant and status polls every 2 minutes instead of 1, so the week runs in seconds.
      intervalsMs: { instant: 2 * MIN, status: 2 * MIN },
    });
    const rnd = lcg(20261202);
    district.start();
    const silentFrom = district.now + 2 * DAY + 8 * 60 * MIN;
    const silentTo = silentFrom + DAY;
    for (let t = 0; t < 7 * DAY; t += 10 * MIN) {
      const now = district.now;
      const hour = new Date(now).getUTCHours();
      for (const [id, sim] of district.sims) {
        const night = hour < 6;
        const three = id === 'd1-general';
        const kw = night && !three ? 0 : rnd() < 0.2 ? 0 : (three ? 3 : 0.05) + rnd() * (three ? 20 : 1.8);
        sim.setPowerKw(Math.round(kw * 1000) / 1000, now);
        for (const ph of three ? ['a', 'b', 'c'] : ['a']) sim.seed(`voltage.${ph}`, Math.round((220 + (rnd() - 0.5) * 16) * 10) / 10, now);
      }
      const offline = now >= silentFrom && now < silentTo;
      if (offline) district.link.silent.add(district.sim('room-103').address);
      else district.link.silent.delete(district.sim('room-103').address);
      await district.time.advance(10 * MIN);
    }
    const all = district.messages();
    const readings = district.store.readings.since('room-101', 0, 100_000).length;
    await district.stop();
    expect(all).toEqual(['room-103:comm-loss:raised', 'room-103:comm-loss:cleared']);
    // The week really was polled: every meter has thousands of readings, energy moved, and nights were at zero load.
    expect(readings).toBeGreaterThan(5000);
    expect(district.sim('room-101').snapshot().importKwh).toBeGreaterThan(20);
  }, 240_000);
});
