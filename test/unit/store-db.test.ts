import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import {
  enqueue,
  insertReadings,
  MIGRATIONS,
  openStore,
  StoreError,
  upsertMeterState,
  type Reading,
  type Store,
  type Tx,
} from '../../src/store/index.js';
import { migrate } from '../../src/store/migrations.js';
import { silentLogger } from '../../src/log.js';

let dir: string;
let path: string;
let clock: ManualClock;
const opened: Store[] = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'meterd-store-'));
  path = join(dir, 'meterd.db');
  clock = new ManualClock(Date.UTC(2025, 2, 1, 8, 0, 0));
});

afterEach(() => {
  for (const store of opened.splice(0)) store.close();
  rmSync(dir, { recursive: true, force: true });
});

function open(): Store {
  const store = openStore({ path, clock });
  opened.push(store);
  return store;
}

function expectStoreError(action: () => unknown, code: string): StoreError {
  try {
    action();
  } catch (error) {
    expect(error).toBeInstanceOf(StoreError);
    expect((error as StoreError).code).toBe(code);
    return error as StoreError;
  }
  throw new Error(`expected a StoreError ${code}, nothing was thrown`);
}

const reading = (meterId: string, takenAt: number, kwh: number): Reading => ({
  meterId,
  takenAt,
  values: { energy_import: { v: kwh, unit: 'kWh' }, voltage_a: { v: 229.8, unit: 'V' } },
});

describe('opening the store', () => {
  it('runs the database in WAL mode with foreign keys on and synchronous=NORMAL', () => {
    const store = open();
    // The page cache is bounded at 2 MB (better-sqlite3's build would let it grow to 16 MB: issue 18's native growth).
    expect(store.settings()).toEqual({
      journalMode: 'wal',
      synchronous: 'NORMAL',
      foreignKeys: true,
      busyTimeoutMs: 5000,
      pageCacheKib: 2048,
      mmapBytes: 0,
    });
    const other = new Database(path, { readonly: true });
    expect(other.pragma('journal_mode', { simple: true })).toBe('wal');
    other.close();
  });

  it('creates the folder of a database path that does not exist yet', () => {
    path = join(dir, 'data', 'nested', 'meterd.db');
    expect(open().integrityCheck()).toEqual({ ok: true, messages: ['ok'] });
  });

  it('applies each migration once, and reopening applies none again', () => {
    const firstOpen = clock.now();
    open().close();
    clock.advance(86_400_000);
    const store = open();
    expect(store.schemaVersion).toBe(MIGRATIONS.length);
    store.close();

    const db = new Database(path, { readonly: true });
    const rows = db.prepare('SELECT version, name, applied_at FROM schema_migrations ORDER BY version').all();
    db.close();
    expect(rows).toEqual(MIGRATIONS.map((m) => ({ version: m.version, name: m.name, applied_at: firstOpen })));
  });

  it('applies only the migration appended since the last open, whether SQL or a function', () => {
    open().close();
    const db = new Database(path);
    const next = [
      ...MIGRATIONS,
      { version: MIGRATIONS.length + 1, name: 'jobs', up: 'CREATE TABLE jobs (id INTEGER PRIMARY KEY) STRICT' },
      {
        version: MIGRATIONS.length + 2,
        name: 'seed',
        up: (d: Database.Database) => void d.prepare('INSERT INTO jobs DEFAULT VALUES').run(),
      },
    ];
    expect(migrate(db, next, clock, silentLogger)).toEqual({ from: MIGRATIONS.length, to: MIGRATIONS.length + 2 });
    expect(migrate(db, next, clock, silentLogger)).toEqual({ from: MIGRATIONS.length + 2, to: MIGRATIONS.length + 2 });
    expect(db.prepare('SELECT count(*) FROM jobs').pluck().get()).toBe(1);
    db.close();
  });

  it('rolls a failing migration back and leaves the version where it was', () => {
    open().close();
    const db = new Database(path);
    const broken = [
      ...MIGRATIONS,
      {
        version: MIGRATIONS.length + 1,
        name: 'half done',
        up: (d: Database.Database) => {
          d.exec('CREATE TABLE half (x INTEGER)');
          throw new Error('disk said no');
        },
      },
    ];
    const error = expectStoreError(() => migrate(db, broken, clock, silentLogger), 'STORE_MIGRATION_FAILED');
    expect(error.message).toContain('half done');
    expect(error.message).toContain('disk said no');
    expect(db.prepare("SELECT count(*) FROM sqlite_master WHERE name = 'half'").pluck().get()).toBe(0);
    expect(db.prepare('SELECT max(version) FROM schema_migrations').pluck().get()).toBe(MIGRATIONS.length);
    db.close();
  });

  it('rejects a migration list that is not numbered 1, 2, 3, …', () => {
    const db = new Database(path);
    const error = expectStoreError(
      () => migrate(db, [{ version: 2, name: 'skips one', up: 'SELECT 1' }], clock, silentLogger),
      'STORE_MIGRATION_FAILED',
    );
    expect(error.message).toContain('skips one');
    db.close();
  });

  it('refuses a database written by a newer meterd with STORE_TOO_NEW and leaves it untouched', () => {
    open().close();
    const db = new Database(path);
    db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(99, 'from the future', 0);
    db.close();

    const error = expectStoreError(() => openStore({ path, clock }), 'STORE_TOO_NEW');
    expect(error.message).toContain('99 from the future');

    const after = new Database(path, { readonly: true });
    expect(after.prepare('SELECT max(version) FROM schema_migrations').pluck().get()).toBe(99);
    after.close();
  });

  it('refuses a file that is not a SQLite database with STORE_OPEN_FAILED', () => {
    writeFileSync(path, 'meters: [room-101, room-102]\n'.repeat(200));
    expectStoreError(() => openStore({ path, clock }), 'STORE_OPEN_FAILED');
  });

  it('rejects a retention window or cap that is not positive', () => {
    expect(() => openStore({ path, clock, telemetryRetentionDays: 0 })).toThrow('telemetryRetentionDays is not greater than 0');
    expect(() => openStore({ path, clock, maxBytes: -1 })).toThrow('maxBytes is not a positive whole number of bytes');
  });

  it('reports integrity_check ok on a healthy database', () => {
    expect(open().integrityCheck()).toEqual({ ok: true, messages: ['ok'] });
  });

  it('refuses work after close with STORE_CLOSED, and closing twice is harmless', () => {
    const store = open();
    store.close();
    store.close();
    expectStoreError(() => store.outbox.peek({ limit: 1 }), 'STORE_CLOSED');
    expectStoreError(() => store.transaction(() => undefined), 'STORE_CLOSED');
  });
});

