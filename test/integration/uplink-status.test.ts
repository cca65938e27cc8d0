import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MqttSession } from '../../src/uplink/session.js';
import type { BusStatus, GatewayStatus } from '../../src/uplink/status.js';
import {
  clearRetained,
  startTestBroker,
  testMqttSettings,
  uniqueId,
  watchTopics,
  type TestBroker,
  type TopicWatcher,
} from '../helpers/broker.js';
import { startTcpCut, type TcpCut } from '../helpers/tcp-cut.js';

const STARTED_AT = '2025-03-01T08:00:00.000Z';

let broker: TestBroker;
let relay: TcpCut;
let gatewayId: string;
let statusTopic: string;
let session: MqttSession;
let buses: BusStatus[];
const watchers: TopicWatcher[] = [];

beforeEach(async () => {
  broker = await startTestBroker();
  relay = await startTcpCut(broker.url);
  gatewayId = uniqueId('gw');
  statusTopic = `meterd/${gatewayId}/status`;
  buses = [{ id: 'bus-1', state: 'up' }];
  session = new MqttSession({
    mqtt: testMqttSettings(relay.url),
    gatewayId,
    birth: () => ({ version: '1.2.3', startedAt: STARTED_AT, buses }),
    backoff: { initialMs: 10, maxMs: 50 },
  });
});

afterEach(async () => {
  await session.close({ timeoutMs: 1_000 });
  for (const watcher of watchers.splice(0)) await watcher.close();
  await clearRetained(broker.url, [statusTopic]);
  await relay.close();
  await broker.close();
});

/** A station subscriber that joins now; what it receives first is the retained status. */
async function stationJoins(): Promise<TopicWatcher> {
  const watcher = await watchTopics(broker.url, statusTopic);
  watchers.push(watcher);
  return watcher;
}

const statuses = (watcher: TopicWatcher) => watcher.json<GatewayStatus>(statusTopic);

describe('gateway status (birth and last will)', () => {
  it('a station that subscribes after the gateway connected finds the retained online status with version, startedAt and buses', async () => {
    session.start();
    await session.waitConnected({ timeoutMs: 10_000 });
    const early = await stationJoins();
    await early.waitFor(() => statuses(early).length > 0, 'a status message');

    const late = await stationJoins();
    await late.waitFor(() => late.messages.length > 0, 'the retained status');
    expect(late.messages[0]?.retain).toBe(true);
    expect(statuses(late)[0]).toEqual({ state: 'online', version: '1.2.3', startedAt: STARTED_AT, buses: [{ id: 'bus-1', state: 'up' }] });
  });

  it('when the connection dies without DISCONNECT the broker publishes the retained will { state: offline }, and the reconnect publishes online with the bus states of that moment', async () => {
    session.start();
    await session.waitConnected({ timeoutMs: 10_000 });
    const station = await stationJoins();
    await station.waitFor(() => statuses(station).some((s) => s.state === 'online'), 'online');

    relay.cut();
    await station.waitFor(() => statuses(station).at(-1)?.state === 'offline', 'the last will');
    expect(statuses(station).at(-1)).toEqual({ state: 'offline' });
    const late = await stationJoins();
    await late.waitFor(() => late.messages.length > 0, 'the retained will');
    expect(late.messages[0]?.retain).toBe(true);
    expect(statuses(late)).toEqual([{ state: 'offline' }]);

    buses = [{ id: 'bus-1', state: 'down', error: '/dev/ttyUSB0 is gone' }];
    relay.restore();
    await station.waitFor(() => statuses(station).at(-1)?.state === 'online', 'online again after the reconnect');
    expect(statuses(station).at(-1)).toMatchObject({
      state: 'online',
      buses: [{ id: 'bus-1', state: 'down', error: '/dev/ttyUSB0 is gone' }],
    });
  });

  it('close() publishes the retained { state: offline, reason: shutdown } and disconnects cleanly', async () => {
    session.start();
    await session.waitConnected({ timeoutMs: 10_000 });
    const station = await stationJoins();
    await station.waitFor(() => statuses(station).some((s) => s.state === 'online'), 'online');
    const reasons: string[] = [];
    session.on('disconnected', ({ reason }) => reasons.push(reason));

    await session.close();

    await station.waitFor(() => statuses(station).at(-1)?.state === 'offline', 'the shutdown status');
    expect(statuses(station).at(-1)).toEqual({ state: 'offline', reason: 'shutdown' });
    expect(reasons).toEqual(['shutdown']);
    const late = await stationJoins();
    await late.waitFor(() => late.messages.length > 0, 'the retained status after shutdown');
    expect(statuses(late)).toEqual([{ state: 'offline', reason: 'shutdown' }]);
  });
});
