import mqtt from 'mqtt';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { isUplinkError } from '../../src/uplink/errors.js';
import { MqttSession, type InboundMessage, type ReconnectScheduler } from '../../src/uplink/session.js';
import {
  clearRetained,
  eventually,
  startTestBroker,
  testBrokerProtocolVersions,
  testMqttSettings,
  uniqueId,
  type TestBroker,
} from '../helpers/broker.js';
import { startTcpCut, type TcpCut } from '../helpers/tcp-cut.js';

const BIRTH = () => ({ version: '0.0.0-test', startedAt: '2025-03-01T08:00:00.000Z', buses: [] });

let broker: TestBroker;
let relay: TcpCut;
let gatewayId: string;
const sessions: MqttSession[] = [];

beforeEach(async () => {
  broker = await startTestBroker();
  relay = await startTcpCut(broker.url);
  gatewayId = uniqueId('gw');
});

afterEach(async () => {
  for (const session of sessions.splice(0)) await session.close({ timeoutMs: 1_000 });
  await clearRetained(broker.url, [`meterd/${gatewayId}/status`]);
  await relay.close();
  await broker.close();
});

function newSession(options: Partial<ConstructorParameters<typeof MqttSession>[0]> = {}): MqttSession {
  const session = new MqttSession({
    mqtt: testMqttSettings(relay.url),
    gatewayId,
    birth: BIRTH,
    backoff: { initialMs: 10, maxMs: 50 },
    ...options,
  });
  sessions.push(session);
  return session;
}

/** Publishes as the station would, straight to the broker. */
async function stationPublishes(topic: string, text: string): Promise<void> {
  const client = await mqtt.connectAsync(broker.url, { reconnectPeriod: 0, clientId: uniqueId('station'), protocolVersion: 4 }, false);
  try {
    await client.publishAsync(topic, text, { qos: 1 });
  } finally {
    await client.endAsync();
  }
}

describe('reconnect backoff', () => {
  it('spaces attempts 1 s, 2 s, 4 s … capped at 60 s, each within ±20 %, and starts over only after a connection that held', async () => {
    // The delays come from the injected random and scheduler, never from the wall clock.
    const randoms = [0.5, 0, 0.75, 0.5, 0.25, 0.5, 0, 0.5, 0.5, 0.5];
    let r = 0;
    const delays: number[] = [];
    let parked: (() => void) | undefined;
    const scheduleReconnect: ReconnectScheduler = (delayMs, reconnect) => {
      delays.push(delayMs);
      if (delays.length < 8) setImmediate(reconnect);
      else parked = reconnect;
      return () => {};
    };
    const clock = new ManualClock(0);
    const session = newSession({
      mqtt: testMqttSettings(relay.url, { reconnectMaxDelayMs: 60_000 }),
      clock,
      scheduleReconnect,
      stableAfterMs: 30_000,
      backoff: { random: () => randoms[r++ % randoms.length] ?? 0.5 },
    });

    relay.cut();
    session.start();
    await eventually(() => delays.length === 8, 'eight refused attempts');
    //                 1000·1.0  2000·0.8  4000·1.1  8000·1.0  16000·0.9  32000·1.0  60000·0.8  60000·1.0
    expect(delays).toEqual([1_000, 1_600, 4_400, 8_000, 14_400, 32_000, 48_000, 60_000]);

    // A connection that drops at once (a flapping link) does not reset the backoff.
    relay.restore();
    parked?.();
    await session.waitConnected({ timeoutMs: 10_000 });
    clock.advance(29_999);
    relay.cut();
    await eventually(() => delays.length === 9, 'the attempt after a short-lived connection');
    expect(delays[8]).toBe(60_000);

    // One that held for stableAfterMs does: the next outage starts again from 1 s.
    relay.restore();
    parked?.();
    await session.waitConnected({ timeoutMs: 10_000 });
    clock.advance(30_000);
    relay.cut();
    await eventually(() => delays.length === 10, 'the attempt after a stable connection');
    expect(delays[9]).toBe(1_000);
  });
});