describe('transactions', () => {
  it('commits readings and their outbox messages together', () => {
    const store = open();
    store.transaction((tx) => {
      insertReadings(tx, [reading('room-101', clock.now(), 1234.5)]);
      enqueue(tx, { topic: 'meters/room-101/readings', class: 'telemetry', payload: { kwh: 1234.5 }, seqStream: 'readings' });
    });
    expect(store.readings.latest('room-101')?.values.energy_import).toEqual({ v: 1234.5, unit: 'kWh' });
    expect(store.outbox.peek({ limit: 10 }).map((m) => JSON.parse(m.payload))).toEqual([{ seq: 1, kwh: 1234.5 }]);
  });

  it('rolls back readings, messages and the seq they took when the callback throws', () => {
    const store = open();
    const poll = (kwh: number, fail: boolean) =>
      store.transaction((tx) => {
        insertReadings(tx, [reading('room-101', clock.now(), kwh)]);
        enqueue(tx, { topic: 'meters/room-101/readings', class: 'telemetry', payload: { kwh }, seqStream: 'readings' });
        if (fail) throw new Error('meter reply failed its checksum');
      });
    poll(1, false);
    expect(() => poll(2, true)).toThrow('meter reply failed its checksum');
    poll(3, false);

    expect(store.readings.since('room-101', 0).map((r) => r.values.energy_import)).toEqual([
      { v: 1, unit: 'kWh' },
      { v: 3, unit: 'kWh' },
    ]);
    expect(store.outbox.peek({ limit: 10 }).map((m) => JSON.parse(m.payload))).toEqual([
      { seq: 1, kwh: 1 },
      { seq: 2, kwh: 3 },
    ]);
  });

  it('commits a durable transaction with synchronous=FULL and returns the connection to NORMAL', () => {
    const store = open();
    const during = store.transaction(
      (tx) => {
        enqueue(tx, { topic: 'meters/room-101/credit', class: 'credit', payload: { requestId: 'r-1', amount: 50 } });
        return store.settings().synchronous;
      },
      { durable: true },
    );
    expect(during).toBe('FULL');
    expect(store.settings().synchronous).toBe('NORMAL');

    expect(() =>
      store.transaction(
        () => {
          throw new Error('ESAM refused the MAC');
        },
        { durable: true },
      ),
    ).toThrow('ESAM refused');
    expect(store.settings().synchronous).toBe('NORMAL');
    expect(store.outbox.counts().byClass.credit).toBe(1);
  });

  it('refuses a Tx used after its transaction ended', () => {
    const store = open();
    let kept: Tx | undefined;
    store.transaction((tx) => {
      kept = tx;
    });
    expectStoreError(() => insertReadings(kept as Tx, [reading('room-101', clock.now(), 1)]), 'STORE_TX_MISUSE');
    expect(store.readings.latest('room-101')).toBeNull();
  });

  it('refuses a transaction started inside another one', () => {
    const store = open();
    expectStoreError(() => store.transaction(() => store.transaction(() => 1)), 'STORE_TX_MISUSE');
  });
});

