/**
 * A message the broker refuses for ever moves to the dead letters after mqtt.deadLetterAfter refusals, and never holds
 * up the rest of the outbox: brokers of the test's own that really refuse (Mosquitto with an ACL file or a message
 * size limit, over MQTT 5; aedes whose authorizePublish refuses, over MQTT 3.1.1, where refusing means closing the
 * connection).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.js';
import { loadGatewayConfig } from '../../src/config/index.js';
import { startGateway } from '../../src/daemon/gateway.js';
import { enqueue, openStore, type Store } from '../../src/store/index.js';
import { OutboxDrain, type DeadLetterEvent } from '../../src/uplink/drain.js';
import { MqttSession } from '../../src/uplink/session.js';
import { eventually, testMqttSettings, uniqueId, watchTopics, type TopicWatcher } from '../helpers/broker.js';
import { startRefusingAedes, startRefusingMosquitto, type RefusingBroker } from '../helpers/refusing-broker.js';
import { capturingLogger } from './commands-harness.js';

/** Anonymous clients may publish what a gateway publishes, and read everything: not `forbidden/…`. */
const ACL = [
  'topic readwrite meterd/+/status',
  'topic readwrite meterd/+/meters/#',
  'topic readwrite meterd/+/buses/#',
  'topic readwrite meterd/+/cmd/#',
  'topic readwrite meterd/+/hsm/#',
  'topic readwrite meterd/+/reports/#',
  'topic readwrite meterd/+/alerts/#',
  'topic read meterd/#',
];

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface Setup {
  readonly store: Store;
  readonly session: MqttSession;
  readonly drain: OutboxDrain;
  readonly watcher: TopicWatcher;
  readonly gatewayId: string;
  readonly deadLetters: DeadLetterEvent[];
}