describe('MqttSession', () => {
  it('caps the delay at mqtt.reconnectMaxDelay (default 30 s), jitter kept, so a 58 s broker outage costs at most about 30 s more', async () => {
    const delays: number[] = [];
    const scheduleReconnect: ReconnectScheduler = (delayMs, reconnect) => {
      delays.push(delayMs);
      if (delays.length < 8) setImmediate(reconnect);
      return () => {};
    };
    const randoms = [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0, 0.99];
    let r = 0;
    const session = newSession({ scheduleReconnect, backoff: { random: () => randoms[r++] ?? 0.5 } });
    relay.cut();
    session.start();
    await eventually(() => delays.length === 8, 'eight refused attempts');
    //                 1000   2000   4000   8000   16000   30000   30000·0.8  30000·1.196
    expect(delays).toEqual([1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 24_000, 35_880]);
  });
  it('refuses to publish while offline instead of queueing in memory (the outbox is the queue)', async () => {
    const session = newSession();
    await expect(session.publish(`meterd/${gatewayId}/x`, '{}')).rejects.toSatisfy((error) => isUplinkError(error, 'UPLINK_NOT_CONNECTED'));
  });

  it('refuses a gateway id that would add a topic level or a wildcard', () => {
    for (const id of ['a/b', 'gw+', 'gw#', '', 'with space']) {
      expect(() => newSession({ gatewayId: id }), id).toThrow(/cannot be a topic level/);
    }
  });

  it('calls a subscription handler for messages on its filter, and again after a reconnect', async () => {
    const session = newSession();
    const received: InboundMessage[] = [];
    // Subscribed before the first connect: made at the broker when the connection comes up.
    await session.subscribe(session.topics.filter('meters/+/cmd/req'), (message) => {
      received.push(message);
    });
    session.start();
    await session.waitConnected({ timeoutMs: 10_000 });
    await eventually(() => relay.connections === 1, 'the gateway connection');

    await stationPublishes(session.topics.absolute('meters/room-101/cmd/req'), '{"n":1}');
    await stationPublishes(session.topics.absolute('meters/room-101/other'), '{"n":0}');
    await eventually(() => received.length === 1, 'the first command');

    const lost = new Promise((resolve) => session.once('disconnected', resolve));
    relay.cut();
    await lost;
    relay.restore();
    await session.waitConnected({ timeoutMs: 10_000 });
    await stationPublishes(session.topics.absolute('meters/room-102/cmd/req'), '{"n":2}');
    await eventually(() => received.some((m) => m.payload.toString() === '{"n":2}'), 'the command after the reconnect');

    // At least once: a PUBACK cut off by the outage makes the broker send {"n":1} again after the reconnect.
    const distinct = [...new Set(received.map((m) => `${m.topic} ${m.payload.toString()}`))];
    expect(distinct).toEqual([
      `meterd/${gatewayId}/meters/room-101/cmd/req {"n":1}`,
      `meterd/${gatewayId}/meters/room-102/cmd/req {"n":2}`,
    ]);
  });

  for (const version of testBrokerProtocolVersions()) {
    it(`receives QoS 1 messages sent while it was offline once it reconnects (persistent session, MQTT ${version === 5 ? '5' : '3.1.1'})`, async () => {
      const session = newSession({ mqtt: testMqttSettings(relay.url, { protocolVersion: version }) });
      const received: string[] = [];
      await session.subscribe(session.topics.filter('cmd'), (message) => {
        received.push(message.payload.toString());
      });
      session.start();
      await session.waitConnected({ timeoutMs: 10_000 });

      const lost = new Promise((resolve) => session.once('disconnected', resolve));
      relay.cut();
      await lost;
      await stationPublishes(session.topics.absolute('cmd'), 'sent while offline');
      relay.restore();

      const reconnected = new Promise<{ sessionPresent: boolean }>((resolve) => session.once('connected', resolve));
      expect((await reconnected).sessionPresent).toBe(true);
      await eventually(() => received.length === 1, 'the message queued at the broker');
      expect(received).toEqual(['sent while offline']);
    });
  }

  it('gets an inbound message again after a reconnect when its handler had not settled (no PUBACK before the handler is done)', async () => {
    const session = newSession();
    const calls: string[] = [];
    let release: () => void = () => {};
    const firstCallHangs = new Promise<void>((resolve) => (release = resolve));
    await session.subscribe(session.topics.filter('cmd'), async (message) => {
      calls.push(message.payload.toString());
      if (calls.length === 1) await firstCallHangs;
    });
    session.start();
    await session.waitConnected({ timeoutMs: 10_000 });

    await stationPublishes(session.topics.absolute('cmd'), 'top-up 50');
    await eventually(() => calls.length === 1, 'the first delivery');
    const lost = new Promise((resolve) => session.once('disconnected', resolve));
    relay.cut();
    await lost;
    relay.restore();
    await eventually(() => calls.length === 2, 'the redelivery after the reconnect');
    release();
    expect(calls).toEqual(['top-up 50', 'top-up 50']);
  });
});
