import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.js';
import { enqueue, openStore } from '../../src/store/index.js';
import { OutboxDrain } from '../../src/uplink/drain.js';
import { MqttSession } from '../../src/uplink/session.js';
import {
  clearRetained,
  eventually,
  startTestBroker,
  testBrokerProtocolVersions,
  testMqttSettings,
  uniqueId,
  watchTopics,
  type TestBroker,
} from '../helpers/broker.js';
import { startTcpCut } from '../helpers/tcp-cut.js';

const METERS = ['room-101', 'room-102', 'room-103'] as const;
const CYCLES_PER_PHASE = 100;
const TOTAL = 3 * CYCLES_PER_PHASE * METERS.length;

let broker: TestBroker;
beforeAll(async () => {
  broker = await startTestBroker();
});
afterAll(async () => {
  await broker.close();
});

const VERSION_NAMES = {
  4: 'MQTT 3.1.1 (protocolVersion 4: the only version aedes speaks, so without MQTT_URL the only one tested)',
  5: 'MQTT 5 (protocolVersion 5; generated only when MQTT_URL points to Mosquitto)',
} as const;

describe('a broker outage while readings keep being enqueued', () => {
  // One test per version the broker speaks: aedes refuses MQTT 5 at CONNECT, so without MQTT_URL only v4 exists.
  for (const version of testBrokerProtocolVersions()) {
    it(`loses nothing and keeps each meter's readings in seq order, over ${VERSION_NAMES[version]}`, async () => {
      const dir = mkdtempSync(join(tmpdir(), 'meterd-uplink-outage-'));
      const store = openStore({ path: join(dir, 'meterd.db'), clock: systemClock });
      const relay = await startTcpCut(broker.url);
      const gatewayId = uniqueId('gw');
      const watcher = await watchTopics(broker.url, `meterd/${gatewayId}/meters/+/readings`);
      const session = new MqttSession({
        mqtt: testMqttSettings(relay.url, { protocolVersion: version }),
        gatewayId,
        birth: () => ({ version: '0.0.0-test', startedAt: '2025-03-01T08:00:00.000Z', buses: [] }),
        backoff: { initialMs: 10, maxMs: 100 },
      });
      const drain = new OutboxDrain({ outbox: store.outbox, session });
      let connects = 0;
      session.on('connected', () => connects++);
      try {
        session.start();
        drain.start();
        const pollCycles = async (count: number) => {
          for (let c = 0; c < count; c++) {
            store.transaction((tx) => {
              for (const meter of METERS) {
                enqueue(tx, { topic: `meters/${meter}/readings`, class: 'telemetry', payload: { meter }, seqStream: 'readings' });
              }
            });
            drain.notify();
            await nextTurn();
          }
        };

        await pollCycles(CYCLES_PER_PHASE);
        await watcher.waitFor(() => watcher.messages.length >= 60, 'the first readings to arrive');
        const lost = new Promise((resolve) => session.once('disconnected', resolve));
        relay.cut();
        await lost;
        await pollCycles(CYCLES_PER_PHASE);
        relay.restore();
        await pollCycles(CYCLES_PER_PHASE);
        await eventually(() => store.outbox.counts().total === 0, 'the outbox to drain after the outage', 20_000);
        // A PUBACK can come back before the broker's copy reaches the station.
        const seqOf = (text: string) => (JSON.parse(text) as { seq: number }).seq;
        await watcher.waitFor(() => watcher.messages.some((m) => seqOf(m.text) === TOTAL), 'the last reading at the station');

        const byTopic = new Map<string, number[]>();
        for (const message of watcher.messages) {
          const { seq, meter } = JSON.parse(message.text) as { seq: number; meter: string };
          expect(message.topic).toBe(`meterd/${gatewayId}/meters/${meter}/readings`);
          byTopic.set(meter, [...(byTopic.get(meter) ?? []), seq]);
        }
        // None missing: every seq the store handed out arrived at least once.
        const distinct = new Set(watcher.messages.map((m) => seqOf(m.text)));
        expect([...distinct].sort((a, b) => a - b)).toEqual(Array.from({ length: TOTAL }, (_, i) => i + 1));
        // In order per topic: each seq seen for the first time is above every seq seen before on that topic, so a
        // station that drops "seq not above the last one" (repeats) keeps every reading.
        for (const [meter, seqs] of byTopic) {
          const firstSeen = seqs.filter((seq, i) => seqs.indexOf(seq) === i);
          expect(firstSeen, `first deliveries on ${meter}`).toEqual([...firstSeen].sort((a, b) => a - b));
          const m = METERS.indexOf(meter as (typeof METERS)[number]);
          expect(firstSeen).toEqual(Array.from({ length: TOTAL / METERS.length }, (_, i) => i * METERS.length + m + 1));
        }
        expect(connects).toBeGreaterThanOrEqual(2);
      } finally {
        await drain.stop({ timeoutMs: 1_000 });
        await session.close({ timeoutMs: 1_000 });
        await clearRetained(broker.url, [session.topics.status]);
        await watcher.close();
        await relay.close();
        store.close();
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});
