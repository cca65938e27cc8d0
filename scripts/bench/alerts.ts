/**
 * What fault detection costs per reading with 1,000 meters: the pure detectors alone, and the alert service as the
 * poller runs it (detectors, episode bookkeeping and the detector memory written in the poll's transaction).
 * Prints figures; asserts nothing.
 *
 *   npx tsx scripts/bench/alerts.ts
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { ManualClock } from '../../src/clock.js';
import { DEFAULT_THRESHOLDS } from '../../src/config/index.js';
import { loadProfiles } from '../../src/profiles/registry.js';
import { detect, type DetectorMemory } from '../../src/services/alerts/detectors.js';
import { meterModel } from '../../src/services/alerts/model.js';
import { AlertService } from '../../src/services/alerts/service.js';
import { insertReadings, openStore, type PointValue } from '../../src/store/index.js';

const METERS = 1_000;
const CYCLES = 30;
const BATCH = 100;

const profile = loadProfiles().get('dlt645-2007-single-phase-prepaid-money')!;
const model = meterModel(profile, ['dorm']);
const v = (x: number, unit = ''): PointValue => ({ v: x, unit });

/** One minute of a meter's polls: instant and status every cycle, energy and credit every 15th. */
function readingsOf(meter: number, cycle: number): Record<string, PointValue>[] {
  const kw = 0.2 + ((meter * 7 + cycle * 3) % 17) / 10;
  const out: Record<string, PointValue>[] = [
    {
      'voltage.a': v(220 + (meter % 9) - 4, 'V'),
      'current.a': v((kw * 1000) / 220, 'A'),
      'current.n': v((kw * 1000) / 221, 'A'),
      'power.active': v(kw, 'kW'),
      'power.factor': v(0.98),
      frequency: v(50, 'Hz'),
    },
    {
      'status.word1': v(0),
      'status.word3': v(512),
      'relay.state': v(0),
      'events.cover-open.count': v(3),
      'events.power-down.count': v(12),
    },
  ];
  if (cycle % 15 === 0)
    out.push(
      { 'energy.active.import': v(1000 + meter + (cycle * kw) / 60, 'kWh'), 'energy.active.export': v(0, 'kWh') },
      { 'credit.balance.money': v(120, 'CNY'), 'credit.overdraft': v(0, 'CNY'), 'credit.purchase.count': v(4) },
    );
  return out;
}

// 1. The pure detectors.
{
  const memories: DetectorMemory[] = Array.from({ length: METERS }, () => ({}));
  const start = Date.UTC(2026, 11, 1);
  let n = 0;
  for (let c = 0; c < 3; c++)
    for (let m = 0; m < METERS; m++)
      for (const r of readingsOf(m, c)) detect(model, DEFAULT_THRESHOLDS, memories[m]!, start + c * 60_000, r);
  const t0 = performance.now();
  for (let c = 3; c < 3 + CYCLES; c++)
    for (let m = 0; m < METERS; m++)
      for (const r of readingsOf(m, c)) {
        detect(model, DEFAULT_THRESHOLDS, memories[m]!, start + c * 60_000, r);
        n++;
      }
  const us = ((performance.now() - t0) * 1000) / n;
  console.log(`detectors alone:          ${us.toFixed(2)} µs per reading (${n} readings of ${METERS} meters)`);
}

// 2. The alert service inside the poll's transactions, as the poller runs it, against a store on disk.
{
  const dir = mkdtempSync(join(tmpdir(), 'meterd-bench-alerts-'));
  const clock = new ManualClock(Date.UTC(2026, 11, 1));
  const store = openStore({ path: join(dir, 'meterd.db'), clock });
  const alerts = new AlertService({
    store,
    clock,
    meters: Array.from({ length: METERS }, (_, m) => ({ meterId: `room-${m}`, model, settings: DEFAULT_THRESHOLDS })),
  });
  const cycle = (c: number, withAlerts: boolean): { ms: number; n: number } => {
    let n = 0;
    let ms = 0;
    for (let first = 0; first < METERS; first += BATCH) {
      const batch: { meterId: string; values: Record<string, PointValue> }[] = [];
      for (let m = first; m < first + BATCH; m++) for (const values of readingsOf(m, c)) batch.push({ meterId: `room-${m}`, values });
      const t0 = performance.now();
      store.transaction((tx) => {
        insertReadings(
          tx,
          batch.map((b) => ({ meterId: b.meterId, takenAt: clock.now(), values: b.values })),
        );
        if (withAlerts) for (const b of batch) alerts.reading(tx, b.meterId, clock.now(), b.values);
        if (withAlerts) alerts.batchEnd(tx);
      });
      if (withAlerts) alerts.committed();
      ms += performance.now() - t0;
      n += batch.length;
    }
    clock.advance(60_000);
    return { ms, n };
  };
  for (let c = 0; c < 3; c++) cycle(c, true);
  let base = { ms: 0, n: 0 };
  let withAlerts = { ms: 0, n: 0 };
  for (let c = 3; c < 3 + CYCLES; c++) {
    const b = cycle(c, false);
    const a = cycle(c + 1000, true);
    base = { ms: base.ms + b.ms, n: base.n + b.n };
    withAlerts = { ms: withAlerts.ms + a.ms, n: withAlerts.n + a.n };
  }
  const perBase = (base.ms * 1000) / base.n;
  const perAlerts = (withAlerts.ms * 1000) / withAlerts.n;
  console.log(`store commit alone:       ${perBase.toFixed(2)} µs per reading (batches of ${BATCH} readings)`);
  console.log(`store commit + alerts:    ${perAlerts.toFixed(2)} µs per reading: detection adds ${(perAlerts - perBase).toFixed(2)} µs`);
  const perMinute = (METERS * 2 + (METERS * 2) / 15) * (perAlerts - perBase);
  console.log(
    `1,000 meters polled every minute: detection costs about ${(perMinute / 1000).toFixed(1)} ms of CPU per minute (${((perMinute / 60_000_000) * 100).toFixed(3)} % of one core)`,
  );
  store.close();
  rmSync(dir, { recursive: true, force: true });
}
