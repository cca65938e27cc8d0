import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { DEFAULT_THRESHOLDS } from '../../src/config/index.js';
import { meterModel } from '../../src/services/alerts/model.js';
import { ACTIVE_ALERTS_TOPIC, AlertService, AlertsError, type AlertMessage } from '../../src/services/alerts/service.js';
import { loadProfiles } from '../../src/profiles/registry.js';
import { openStore, type PointValue, type Store } from '../../src/store/index.js';

const profiles = loadProfiles();
const model = meterModel(profiles.get('dlt645-2007-single-phase-prepaid-money')!, []);
const v = (x: number): PointValue => ({ v: x, unit: '' });

let dir: string;
let clock: ManualClock;
let store: Store;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'meterd-alerts-'));
  clock = new ManualClock(Date.UTC(2026, 11, 1, 8, 0, 0));
  store = openStore({ path: join(dir, 'meterd.db'), clock });
});

afterEach(() => {
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

function service(): AlertService {
  return new AlertService({ store, clock, meters: [{ meterId: 'room-101', model, settings: DEFAULT_THRESHOLDS }] });
}

/** One poll of room-101, a minute after the last, committed as the poller commits it. */
function poll(alerts: AlertService, values: Record<string, PointValue>): void {
  clock.advance(60_000);
  store.transaction((tx) => {
    alerts.reading(tx, 'room-101', clock.now(), values);
    alerts.batchEnd(tx);
  });
}

function alertMessages(): AlertMessage[] {
  return store.outbox
    .peek({ limit: 1000 })
    .filter((m) => m.topic === 'meters/room-101/alerts')
    .map((m) => JSON.parse(m.payload) as AlertMessage);
}

describe('alert episodes', () => {
  it('raise once however many polls see the fault, and clear after three good polls in a row, not one', () => {
    const alerts = service();
    for (let i = 0; i < 5; i++) poll(alerts, { 'status.word1': v(1 << 2) });
    expect(alertMessages().map((m) => m.state)).toEqual(['raised']);
    poll(alerts, { 'status.word1': v(0) });
    poll(alerts, { 'status.word1': v(0) });
    poll(alerts, { 'status.word1': v(1 << 2) }); // one bad poll in between starts the count again
    poll(alerts, { 'status.word1': v(0) });
    poll(alerts, { 'status.word1': v(0) });
    expect(alerts.activeCount()).toBe(1);
    poll(alerts, { 'status.word1': v(0) });
    const msgs = alertMessages();
    expect(msgs.map((m) => `${m.kind}:${m.state}`)).toEqual(['battery-low:raised', 'battery-low:cleared']);
    expect(msgs[0]).toMatchObject({ meter: 'room-101', severity: 'warning', evidence: { 'status.word1': 4, bit: 2 } });
    expect(msgs[1]!.alertId).toBe(msgs[0]!.alertId);
    expect(alerts.activeCount()).toBe(0);
  });

  it('keep nothing of a source that is good again (a healthy meter keeps no sources), and raise again later', () => {
    const alerts = service();
    const stored = () => JSON.parse(new Map(store.alerts.detectorMemories()).get('room-101')!) as { sources?: Record<string, unknown> };
    poll(alerts, { 'status.word1': v(0) });
    expect(stored().sources).toBeUndefined();
    poll(alerts, { 'status.word1': v(1 << 2) });
    expect(Object.keys(stored().sources ?? {})).toEqual(['battery-low|status.word1.2']);
    for (let i = 0; i < 3; i++) poll(alerts, { 'status.word1': v(0) });
    expect(stored().sources).toBeUndefined();
    poll(alerts, { 'status.word1': v(1 << 2) });
    expect(alertMessages().map((m) => m.state)).toEqual(['raised', 'cleared', 'raised']);
    // Meters of one profile share one model.
    expect(meterModel(profiles.get('dlt645-2007-single-phase-prepaid-money')!, ['dorm'])).toBe(model);
  });

  it('survive a restart: an active alert is neither raised again nor lost', () => {
    const first = service();
    poll(first, { 'status.word1': v(1 << 4) });
    expect(first.activeCount()).toBe(1);
    const again = service();
    expect(again.list().map((a) => a.kind)).toEqual(['reverse-power']);
    poll(again, { 'status.word1': v(1 << 4) });
    expect(alertMessages().filter((m) => m.state === 'raised')).toHaveLength(1);
  });

  it('retain the active set on alerts/active, and update it on every raise and clear', () => {
    const alerts = service();
    poll(alerts, { 'credit.balance.money': v(3) });
    const active = store.outbox.peek({ limit: 100 }).filter((m) => m.topic === ACTIVE_ALERTS_TOPIC);
    // A newer retained state replaces the undelivered one: one row, the latest set.
    expect(active).toHaveLength(1);
    expect(active[0]!.retain).toBe(true);
    expect(JSON.parse(active[0]!.payload).alerts).toEqual([
      expect.objectContaining({ meter: 'room-101', kind: 'balance-low', severity: 'info', raisedAt: '2026-12-01T08:01:00.000Z' }),
    ]);
  });

  it('keep cover-open until a technician acknowledges it, with the repair note in its history', () => {
    const alerts = service();
    poll(alerts, { 'events.cover-open.count': v(2) });
    poll(alerts, { 'events.cover-open.count': v(3) });
    for (let i = 0; i < 5; i++) poll(alerts, { 'events.cover-open.count': v(3) });
    const [alert] = alerts.list();
    expect(alert).toMatchObject({ kind: 'cover-open', evidence: { 'events.cover-open.count': 3, before: 2 } });
    const r = alerts.acknowledge({ alertId: alert!.alertId, operator: 'wang', note: 'seal replaced, no tampering found' });
    expect(r.cleared).toBe(true);
    expect(r.notes).toEqual([expect.objectContaining({ operator: 'wang', action: 'ack', note: 'seal replaced, no tampering found' })]);
    expect(store.alerts.get(alert!.alertId)).toMatchObject({ clearedBy: 'wang' });
    // The next opening is a new episode.
    poll(alerts, { 'events.cover-open.count': v(4) });
    expect(alerts.list()).toHaveLength(1);
    expect(alerts.list()[0]!.alertId).not.toBe(alert!.alertId);
  });

  it('refuse to acknowledge an alert that does not exist, by name', () => {
    expect(() => service().acknowledge({ alertId: 'room-9:cover-open:1', operator: 'wang' })).toThrowError(AlertsError);
  });

  it('raise comm-loss when the poller marks the meter offline, and clear it after three answers', () => {
    const alerts = service();
    store.transaction((tx) => alerts.failure(tx, 'room-101', clock.now(), { failures: 2, offline: false, code: 'METER_TIMEOUT' }));
    expect(alerts.activeCount()).toBe(0);
    store.transaction((tx) => alerts.failure(tx, 'room-101', clock.now(), { failures: 3, offline: true, code: 'METER_TIMEOUT' }));
    store.transaction((tx) => alerts.failure(tx, 'room-101', clock.now(), { failures: 4, offline: true, code: 'METER_TIMEOUT' }));
    expect(alerts.list().map((a) => a.kind)).toEqual(['comm-loss']);
    for (let i = 0; i < 3; i++) poll(alerts, { 'voltage.a': v(229) });
    expect(alerts.activeCount()).toBe(0);
    expect(alertMessages().map((m) => `${m.kind}:${m.state}`)).toEqual(['comm-loss:raised', 'comm-loss:cleared']);
  });

  it('raise current-mismatch only after three mismatched polls in a row', () => {
    const alerts = service();
    poll(alerts, { 'current.a': v(1), 'current.n': v(4) });
    poll(alerts, { 'current.a': v(1), 'current.n': v(4) });
    expect(alerts.activeCount()).toBe(0);
    poll(alerts, { 'current.a': v(1), 'current.n': v(4) });
    expect(alerts.list().map((a) => a.kind)).toEqual(['current-mismatch']);
  });

  it('forget what a rolled-back poll taught it', () => {
    const alerts = service();
    expect(() =>
      store.transaction((tx) => {
        alerts.reading(tx, 'room-101', clock.now(), { 'status.word1': v(1 << 4) });
        throw new Error('disk full');
      }),
    ).toThrow('disk full');
    alerts.rolledBack();
    expect(alerts.activeCount()).toBe(0);
    expect(store.alerts.active()).toEqual([]);
  });
});

describe('alerts fed from outside the poll', () => {
  it('a purchase counter ahead of the books (a load from outside this system) raises purchase-mismatch with the day report, cleared by a person', async () => {
    const { BooksPublisher, periodLabel } = await import('../../src/services/books/index.js');
    const { insertReadings } = await import('../../src/store/index.js');
    const alerts = service();
    const day = Date.UTC(2026, 11, 1);
    store.transaction((tx) =>
      insertReadings(tx, [
        { meterId: 'room-101', takenAt: day + 2 * 3_600_000, values: { 'credit.purchase.count': v(3) } },
        { meterId: 'room-101', takenAt: day + 20 * 3_600_000, values: { 'credit.purchase.count': v(4) } },
      ]),
    );
    clock.set(Date.UTC(2026, 11, 2, 0, 10));
    const publisher = new BooksPublisher({
      store,
      clock,
      gateway: { id: 'gw-a', timeZone: 'UTC' },
      meters: [{ id: 'room-101', address: '000000000101' }],
      onDayReport: (tx, report) => {
        for (const m of report.reconciliation)
          if (m.findings.some((f) => f.kind === 'outside-load'))
            alerts.observe(
              m.meterId,
              [{ kind: 'purchase-mismatch', source: 'books', bad: true, pulse: true, evidence: { date: periodLabel(report.period) } }],
              tx,
            );
      },
    });
    publisher.publishDay('2026-12-01');
    expect(alerts.list()).toEqual([
      expect.objectContaining({ kind: 'purchase-mismatch', severity: 'critical', evidence: { date: '2026-12-01', source: 'books' } }),
    ]);
    // Publishing the same day again raises nothing more; a person clears it.
    publisher.publishDay('2026-12-01');
    expect(alertMessages().filter((m) => m.kind === 'purchase-mismatch')).toHaveLength(1);
    alerts.acknowledge({ alertId: alerts.list()[0]!.alertId, operator: 'zhao', note: 'old test card used by the warden; logged' });
    expect(alerts.activeCount()).toBe(0);
  });

  it('a profile feeds malignant-load (恶性负载) by a condition of its own, without code', () => {
    const { meterModel: modelOf } = { meterModel };
    const base = profiles.get('dlt645-2007-single-phase-prepaid-money')!;
    const dorm = modelOf(
      {
        ...base,
        status: [...base.status, { point: 'status.word1', bit: 12, condition: 'kettle-detected' }],
        alerts: { conditions: { 'kettle-detected': 'malignant-load' }, counters: {} },
      },
      ['dorm'],
    );
    const alerts = new AlertService({ store, clock, meters: [{ meterId: 'room-101', model: dorm, settings: DEFAULT_THRESHOLDS }] });
    poll(alerts, { 'status.word1': v(1 << 12) });
    expect(alerts.list().map((a) => a.kind)).toEqual(['malignant-load']);
  });
});

describe('line-loss alerts through the alerts service', () => {
  it('a district alert raised by the line-loss job is an episode on its supply meter, in the active set, cleared at the qualified day', async () => {
    const { linelossAlertsSink } = await import('../../src/daemon/lineloss.js');
    const alerts = service();
    const sink = linelossAlertsSink(alerts);
    const base = {
      alertId: 'lineloss-d1-high-2026-11-28',
      meter: 'room-101',
      district: 'd1',
      kind: 'line-loss-high' as const,
      severity: 'warning' as const,
    };
    store.transaction((tx) => sink(tx, { ...base, state: 'raised', ts: '2026-12-01T00:20:00Z', evidence: { alertAfterDays: 3 } }));
    expect(alerts.list()).toEqual([
      expect.objectContaining({
        meterId: 'room-101',
        kind: 'line-loss-high',
        evidence: expect.objectContaining({ district: 'd1', alertAfterDays: 3 }),
      }),
    ]);
    const active = store.outbox
      .peek({ limit: 100 })
      .filter((m) => m.topic === ACTIVE_ALERTS_TOPIC)
      .at(-1)!;
    expect(JSON.parse(active.payload).alerts.map((a: { kind: string }) => a.kind)).toEqual(['line-loss-high']);
    store.transaction((tx) => sink(tx, { ...base, state: 'cleared', ts: '2026-12-02T00:20:00Z', evidence: { why: 'qualified again' } }));
    expect(alerts.activeCount()).toBe(0);
    expect(alertMessages().map((m) => `${m.kind}:${m.state}`)).toEqual(['line-loss-high:raised', 'line-loss-high:cleared']);
  });
});