describe('readings', () => {
  it('stores a point the meter did not answer as an error, never as a value', () => {
    const store = open();
    store.transaction((tx) =>
      insertReadings(tx, [
        { meterId: 'room-101', takenAt: clock.now(), values: { energy_import: { v: 10, unit: 'kWh' }, balance: { error: 'timeout' } } },
      ]),
    );
    expect(store.readings.latest('room-101')?.values).toEqual({ energy_import: { v: 10, unit: 'kWh' }, balance: { error: 'timeout' } });
  });

  it('refuses NaN or Infinity, which JSON would turn into a silent null', () => {
    const store = open();
    const error = expectStoreError(
      () =>
        store.transaction((tx) =>
          insertReadings(tx, [{ meterId: 'room-101', takenAt: clock.now(), values: { power: { v: Number.NaN, unit: 'kW' } } }]),
        ),
      'STORE_INVALID_VALUE',
    );
    expect(error.message).toContain('power');
  });

  it('gives the latest reading by meter time and the readings of one meter since a time, oldest first', () => {
    const store = open();
    const t = clock.now();
    store.transaction((tx) =>
      insertReadings(tx, [
        reading('room-101', t + 2_000, 3),
        reading('room-101', t, 1),
        reading('room-102', t + 5_000, 99),
        reading('room-101', t + 1_000, 2),
      ]),
    );
    expect(store.readings.latest('room-101')?.takenAt).toBe(t + 2_000);
    expect(store.readings.latest('room-999')).toBeNull();
    expect(store.readings.since('room-101', t + 1_000).map((r) => r.takenAt)).toEqual([t + 1_000, t + 2_000]);
    expect(store.readings.since('room-101', t, 1).map((r) => r.takenAt)).toEqual([t]);
  });
});

describe('meter state', () => {
  it('fills defaults on first sight, changes only the named fields later, and clears a field set to null', () => {
    const store = open();
    const first = clock.now();
    store.transaction((tx) => upsertMeterState(tx, 'room-101', { lastAttemptAt: first, consecutiveFailures: 1 }));
    expect(store.meterStates.get('room-101')).toEqual({
      meterId: 'room-101',
      online: false,
      consecutiveFailures: 1,
      lastGoodReadAt: null,
      lastAttemptAt: first,
      relayState: null,
      balance: null,
      updatedAt: first,
    });

    clock.advance(60_000);
    store.transaction((tx) =>
      upsertMeterState(tx, 'room-101', {
        online: true,
        consecutiveFailures: 0,
        lastGoodReadAt: clock.now(),
        relayState: 'closed',
        balance: { remaining: 12.5, purchaseCount: 7 },
      }),
    );
    clock.advance(60_000);
    store.transaction((tx) => upsertMeterState(tx, 'room-101', { relayState: null }));

    expect(store.meterStates.get('room-101')).toEqual({
      meterId: 'room-101',
      online: true,
      consecutiveFailures: 0,
      lastGoodReadAt: first + 60_000,
      lastAttemptAt: first,
      relayState: null,
      balance: { remaining: 12.5, purchaseCount: 7 },
      updatedAt: first + 120_000,
    });
  });

  it('lists every meter by id', () => {
    const store = open();
    store.transaction((tx) => {
      upsertMeterState(tx, 'room-102', { online: true });
      upsertMeterState(tx, 'room-101', { online: false });
    });
    expect(store.meterStates.list().map((s) => [s.meterId, s.online])).toEqual([
      ['room-101', false],
      ['room-102', true],
    ]);
    expect(store.meterStates.get('room-999')).toBeNull();
  });
});
