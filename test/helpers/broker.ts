import { randomBytes } from 'node:crypto';
import mqtt, { type MqttClient } from 'mqtt';
import { startEmbeddedBroker } from '../../src/uplink/broker.js';
import type { MqttSettings } from '../../src/uplink/session.js';

export interface TestBroker {
  readonly url: string;
  /** `aedes` in process, or `external` from MQTT_URL (Mosquitto on CI). */
  readonly kind: 'aedes' | 'external';
  /** What the broker speaks: aedes has no MQTT 5, so only 4 there; an external broker is taken to speak both. */
  readonly protocolVersions: readonly (4 | 5)[];
  close(): Promise<void>;
}

/**
 * The broker for an integration test: the one at MQTT_URL when set (checked to accept a connection; a test never
 * skips for want of one), otherwise an in-process aedes on a free port.
 */
export async function startTestBroker(): Promise<TestBroker> {
  const external = process.env.MQTT_URL;
  if (external !== undefined && external !== '') {
    try {
      const probe = await mqtt.connectAsync(external, { reconnectPeriod: 0, connectTimeout: 3_000, clientId: uniqueId('probe') }, false);
      await probe.endAsync();
    } catch (error) {
      throw new Error(
        `MQTT_URL=${external} is set but no MQTT broker accepted a connection there (${(error as Error).message}). ` +
          'Start one (e.g. `mosquitto -p 1883`) or unset MQTT_URL to use the in-process aedes.',
      );
    }
    return { url: external, kind: 'external', protocolVersions: testBrokerProtocolVersions(), close: async () => {} };
  }
  const broker = await startEmbeddedBroker({ port: 0 });
  return { url: broker.url, kind: 'aedes', protocolVersions: testBrokerProtocolVersions(), close: () => broker.close() };
}

/**
 * The MQTT versions startTestBroker()'s broker speaks, known before it starts (tests are generated per version):
 * 4 and 5 with MQTT_URL (Mosquitto), only 4 with the in-process aedes, which refuses MQTT 5 at CONNECT.
 */
export function testBrokerProtocolVersions(): readonly (4 | 5)[] {
  return process.env.MQTT_URL ? [4, 5] : [4];
}

/** `<label>-<random>`: ids and topics no other run on a shared broker will use. */
export function uniqueId(label: string): string {
  return `${label}-${randomBytes(4).toString('hex')}`;
}

/** Gateway MQTT settings for a test: a client id of its own, MQTT 3.1.1 unless overridden. */
export function testMqttSettings(url: string, overrides: Partial<MqttSettings> = {}): MqttSettings {
  return {
    url,
    clientId: uniqueId('meterd'),
    topicPrefix: 'meterd',
    keepalive: 30,
    protocolVersion: 4,
    inflight: 32,
    reconnectMaxDelayMs: 30_000,
    deadLetterAfter: 5,
    ...overrides,
  };
}

export interface SeenMessage {
  readonly topic: string;
  readonly text: string;
  readonly qos: number;
  readonly retain: boolean;
}

export interface TopicWatcher {
  readonly messages: readonly SeenMessage[];
  /** JSON payloads of the messages on `topic`, in arrival order (empty retained clears are left out). */
  json<T = Record<string, unknown>>(topic?: string): T[];
  /** Resolves when `condition` holds; fails the test with `what` after `timeoutMs` (a deadline, not a measurement). */
  waitFor(condition: () => boolean, what: string, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

/** A station-side subscriber (MQTT 3.1.1, QoS 1) that records what arrives on `filter`. */
export async function watchTopics(url: string, filter: string): Promise<TopicWatcher> {
  const client: MqttClient = await mqtt.connectAsync(url, { reconnectPeriod: 0, clientId: uniqueId('station'), protocolVersion: 4 }, false);
  const messages: SeenMessage[] = [];
  client.on('message', (topic, payload, packet) => {
    messages.push({ topic, text: payload.toString('utf8'), qos: packet.qos, retain: packet.retain });
  });
  await client.subscribeAsync(filter, { qos: 1 });
  return {
    messages,
    json<T>(topic?: string): T[] {
      return messages.filter((m) => (topic === undefined || m.topic === topic) && m.text !== '').map((m) => JSON.parse(m.text) as T);
    },
    waitFor: (condition, what, timeoutMs) => eventually(condition, `${what} (${messages.length} messages seen so far)`, timeoutMs),
    close: () => client.endAsync(),
  };
}

/**
 * Resolves once `condition()` holds (checked every few milliseconds); rejects naming `what` after `timeoutMs`. A
 * deadline for something that must happen, never a measurement of how fast it happened.
 */
export function eventually(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (condition()) return resolve();
    const started = Date.now();
    const timer = setInterval(() => {
      if (condition()) {
        clearInterval(timer);
        resolve();
      } else if (Date.now() - started > timeoutMs) {
        clearInterval(timer);
        reject(new Error(`gave up waiting for ${what} after ${timeoutMs} ms`));
      }
    }, 5);
  });
}

/** Deletes retained messages (an empty retained payload) so a shared broker keeps nothing from this run. */
export async function clearRetained(url: string, topics: readonly string[]): Promise<void> {
  if (topics.length === 0) return;
  const client = await mqtt.connectAsync(url, { reconnectPeriod: 0, clientId: uniqueId('cleanup'), protocolVersion: 4 }, false);
  try {
    for (const topic of topics) await client.publishAsync(topic, '', { qos: 1, retain: true });
  } finally {
    await client.endAsync();
  }
}