async function setUp(
  broker: RefusingBroker,
  options: { protocolVersion: 4 | 5; deadLetterAfter: number; retryInitialMs: number },
): Promise<Setup> {
  const dir = mkdtempSync(join(tmpdir(), 'meterd-dead-letter-'));
  const store = openStore({ path: join(dir, 'meterd.db'), clock: systemClock });
  cleanups.push(() => {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const gatewayId = uniqueId('gw');
  const watcher = await watchTopics(broker.url, `meterd/${gatewayId}/#`);
  cleanups.push(() => watcher.close());
  const session = new MqttSession({
    mqtt: testMqttSettings(broker.url, { protocolVersion: options.protocolVersion }),
    gatewayId,
    birth: () => ({ version: '0.0.0-test', startedAt: '2025-03-01T08:00:00.000Z', buses: [] }),
    backoff: { initialMs: 10, maxMs: 100 },
  });
  const deadLetters: DeadLetterEvent[] = [];
  const drain = new OutboxDrain({
    outbox: store.outbox,
    session,
    deadLetterAfter: options.deadLetterAfter,
    retryBackoff: { initialMs: options.retryInitialMs, maxMs: options.retryInitialMs * 4 },
    onDeadLetter: (event) => deadLetters.push(event),
  });
  cleanups.push(async () => {
    await drain.stop({ timeoutMs: 1_000 });
    await session.close({ timeoutMs: 1_000 });
  });
  return { store, session, drain, watcher, gatewayId, deadLetters };
}

function readings(setup: Setup, meter: string): number[] {
  return setup.watcher.json<{ n: number }>(`meterd/${setup.gatewayId}/meters/${meter}/readings`).map((m) => m.n);
}

function enqueueReading(store: Store, meter: string, n: number, padding = 0): void {
  store.transaction((tx) =>
    enqueue(tx, { topic: `meters/${meter}/readings`, class: 'telemetry', payload: { meter, n, pad: 'x'.repeat(padding) } }),
  );
}

describe('a message the broker refuses for ever', () => {
  it('over MQTT 5 (Mosquitto, ACL: not authorised) is dead-lettered after deadLetterAfter refusals while later messages flow', async () => {
    const broker = await startRefusingMosquitto({ acl: ACL });
    cleanups.push(() => broker.close());
    const setup = await setUp(broker, { protocolVersion: 5, deadLetterAfter: 3, retryInitialMs: 20 });
    const { store, drain, session } = setup;
    enqueueReading(store, 'room-101', 1);
    store.transaction((tx) => enqueue(tx, { topic: 'forbidden/alerts', class: 'alert', payload: { poison: true } }));
    for (let n = 2; n <= 20; n++) enqueueReading(store, 'room-101', n);

    session.start();
    drain.start();
    await eventually(() => readings(setup, 'room-101').length === 20, 'the twenty readings around the refused message');
    await eventually(() => store.deadLetters.count() === 1, 'the refused message in the dead letters');

    expect(readings(setup, 'room-101')).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(setup.watcher.messages.filter((m) => m.topic.endsWith('/forbidden/alerts'))).toEqual([]);
    const [dead] = store.deadLetters.list();
    expect(dead).toMatchObject({ topic: 'forbidden/alerts', class: 'alert', attempts: 3, payload: '{"poison":true}' });
    expect(dead?.reason).toMatch(/reason code 135/);
    expect(setup.deadLetters).toEqual([{ id: dead?.outboxId, topic: 'forbidden/alerts', reason: dead?.reason, total: 1 }]);
    await eventually(() => store.outbox.counts().total === 0, 'an empty outbox');

    // Nothing waits behind it any more: a message queued now goes at once.
    enqueueReading(store, 'room-101', 21);
    drain.notify();
    await eventually(() => readings(setup, 'room-101').includes(21), 'a reading queued after the dead letter');
    expect(drain.stats()).toMatchObject({ deadLettered: 1, waitingTopics: 0 });
  });

  it('over MQTT 5 (Mosquitto, ACL) holds back only its own topic while it waits to go again: the other topics flow', async () => {
    const broker = await startRefusingMosquitto({ acl: ACL });
    cleanups.push(() => broker.close());
    // A long pause before the second try: long enough to see what flows while the refused message waits.
    const setup = await setUp(broker, { protocolVersion: 5, deadLetterAfter: 2, retryInitialMs: 60_000 });
    const { store, drain, session } = setup;
    store.transaction((tx) => enqueue(tx, { topic: 'forbidden/alerts', class: 'alert', payload: { poison: 1 } }));
    store.transaction((tx) => enqueue(tx, { topic: 'forbidden/alerts', class: 'alert', payload: { poison: 2 } }));
    for (let n = 1; n <= 10; n++) enqueueReading(store, 'room-102', n);

    session.start();
    drain.start();
    await eventually(() => readings(setup, 'room-102').length === 10, 'the readings queued behind the refused message');
    expect(readings(setup, 'room-102')).toEqual(Array.from({ length: 10 }, (_, i) => i + 1));
    expect(drain.stats()).toMatchObject({ waitingTopics: 1, deadLettered: 0 });
    // Both alerts are still queued: the second waits behind the first rather than overtaking it.
    expect(store.outbox.counts().byClass.alert).toBe(2);
    expect(store.deadLetters.count()).toBe(0);
  });

  it('over MQTT 5 (Mosquitto, message size limit) is dead-lettered and every other reading arrives, on its topic and others', async () => {
    // Mosquitto 2.0 answers an oversized publish with reason code 0x95, which MQTT 5 does not allow in a PUBACK: the
    // client cannot parse it, so the gateway drops the connection and finds the message by sending it alone.
    const broker = await startRefusingMosquitto({ acl: ACL, messageSizeLimit: 1_024 });
    cleanups.push(() => broker.close());
    const setup = await setUp(broker, { protocolVersion: 5, deadLetterAfter: 2, retryInitialMs: 20 });
    const { store, drain, session } = setup;
    enqueueReading(store, 'room-101', 1);
    enqueueReading(store, 'room-101', 2, 4_000);
    for (let n = 3; n <= 6; n++) enqueueReading(store, 'room-101', n);
    for (let n = 1; n <= 5; n++) enqueueReading(store, 'room-102', n);

    session.start();
    drain.start();
    await eventually(() => store.deadLetters.count() === 1, 'the large reading in the dead letters', 15_000);
    await eventually(() => new Set(readings(setup, 'room-101')).size === 5, "the other readings of the large one's meter");
    await eventually(() => new Set(readings(setup, 'room-102')).size === 5, "the other meter's readings");
    expect([...new Set(readings(setup, 'room-101'))].sort((a, b) => a - b)).toEqual([1, 3, 4, 5, 6]);
    const [dead] = store.deadLetters.list();
    expect(dead).toMatchObject({ topic: 'meters/room-101/readings', attempts: 2 });
    expect(dead?.bytes).toBeGreaterThan(4_000);
    expect(dead?.reason).toMatch(/closed the connection while this message alone was in flight/);
    await eventually(() => store.outbox.counts().total === 0, 'an empty outbox');
    expect(drain.stats().deadLettered).toBe(1);
  });

  it('over MQTT 3.1.1 (aedes closes the connection on a refused publish) is found by sending it alone, dead-lettered, and the rest flows', async () => {
    const broker = await startRefusingAedes((topic) => topic.endsWith('/forbidden/alerts'));
    cleanups.push(() => broker.close());
    const setup = await setUp(broker, { protocolVersion: 4, deadLetterAfter: 3, retryInitialMs: 20 });
    const { store, drain, session } = setup;
    for (let n = 1; n <= 10; n++) enqueueReading(store, 'room-101', n);
    store.transaction((tx) => enqueue(tx, { topic: 'forbidden/alerts', class: 'alert', payload: { poison: true } }));
    for (let n = 11; n <= 40; n++) enqueueReading(store, 'room-101', n);

    session.start();
    drain.start();
    await eventually(() => store.deadLetters.count() === 1, 'the refused message in the dead letters', 20_000);
    await eventually(() => new Set(readings(setup, 'room-101')).size === 40, 'all forty readings', 20_000);

    // Redelivery after a dropped connection may repeat a reading (the station de-duplicates by seq); none is missing.
    expect([...new Set(readings(setup, 'room-101'))].sort((a, b) => a - b)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
    const [dead] = store.deadLetters.list();
    expect(dead).toMatchObject({ topic: 'forbidden/alerts', attempts: 3 });
    expect(dead?.reason).toMatch(/closed the connection while this message alone was in flight/);
    expect(broker.refused).toBeGreaterThanOrEqual(3);
    await eventually(() => store.outbox.counts().total === 0, 'an empty outbox');
  });
});

describe('the gateway with a dead letter', () => {
  it('says so in its retained status (health.deadLetters) and in a warning, and keeps publishing', async () => {
    const broker = await startRefusingMosquitto({ acl: ACL });
    cleanups.push(() => broker.close());
    const dir = mkdtempSync(join(tmpdir(), 'meterd-dead-letter-gw-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const gatewayId = uniqueId('gw');
    writeFileSync(
      join(dir, 'meterd.yaml'),
      `gateway: { id: ${gatewayId}, dataDir: ./data }\nmqtt: { url: "${broker.url}", protocolVersion: 5, deadLetterAfter: 2 }\n`,
    );
    // What an earlier run left queued: a message the broker will never take, and one it will.
    const store = openStore({ path: join(dir, 'data', 'meterd.db'), clock: systemClock });
    store.transaction((tx) => {
      enqueue(tx, { topic: 'forbidden/alerts', class: 'alert', payload: { poison: true } });
      enqueue(tx, { topic: 'meters/room-101/readings', class: 'telemetry', payload: { n: 1 } });
    });
    store.close();

    const watcher = await watchTopics(broker.url, `meterd/${gatewayId}/#`);
    cleanups.push(() => watcher.close());
    const { logger, lines } = capturingLogger();
    const gateway = await startGateway(loadGatewayConfig(join(dir, 'meterd.yaml'), {}), { logger });
    cleanups.push(() => gateway.stop());
    const status = () => watcher.json<{ state: string; health?: { deadLetters: number } }>(`meterd/${gatewayId}/status`);

    await eventually(() => status().some((s) => s.health?.deadLetters === 1), 'a retained status with health.deadLetters 1', 15_000);
    expect(status()[0]).toMatchObject({ state: 'online' });
    expect(status()[0]?.health).toBeUndefined();
    expect(watcher.json(`meterd/${gatewayId}/meters/room-101/readings`)).toEqual([{ n: 1 }]);
    expect(lines.find((l) => l.deadLetters === 1 && l.level === 40)).toMatchObject({
      topic: 'forbidden/alerts',
      msg: expect.stringMatching(/moved to the dead letters/),
    });
  });
});
