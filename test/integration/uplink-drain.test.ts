import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.js';
import { enqueue, openStore, type Store } from '../../src/store/index.js';
import { OutboxDrain } from '../../src/uplink/drain.js';
import { MqttSession } from '../../src/uplink/session.js';
import {
  clearRetained,
  eventually,
  startTestBroker,
  testMqttSettings,
  uniqueId,
  watchTopics,
  type TestBroker,
  type TopicWatcher,
} from '../helpers/broker.js';
import { startTcpCut, type TcpCut } from '../helpers/tcp-cut.js';

const BIRTH = () => ({ version: '0.0.0-test', startedAt: '2025-03-01T08:00:00.000Z', buses: [] });

let dir: string;
let store: Store;
let broker: TestBroker;
let relay: TcpCut;
let watcher: TopicWatcher;
let session: MqttSession;
let drain: OutboxDrain | undefined;
let gatewayId: string;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'meterd-uplink-drain-'));
  store = openStore({ path: join(dir, 'meterd.db'), clock: systemClock });
  broker = await startTestBroker();
  relay = await startTcpCut(broker.url);
  gatewayId = uniqueId('gw');
  watcher = await watchTopics(broker.url, `meterd/${gatewayId}/#`);
});

afterEach(async () => {
  await drain?.stop({ timeoutMs: 1_000 });
  drain = undefined;
  await session.close({ timeoutMs: 1_000 });
  await clearRetained(broker.url, [session.topics.status]);
  await watcher.close();
  await relay.close();
  await broker.close();
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

async function connectGateway(inflight = 32): Promise<void> {
  session = new MqttSession({ mqtt: testMqttSettings(relay.url, { inflight }), gatewayId, birth: BIRTH });
  session.start();
  await session.waitConnected({ timeoutMs: 10_000 });
  await watcher.waitFor(() => watcher.json(session.topics.status).length > 0, 'the birth message');
}

function enqueueReadings(count: number, meters: readonly string[]): void {
  store.transaction((tx) => {
    for (let n = 0; n < count; n++) {
      const meter = meters[n % meters.length] ?? 'room-101';
      enqueue(tx, { topic: `meters/${meter}/readings`, class: 'telemetry', payload: { meter, n } });
    }
  });
}

const readingsSeen = () => watcher.messages.filter((m) => m.topic.endsWith('/readings'));

describe('OutboxDrain', () => {
  it('publishes outbox rows in id order under meterd/<gatewayId>/ at QoS 1, and deletes each only after its PUBACK', async () => {
    await connectGateway();
    relay.holdReplies();
    enqueueReadings(10, ['room-101', 'room-102']);
    drain = new OutboxDrain({ outbox: store.outbox, session });
    drain.start();

    await watcher.waitFor(() => readingsSeen().length === 10, 'ten readings at the station');
    // The broker has them all, but the gateway has not heard back: every row is still in the outbox.
    expect(store.outbox.counts().total).toBe(10);
    expect(drain.stats()).toMatchObject({ published: 10, acked: 0, inFlight: 10 });

    relay.releaseReplies();
    await eventually(() => store.outbox.counts().total === 0, 'the outbox to empty after the PUBACKs');

    const seen = readingsSeen();
    expect(seen.map((m) => (JSON.parse(m.text) as { n: number }).n)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(seen.map((m) => m.topic)).toEqual(
      Array.from({ length: 10 }, (_, n) => `meterd/${gatewayId}/meters/${n % 2 === 0 ? 'room-101' : 'room-102'}/readings`),
    );
    expect(seen.every((m) => m.qos === 1 && !m.retain)).toBe(true);
    expect(drain.stats()).toMatchObject({ published: 10, acked: 10, inFlight: 0, pending: 0, lastError: null });
  });

  it('keeps no more than `inflight` messages waiting for their PUBACK', async () => {
    await connectGateway(8);
    relay.holdReplies();
    enqueueReadings(50, ['room-101']);
    drain = new OutboxDrain({ outbox: store.outbox, session, inflight: 8 });
    drain.start();

    await watcher.waitFor(() => readingsSeen().length === 8, 'the first window of eight');
    expect(drain.stats()).toMatchObject({ published: 8, inFlight: 8, pending: 50 });

    relay.releaseReplies();
    await eventually(() => store.outbox.counts().total === 0, 'the backlog of fifty to drain');
    expect(readingsSeen().map((m) => (JSON.parse(m.text) as { n: number }).n)).toEqual(Array.from({ length: 50 }, (_, n) => n));
  });

  it('picks up rows committed later as soon as notify() is called', async () => {
    await connectGateway();
    drain = new OutboxDrain({ outbox: store.outbox, session, pollIntervalMs: 3_600_000 });
    drain.start();
    enqueueReadings(3, ['room-101']);
    drain.notify();
    await watcher.waitFor(() => readingsSeen().length === 3, 'three readings after notify()');
    await eventually(() => store.outbox.counts().total === 0, 'the outbox to empty');
  });

  it('stop() waits for the PUBACKs in flight, so a clean shutdown deletes what the broker has', async () => {
    await connectGateway();
    relay.holdReplies();
    enqueueReadings(5, ['room-101']);
    drain = new OutboxDrain({ outbox: store.outbox, session });
    drain.start();
    await watcher.waitFor(() => readingsSeen().length === 5, 'five readings at the broker');

    const stopped = drain.stop({ timeoutMs: 10_000 });
    relay.releaseReplies();
    await stopped;

    expect(store.outbox.counts().total).toBe(0);
    expect(drain.stats()).toMatchObject({ acked: 5, inFlight: 0 });
  });

  it('leaves unacknowledged rows in the outbox when stop() gives up waiting, to be sent after the next start', async () => {
    await connectGateway();
    relay.holdReplies();
    enqueueReadings(4, ['room-101']);
    drain = new OutboxDrain({ outbox: store.outbox, session });
    drain.start();
    await watcher.waitFor(() => readingsSeen().length === 4, 'four readings at the broker');

    await drain.stop({ timeoutMs: 50 });
    expect(store.outbox.counts().total).toBe(4);

    relay.releaseReplies();
    drain = new OutboxDrain({ outbox: store.outbox, session });
    drain.start();
    // At least once: the station sees them twice and drops the repeats.
    await watcher.waitFor(() => readingsSeen().length === 8, 'the four readings a second time');
    await eventually(() => store.outbox.counts().total === 0, 'the second drain to delete them');
    expect(readingsSeen().map((m) => (JSON.parse(m.text) as { n: number }).n)).toEqual([0, 1, 2, 3, 0, 1, 2, 3]);
  });
});
