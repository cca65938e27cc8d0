import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startTestBroker, testBrokerProtocolVersions, uniqueId, type TestBroker } from '../helpers/broker.js';
import type { GatewayConfig } from '../../src/config/load.js';
import type { Logger } from '../../src/log.js';
import {
  capturingLogger,
  connectStation,
  gate,
  RecordingHandlers,
  signed,
  startGateway,
  type Station,
  type TestGateway,
} from './commands-harness.js';

let broker: TestBroker;
beforeAll(async () => {
  broker = await startTestBroker();
});
afterAll(async () => {
  await broker.close();
});

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const VERSION_NAMES = {
  4: 'MQTT 3.1.1 (protocolVersion 4: the only version aedes speaks, so without MQTT_URL the only one tested)',
  5: 'MQTT 5 (protocolVersion 5; generated only when MQTT_URL points to Mosquitto)',
} as const;
/** Response topic and correlation data exist only in MQTT 5, which aedes refuses: these run against MQTT_URL. */
const MQTT5 = 'over MQTT 5 (generated only when MQTT_URL points to Mosquitto: aedes speaks only 3.1.1)';
const mqtt5Available = testBrokerProtocolVersions().includes(5);

async function setUp(
  version: 4 | 5,
  options: { handlers?: RecordingHandlers; hmacKey?: string; responseTopicPrefix?: string | null; logger?: Logger } = {},
): Promise<{ gw: TestGateway; station: Station }> {
  const settings: Partial<GatewayConfig['commands']> = options.hmacKey === undefined ? {} : { hmacKey: options.hmacKey };
  const gw = await startGateway({
    url: broker.url,
    protocolVersion: version,
    handlers: options.handlers,
    // null: the default of a gateway, no response topic prefix at all.
    settings:
      options.responseTopicPrefix === undefined ? settings : { ...settings, responseTopicPrefix: options.responseTopicPrefix ?? undefined },
    logger: options.logger,
  });
  cleanups.push(() => gw.close());
  const station = await connectStation(broker.url, gw.gatewayId, version);
  cleanups.push(() => station.close());
  return { gw, station };
}

const topup = (requestId: string) => ({ requestId, meter: 'room-101', energyKwh: 12.5 });

describe('where replies go', () => {
  for (const version of testBrokerProtocolVersions()) {
    it(`without a response topic, to meterd/<gatewayId>/cmd/<command>/result: accepted then done, over ${VERSION_NAMES[version]}`, async () => {
      const { gw, station } = await setUp(version);
      await station.send('time-sync', { requestId: 'r-1', meter: 'room-102' });
      const replies = await station.waitForReplies(2, 'accepted and done', 'r-1');
      expect(replies.map((r) => [r.topic, r.reply.status])).toEqual([
        [`meterd/${gw.gatewayId}/cmd/time-sync/result`, 'accepted'],
        [`meterd/${gw.gatewayId}/cmd/time-sync/result`, 'done'],
      ]);
      expect(replies.every((r) => r.correlationData === undefined)).toBe(true);
    });
  }

  if (mqtt5Available) {
    it(`to the request's response topic with its correlation data, accepted then done, ${MQTT5}`, async () => {
      const { gw, station } = await setUp(5);
      const responseTopic = `station/${uniqueId('replies')}`;
      await station.listen(responseTopic);
      const correlationData = Buffer.from([0x00, 0x07, 0xfe, 0xff]);
      await station.send('topup', topup('r-1'), { responseTopic, correlationData });
      const replies = await station.waitForReplies(2, 'accepted and done on the response topic', 'r-1');

      expect(replies.map((r) => [r.topic, r.reply.status])).toEqual([
        [responseTopic, 'accepted'],
        [responseTopic, 'done'],
      ]);
      expect(replies.map((r) => r.correlationData)).toEqual([correlationData, correlationData]);
      expect(station.replies.filter((r) => r.topic.startsWith(`meterd/${gw.gatewayId}/`))).toEqual([]);
    });

    it(`two concurrent sends of one request id with their own response topics each get accepted and the one done, ${MQTT5}`, async () => {
      const release = gate();
      const handlers = new RecordingHandlers(async () => {
        await release.promise;
        return { status: 'done', result: { purchaseCount: 8 } };
      });
      const { station } = await setUp(5, { handlers });
      const [first, second] = [`station/${uniqueId('a')}`, `station/${uniqueId('b')}`];
      await station.listen(first);
      await station.listen(second);
      await Promise.all([
        station.send('topup', topup('r-1'), { responseTopic: first, correlationData: Buffer.from('first') }),
        station.send('topup', topup('r-1'), { responseTopic: second, correlationData: Buffer.from('second') }),
      ]);
      await station.waitForReplies(2, 'both accepted', 'r-1');
      release.open();
      await station.waitForReplies(4, 'a done reply on each response topic', 'r-1');

      for (const [topic, correlation] of [
        [first, 'first'],
        [second, 'second'],
      ] as const) {
        const mine = station.replies.filter((r) => r.topic === topic);
        expect(mine.map((r) => r.reply)).toEqual([
          { requestId: 'r-1', status: 'accepted' },
          { requestId: 'r-1', status: 'done', result: { purchaseCount: 8 } },
        ]);
        expect(mine.every((r) => r.correlationData?.toString() === correlation)).toBe(true);
      }
      expect(handlers.calls).toHaveLength(1);
    });

    it(`a response topic that is one of the gateway's own command topics is ignored (no reply loop), ${MQTT5}`, async () => {
      const { gw, station } = await setUp(5);
      await station.send(
        'read',
        { requestId: 'r-1', meter: 'room-101', points: ['energy.active.import'] },
        { responseTopic: `meterd/${gw.gatewayId}/cmd/read` },
      );
      const replies = await station.waitForReplies(2, 'accepted and done on the default topic', 'r-1');
      expect(replies.map((r) => [r.topic, r.reply.status])).toEqual([
        [`meterd/${gw.gatewayId}/cmd/read/result`, 'accepted'],
        [`meterd/${gw.gatewayId}/cmd/read/result`, 'done'],
      ]);
      expect(gw.router.stats()).toMatchObject({ received: 1, accepted: 1 });
    });

    it(`in HMAC mode an unauthenticated request does not choose where the gateway publishes: its rejection goes to cmd/<command>/result, ${MQTT5}`, async () => {
      const key = 'k-routing';
      const { gw, station } = await setUp(5, { hmacKey: key });
      const responseTopic = `station/${uniqueId('replies')}`;
      await station.listen(responseTopic);
      await station.send('topup', { ...topup('r-1'), ts: new Date().toISOString() }, { responseTopic });
      await station.send('topup', signed(topup('r-2'), key), { responseTopic });
      await station.waitForReplies(1, 'the UNSIGNED rejection', 'r-1');
      await station.waitForReplies(2, 'accepted and done for the signed one', 'r-2');

      expect(station.repliesFor('r-1').map((r) => [r.topic, r.reply.error?.code])).toEqual([
        [`meterd/${gw.gatewayId}/cmd/topup/result`, 'UNSIGNED'],
      ]);
      expect(station.repliesFor('r-2').map((r) => r.topic)).toEqual([responseTopic, responseTopic]);
    });
  }
});

