import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { buildProgram } from '../../src/cli/main.js';
import { ManualClock, systemClock, type Clock } from '../../src/clock.js';
import { enforceStoreLimits } from '../../src/daemon/gateway.js';
import { loadProfiles } from '../../src/profiles/registry.js';
import { BooksPublisher } from '../../src/services/books/index.js';
import { CreditService } from '../../src/services/credit.js';
import { Poller, type MeterReader } from '../../src/services/poller.js';
import { enqueue, insertReadings, openLedgerEntry, openStore, type PointValue, type Store } from '../../src/store/index.js';
import { OutboxDrain } from '../../src/uplink/drain.js';
import { MqttSession } from '../../src/uplink/session.js';
import { eventually, startTestBroker, testMqttSettings, uniqueId, watchTopics, type TestBroker } from '../helpers/broker.js';

// Each writer the daemon runs from a timer, against a store on a real full disk: a 16 MiB tmpfs filled with dd right
// after the store was opened with an empty WAL, so that every write needs space and fails with SQLITE_FULL. Each one
// must log, keep its work for later where it has any, and carry on; none may throw out of its timer (vitest fails a
// test on an uncaught exception or unhandled rejection). Needs root for `mount`; fails, never skips, without it.

const root = mkdtempSync(join(tmpdir(), 'meterd-full-writers-'));
const mnt = join(root, 'tmpfs');
let broker: TestBroker;
const open: Store[] = [];

beforeAll(async () => {
  mkdirSync(mnt, { recursive: true });
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=16m', 'tmpfs', mnt], { stdio: 'pipe' });
  broker = await startTestBroker();
});
afterEach(() => {
  for (const s of open.splice(0)) s.close();
  rmSync(join(mnt, 'fill'), { force: true });
});
afterAll(async () => {
  execFileSync('umount', [mnt]);
  rmSync(root, { recursive: true, force: true });
  await broker?.close();
});

function capture(): { logger: pino.Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  return { logger: pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) }), lines };
}

/** A store whose `prepare` ran with space, reopened with an empty WAL, on a file system then filled to the last byte. */
function fullStore(name: string, logger: pino.Logger, clock: Clock = systemClock, prepare?: (s: Store) => void, maxBytes?: number): Store {
  const path = join(mnt, name, 'meterd.db');
  const first = openStore({ path, clock });
  prepare?.(first);
  first.close();
  const store = openStore({ path, clock, logger, maxBytes, telemetryRetentionDays: 1 });
  open.push(store);
  try {
    execFileSync('dd', ['if=/dev/zero', `of=${join(mnt, 'fill')}`, 'bs=64k'], { stdio: 'ignore' });
  } catch {
    // ENOSPC
  }
  const fs = statfsSync(mnt);
  expect(fs.bavail * fs.bsize).toBe(0);
  return store;
}

function freeSpace(): void {
  rmSync(join(mnt, 'fill'));
}

class Answering implements MeterReader {
  read(names: readonly string[]): Promise<Map<string, PointValue>> {
    return Promise.resolve(new Map(names.map((n) => [n, { v: 230.1, unit: 'V' }])));
  }
}

