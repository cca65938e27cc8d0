import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_THRESHOLDS } from '../../src/config/index.js';
import { loadProfiles } from '../../src/profiles/registry.js';
import { meterModel } from '../../src/services/alerts/model.js';
import { AlertService, TRUSTED_CLOCK } from '../../src/services/alerts/service.js';
import { ClockKeeper, type ClockTarget } from '../../src/services/clock-keeper.js';
import { openStore, type Store } from '../../src/store/index.js';
import { ManualTime } from '../helpers/manual-time.js';

// A replacement's rebind hands the clock keeper the new meter's target (or none): the point is read through it at its
// interval, the old target's schedule ends, a check of the old meter that was under way does not start another, and
// any number of swaps leave one timer per point (nothing kept per swap). Real store and alert service, manual time.

const NOON = Date.UTC(2026, 11, 4, 12, 0, 0);
const DAY = 86_400_000;
const profile = loadProfiles().get('dlt645-2007-single-phase-prepaid-money')!;

let store: Store;
let time: ManualTime;
let keeper: ClockKeeper;

/** A meter whose clock is `skewS` seconds off; `hold` keeps its next answer back until released. */
function meterClock(skewS: number) {
  const meter = {
    reads: 0,
    release: undefined as (() => void) | undefined,
    hold: false,
    target: (intervalMs: number): ClockTarget => ({
      meterId: 'p',
      busId: 'bus1',
      intervalMs,
      readClock: async () => {
        meter.reads++;
        if (meter.hold) await new Promise<void>((resolve) => (meter.release = resolve));
        const ms = time.wall.now() + skewS * 1000;
        return { meterClock: new Date(ms).toISOString().slice(0, 19), meterMs: Math.floor(ms / 1000) * 1000 };
      },
    }),
  };
  return meter;
}

beforeEach(() => {
  time = new ManualTime(NOON);
  store = openStore({ path: join(mkdtempSync(join(tmpdir(), 'meterd-keeper-')), 'meterd.db'), clock: time.wall });
  const alerts = new AlertService({
    store,
    clock: time.wall,
    meters: [{ meterId: 'p', model: meterModel(profile, []), settings: DEFAULT_THRESHOLDS }],
  });
  keeper = new ClockKeeper({
    targets: [],
    buses: new Map(),
    alerts,
    store,
    clock: time.wall,
    timers: time,
    timeZone: 'UTC',
    trust: TRUSTED_CLOCK,
    sync: 'off',
    settlementTimes: [],
    driftAlertMs: () => DEFAULT_THRESHOLDS.clockDriftMs,
  });
  keeper.start();
});

afterEach(async () => {
  await keeper.stop();
  store.close();
});

describe('ClockKeeper.retarget', () => {
  it("reads the new meter's clock soon, then at the new interval; the old one's schedule ends", async () => {
    const old = meterClock(600);
    keeper.retarget('p', old.target(5000));
    await time.advance(0);
    expect(old.reads).toBe(1);

    const fresh = meterClock(1200);
    keeper.retarget('p', fresh.target(1000));
    await time.advance(0);
    expect(fresh.reads).toBe(1);
    await time.advance(3000);
    expect(fresh.reads).toBe(4);
    // Four of the old target's intervals: it is not read again.
    await time.advance(20_000);
    expect(fresh.reads).toBe(24);
    expect(old.reads).toBe(1);
    expect(time.pending).toBe(1);
  });

  it('a check of the old meter under way at the swap does not schedule the old target again', async () => {
    const old = meterClock(600);
    old.hold = true;
    keeper.retarget('p', old.target(1000));
    await time.advance(0);
    expect(old.reads).toBe(1);
    const fresh = meterClock(1200);
    keeper.retarget('p', fresh.target(60_000));
    await time.advance(0);
    old.release!();
    await time.advance(0);
    // Only the new target's next check is armed.
    expect(time.pending).toBe(1);
    await time.advance(59_000);
    expect(old.reads).toBe(1);
    expect(fresh.reads).toBe(1);
    await time.advance(1000);
    expect(fresh.reads).toBe(2);
  });

  it('any number of swaps keep one timer for the point; a model without a clock leaves none', async () => {
    const meters = Array.from({ length: 50 }, (_, i) => meterClock(i));
    for (const m of meters) {
      keeper.retarget('p', m.target(5000));
      await time.advance(0);
    }
    expect(meters.every((m) => m.reads === 1)).toBe(true);
    expect(time.pending).toBe(1);
    keeper.retarget('p', undefined);
    expect(time.pending).toBe(0);
    await time.advance(DAY);
    expect(meters.every((m) => m.reads === 1)).toBe(true);
    // meterOnline of a point without a clock target reads nothing.
    keeper.meterOnline('p');
    expect(time.pending).toBe(0);
  });
});