describe('which response topics are used (commands.responseTopicPrefix)', () => {
  if (mqtt5Available) {
    it(`without a prefix (the default) no response topic is used: replies go to cmd/<command>/result and the refusal is logged, ${MQTT5}`, async () => {
      const { logger, lines } = capturingLogger();
      const { gw, station } = await setUp(5, { responseTopicPrefix: null, logger });
      const responseTopic = `station/${uniqueId('replies')}`;
      await station.listen(responseTopic);
      await station.send('topup', topup('r-1'), { responseTopic, correlationData: Buffer.from('c') });
      const replies = await station.waitForReplies(2, 'accepted and done on the default topic', 'r-1');
      expect(replies.map((r) => [r.topic, r.reply.status])).toEqual([
        [`meterd/${gw.gatewayId}/cmd/topup/result`, 'accepted'],
        [`meterd/${gw.gatewayId}/cmd/topup/result`, 'done'],
      ]);
      expect(replies.every((r) => r.correlationData === undefined)).toBe(true);
      const refusal = lines.find((l) => l.responseTopic === responseTopic);
      expect(refusal).toMatchObject({ level: 40, reason: expect.stringMatching(/responseTopicPrefix is not set/) });
    });

    it(`with a prefix, a response topic on the gateway's own topics, another gateway's cmd/, $SYS or outside the prefix is refused and the reply goes to cmd/<command>/result, ${MQTT5}`, async () => {
      const { logger, lines } = capturingLogger();
      const { gw, station } = await setUp(5, { responseTopicPrefix: 'station', logger });
      const refused = [
        `meterd/${gw.gatewayId}/status`,
        `meterd/${gw.gatewayId}/meters/room-101/state`,
        `meterd/${uniqueId('other-gw')}/cmd/topup`,
        '$SYS/pwned',
        `elsewhere/${uniqueId('x')}`,
        'station',
      ];
      await station.listen('meterd/+/cmd/topup');
      await station.listen('elsewhere/#');
      for (const [i, responseTopic] of refused.entries()) {
        await station.send('read', { requestId: `r-${i}`, meter: 'room-101', points: ['energy.active.import'] }, { responseTopic });
      }
      for (const [i] of refused.entries()) {
        const replies = await station.waitForReplies(2, `accepted and done for r-${i}`, `r-${i}`);
        expect(replies.map((r) => r.topic)).toEqual([`meterd/${gw.gatewayId}/cmd/read/result`, `meterd/${gw.gatewayId}/cmd/read/result`]);
      }
      expect(station.replies.filter((r) => !r.topic.endsWith('/cmd/read/result'))).toEqual([]);
      for (const responseTopic of refused) {
        expect(lines.some((l) => l.responseTopic === responseTopic && l.level === 40 && typeof l.reason === 'string')).toBe(true);
      }
    });

    it(`with a prefix, a response topic below it is used, ${MQTT5}`, async () => {
      const { station } = await setUp(5, { responseTopicPrefix: 'station/replies' });
      const responseTopic = `station/replies/${uniqueId('desk')}`;
      await station.listen(responseTopic);
      await station.send('topup', topup('r-1'), { responseTopic });
      const replies = await station.waitForReplies(2, 'accepted and done on the response topic', 'r-1');
      expect(replies.map((r) => r.topic)).toEqual([responseTopic, responseTopic]);
    });
  }

  for (const version of testBrokerProtocolVersions()) {
    it(`a gateway started with a prefix still answers requests without a response topic on cmd/<command>/result, over ${VERSION_NAMES[version]}`, async () => {
      const { gw, station } = await setUp(version, { responseTopicPrefix: 'station' });
      await station.send('topup', topup('r-1'));
      const replies = await station.waitForReplies(2, 'accepted and done', 'r-1');
      expect(replies.map((r) => r.topic)).toEqual([`meterd/${gw.gatewayId}/cmd/topup/result`, `meterd/${gw.gatewayId}/cmd/topup/result`]);
    });
  }
});