describe('timer-driven writers on a full disk', () => {
  it('Poller.flush: holds a bounded batch, says so once, stores what it held when space returns, seq without gap', async () => {
    const { logger, lines } = capture();
    const store = fullStore('poller', logger);
    const profile = loadProfiles().get('dlt645-2007-single-phase-prepaid')!;
    const fast = { ...profile, groups: [{ name: 'instant', intervalMs: 20, points: ['voltage.a'] }] };
    const poller = new Poller({
      targets: Array.from({ length: 10 }, (_, i) => ({ meterId: `m${i}`, busId: 'bus1', profile: fast, reader: new Answering() })),
      store,
      clock: systemClock,
      timeZone: 'Asia/Shanghai',
      offlineAfter: 3,
      offlineProbeMs: 60_000,
      batchMs: 10,
      logger,
    });
    poller.start();
    try {
      await eventually(() => store.storage === 'full', 'the store to report full');
      // 10 meters every 20 ms for 6 s: more than the 1,000 results it holds.
      await new Promise((r) => setTimeout(r, 6_000));
      expect(poller.stats().readingsStored).toBe(0);
      expect(lines.filter((l) => l.code === 'STORE_FULL')).toHaveLength(1);
      expect(lines.filter((l) => l.msg === 'poll results cannot be stored; holding them in memory and retrying')).toHaveLength(1);
      const freedAt = Date.now();
      freeSpace();
      await eventually(() => poller.stats().readingsStored > 0, 'stored after space returned', 10_000);
      expect(store.storage).toBe('ok');
      expect(poller.stats().unstored).toBeGreaterThan(0);
      // What was held went in with the time it was read at, before the space came back.
      const held = store.readings.since('m0', 0, 100_000).filter((r) => r.takenAt < freedAt);
      expect(held.length).toBeGreaterThan(0);
    } finally {
      await poller.stop();
    }
    const seqs = store.outbox
      .peek({ limit: 100_000 })
      .filter((m) => m.class === 'telemetry')
      .map((m) => (JSON.parse(m.payload) as { seq: number }).seq);
    expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => i + 1));
  });

  it('OutboxDrain: publishes while acknowledged rows cannot be deleted, sends none of them twice, deletes them when space returns', async () => {
    const { logger, lines } = capture();
    const store = fullStore('drain', logger, systemClock, (s) =>
      s.transaction((tx) => {
        for (let i = 0; i < 50; i++)
          enqueue(tx, { topic: `meters/d${i % 5}/readings`, class: 'telemetry', payload: { i }, seqStream: 'readings' });
      }),
    );
    const gatewayId = uniqueId('gw-drain-full');
    const watcher = await watchTopics(broker.url, `meterd/${gatewayId}/#`);
    const session = new MqttSession({
      mqtt: testMqttSettings(broker.url),
      gatewayId,
      birth: () => ({ version: '0.0.0-test', startedAt: '2026-12-01T00:00:00.000Z', buses: [] }),
    });
    const drain = new OutboxDrain({ outbox: store.outbox, session, logger, pollIntervalMs: 100 });
    session.start();
    drain.start();
    try {
      await watcher.waitFor(() => watcher.messages.filter((m) => m.topic.endsWith('/readings')).length >= 50, 'all 50 published');
      // A dozen poll rounds: a drain that re-read undeleted rows would send them again at each.
      await new Promise((r) => setTimeout(r, 1_500));
      expect(watcher.messages.filter((m) => m.topic.endsWith('/readings'))).toHaveLength(50);
      expect(store.outbox.counts().total).toBe(50);
      expect(lines.filter((l) => l.msg === 'cannot delete acknowledged outbox rows; retrying at each pump')).toHaveLength(1);
      freeSpace();
      await eventually(() => store.outbox.counts().total === 0, 'the acknowledged rows deleted');
      expect(watcher.messages.filter((m) => m.topic.endsWith('/readings'))).toHaveLength(50);
    } finally {
      await drain.stop();
      await session.close();
      await watcher.close();
    }
  });

  it('BooksPublisher: a daily report that cannot be stored is logged and tried again at the next round', () => {
    const { logger, lines } = capture();
    const clock = new ManualClock(Date.parse('2026-12-02T02:00:00Z'));
    const store = fullStore('books', logger, clock);
    const books = new BooksPublisher({ store, clock, gateway: { id: 'gw', timeZone: 'Asia/Shanghai' }, meters: [], logger });
    expect(() => books.start()).not.toThrow();
    books.stop();
    expect(lines.find((l) => l.msg === 'daily report could not be published; will try again')).toMatchObject({
      err: { code: 'SQLITE_FULL' },
    });
    freeSpace();
    expect(books.publishDue()).toEqual(['2026-12-01']);
  });

  it('CreditService.settleOpen (the gateway’s 60-second timer): an entry it cannot move stays open, settled once space returns', async () => {
    const { logger, lines } = capture();
    const store = fullStore('credit', logger, systemClock, (s) =>
      s.transaction((tx) =>
        openLedgerEntry(tx, { requestId: 'load-1', channel: 'remote', meterId: 'gone', unit: 'energy', amount: 1250, request: {} }),
      ),
    );
    const credit = new CreditService({ store, clock: systemClock, ports: new Map(), logger });
    await expect(credit.settleOpen()).resolves.toEqual([]);
    expect(lines.find((l) => l.msg === 'could not settle yet; will try again')).toMatchObject({ requestId: 'load-1' });
    expect(store.ledger.open().map((e) => e.requestId)).toEqual(['load-1']);
    freeSpace();
    expect((await credit.settleOpen()).map((e) => [e.requestId, e.state])).toEqual([['load-1', 'failed']]);
  });

  it('retention and the disk cap (the gateway’s 10-minute timer): logged, not thrown', () => {
    const { logger, lines } = capture();
    const clock = new ManualClock(Date.parse('2026-12-02T02:00:00Z'));
    const store = fullStore(
      'limits',
      logger,
      clock,
      (s) =>
        s.transaction((tx) =>
          insertReadings(
            tx,
            Array.from({ length: 200 }, (_, i) => ({
              meterId: 'old',
              takenAt: clock.now() - 3 * 86_400_000 + i,
              values: { 'voltage.a': { v: i, unit: 'V' } },
            })),
          ),
        ),
      64 * 1024,
    );
    expect(() => enforceStoreLimits(store, logger)).not.toThrow();
    expect(lines.find((l) => l.msg === 'storage limits could not be enforced')).toMatchObject({ err: { code: 'SQLITE_FULL' } });
    freeSpace();
    enforceStoreLimits(store, logger);
    expect(store.readings.latest('old')).toBeNull();
  });
});

describe('meterd doctor', () => {
  it('fails the WAL check when the free space is below what the WAL needs before its checkpoint', async () => {
    fullStore('doctor', capture().logger).close();
    const config = join(root, 'doctor.yaml');
    writeFileSync(
      config,
      `gateway: { id: gw-doctor-full, dataDir: ${join(mnt, 'doctor')} }\nmqtt: { url: "${broker.url}", protocolVersion: 4 }\n`,
    );
    const out: string[] = [];
    const program = await buildProgram({ stdin: Readable.from([]), out: (l) => out.push(l) });
    await expect(program.parseAsync(['doctor', '-c', config], { from: 'user' })).rejects.toMatchObject({ code: 'DOCTOR_FAILED' });
    expect(out.find((l) => l.includes('room for the WAL'))).toMatch(
      /^FAIL {2}room for the WAL at .*: \d+ KiB free, the WAL needs \d+ KiB more to reach its checkpoint size \(\d+ KiB\): free space or move gateway.dataDir/,
    );
    freeSpace();
    const again: string[] = [];
    const program2 = await buildProgram({ stdin: Readable.from([]), out: (l) => again.push(l) });
    await program2.parseAsync(['doctor', '-c', config], { from: 'user' }).catch(() => undefined);
    expect(again.find((l) => l.includes('room for the WAL'))).toMatch(/^PASS/);
  });
});
