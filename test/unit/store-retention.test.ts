import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import {
  enqueue,
  insertReadings,
  openStore,
  type OutboxClass,
  type Reading,
  type Store,
  type StoreOptions,
} from '../../src/store/index.js';

const DAY = 86_400_000;
let dir: string;
let path: string;
let clock: ManualClock;
const opened: Store[] = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'meterd-retention-'));
  path = join(dir, 'meterd.db');
  clock = new ManualClock(Date.UTC(2025, 2, 1, 8, 0, 0));
});

afterEach(() => {
  for (const store of opened.splice(0)) store.close();
  rmSync(dir, { recursive: true, force: true });
});

function open(options: Partial<StoreOptions> = {}): Store {
  const store = openStore({ path, clock, ...options });
  opened.push(store);
  return store;
}

function reopen(store: Store, options: Partial<StoreOptions>): Store {
  store.close();
  return open(options);
}

const reading = (meterId: string, takenAt: number): Reading => ({
  meterId,
  takenAt,
  values: Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`point_${i}`, { v: 1000 + i, unit: 'kWh' }])),
});

/** A poll cycle: one reading per meter and its telemetry message, like the poller writes them. */
function pollCycle(store: Store, meters: number): void {
  store.transaction((tx) => {
    for (let m = 0; m < meters; m++) {
      const r = reading(`room-${m}`, clock.now());
      insertReadings(tx, [r]);
      enqueue(tx, { topic: `meters/${r.meterId}/readings`, class: 'telemetry', payload: r, seqStream: 'readings' });
    }
  });
  clock.advance(60_000);
}

function enqueueEachKeptClass(store: Store, times: number): void {
  const kept: OutboxClass[] = ['state', 'credit', 'alert', 'report', 'reply'];
  for (let i = 0; i < times; i++) {
    store.transaction(
      (tx) => {
        for (const cls of kept) enqueue(tx, { topic: `meters/room-${i}/${cls}`, class: cls, payload: { i, note: 'x'.repeat(200) } });
      },
      { durable: true },
    );
  }
}

const telemetrySeqs = (store: Store) =>
  store.outbox
    .peek({ limit: 1_000_000 })
    .filter((m) => m.class === 'telemetry')
    .map((m) => (JSON.parse(m.payload) as { seq: number }).seq);

describe('retention window', () => {
  it('deletes readings older than the window, counts them, and leaves undelivered messages alone', () => {
    let store = open({ telemetryRetentionDays: 7 });
    for (let i = 0; i < 10; i++) pollCycle(store, 3);
    clock.advance(6 * DAY);
    for (let i = 0; i < 5; i++) pollCycle(store, 3);
    clock.advance(2 * DAY);
    store = reopen(store, { telemetryRetentionDays: 7 });

    const result = store.enforceLimits();

    expect(result).toMatchObject({ prunedReadings: 30, prunedTelemetry: 0, overCap: false });
    expect(store.readings.since('room-0', 0)).toHaveLength(5);
    expect(store.outbox.counts().byClass.telemetry).toBe(45);
    expect(store.limitCounters).toEqual({ prunedTelemetry: 0, prunedReadings: 30 });
  });
});

describe('disk cap', () => {
  it('drops the oldest telemetry, messages and readings alike, to get under the cap; keeps every other class; counts what it dropped', () => {
    let store = open();
    enqueueEachKeptClass(store, 20);
    for (let i = 0; i < 200; i++) pollCycle(store, 20);
    const before = store.outbox.counts();
    store = reopen(store, {}); // folds the WAL into the file, so what is measured is data the cap can act on
    const uncapped = store.enforceLimits().usedBytes;

    store = reopen(store, { maxBytes: Math.floor(uncapped / 2) });
    const result = store.enforceLimits();

    const after = store.outbox.counts();
    expect(result.overCap).toBe(false);
    expect(result.usedBytes).toBeLessThanOrEqual(Math.floor(uncapped / 2));
    expect(result.prunedTelemetry).toBeGreaterThan(0);
    expect(after.byClass.telemetry).toBe(before.byClass.telemetry - result.prunedTelemetry);
    expect({ ...after.byClass, telemetry: 0 }).toEqual({ ...before.byClass, telemetry: 0 });
    // The newest telemetry is what remains: a contiguous tail of seq, so the station sees one gap at the front.
    const seqs = telemetrySeqs(store);
    expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => before.byClass.telemetry - seqs.length + 1 + i));
    expect(store.limitCounters.prunedTelemetry).toBe(result.prunedTelemetry);
    // Readings go in the same time slices, so the gateway keeps the same recent window the station will receive.
    const oldestMessage = store.outbox.peek({ limit: 1_000 }).find((m) => m.class === 'telemetry');
    expect(store.readings.since('room-0', 0)[0]?.takenAt).toBeGreaterThanOrEqual(oldestMessage?.createdAt ?? Infinity);
  });

  it('keeps undelivered credit, alerts, reports, replies and state even when the cap is far too small', () => {
    let store = open();
    enqueueEachKeptClass(store, 50);
    for (let i = 0; i < 20; i++) pollCycle(store, 10);
    const before = store.outbox.counts();

    store = reopen(store, { maxBytes: 4096 });
    const result = store.enforceLimits();

    expect(result).toMatchObject({ prunedTelemetry: 200, prunedReadings: 200, overCap: true });
    expect(store.outbox.counts().byClass).toEqual({ ...before.byClass, telemetry: 0 });
    expect(store.integrityCheck().ok).toBe(true);
  });

  it('deletes local reading history that is older than the undelivered messages before touching those messages', () => {
    let store = open();
    for (let i = 0; i < 300; i++) {
      store.transaction((tx) =>
        insertReadings(
          tx,
          Array.from({ length: 20 }, (_, m) => reading(`room-${m}`, clock.now())),
        ),
      );
      clock.advance(60_000);
    }
    for (let i = 0; i < 10; i++) pollCycle(store, 20);
    store = reopen(store, {}); // folds the WAL into the file, so what is measured is data the cap can act on
    const uncapped = store.enforceLimits().usedBytes;

    store = reopen(store, { maxBytes: Math.floor(uncapped * 0.6) });
    const result = store.enforceLimits();

    expect(result.prunedReadings).toBeGreaterThan(0);
    expect(result.prunedTelemetry).toBe(0);
    expect(store.outbox.counts().byClass.telemetry).toBe(200);
  });

  it('warns when it drops undelivered telemetry, since the station will see a seq gap', () => {
    const lines: { level: number; msg: string; prunedTelemetry?: number }[] = [];
    const logger = pino({ level: 'warn' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
    let store = open();
    for (let i = 0; i < 20; i++) pollCycle(store, 10);

    store = reopen(store, { maxBytes: 4096, logger });
    const result = store.enforceLimits();

    expect(lines).toContainEqual(
      expect.objectContaining({ level: 40, prunedTelemetry: result.prunedTelemetry, msg: expect.stringContaining('seq') }),
    );
  });

  it('does nothing while the store is under its cap', () => {
    let store = open();
    for (let i = 0; i < 5; i++) pollCycle(store, 10);
    store = reopen(store, { maxBytes: 100 * 1024 * 1024 });
    expect(store.enforceLimits()).toMatchObject({ prunedTelemetry: 0, prunedReadings: 0, overCap: false });
    expect(store.outbox.counts().byClass.telemetry).toBe(50);
  });
});
