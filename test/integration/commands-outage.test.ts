import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, startTestBroker, testBrokerProtocolVersions, uniqueId, type TestBroker } from '../helpers/broker.js';
import { startTcpCut } from '../helpers/tcp-cut.js';
import { connectStation, gate, RecordingHandlers, startGateway } from './commands-harness.js';

let broker: TestBroker;
beforeAll(async () => {
  broker = await startTestBroker();
});
afterAll(async () => {
  await broker.close();
});

const VERSION_NAMES = {
  4: 'MQTT 3.1.1 (protocolVersion 4: the only version aedes speaks, so without MQTT_URL the only one tested)',
  5: 'MQTT 5 (protocolVersion 5, replies on the response topic; generated only when MQTT_URL points to Mosquitto)',
} as const;

describe('a reply and a broker outage', () => {
  for (const version of testBrokerProtocolVersions()) {
    it(`the done reply of a command that finished while the broker was unreachable arrives after the link returns, over ${VERSION_NAMES[version]}`, async () => {
      const relay = await startTcpCut(broker.url);
      const release = gate();
      const handlers = new RecordingHandlers(async () => {
        await release.promise;
        return { status: 'done', result: { purchaseCount: 9, balanceKwh: 62.2 } };
      });
      const gw = await startGateway({ url: relay.url, protocolVersion: version, handlers });
      const station = await connectStation(broker.url, gw.gatewayId, version);
      const responseTopic = version === 5 ? `station/${uniqueId('replies')}` : undefined;
      const correlationData = version === 5 ? Buffer.from('order-77') : undefined;
      try {
        if (responseTopic !== undefined) await station.listen(responseTopic);
        await station.send('topup', { requestId: 'r-1', meter: 'room-101', energyKwh: 12.5 }, { responseTopic, correlationData });
        await station.waitForReplies(1, 'accepted', 'r-1');

        const lost = new Promise((resolve) => gw.session.once('disconnected', resolve));
        relay.cut();
        await lost;
        release.open();
        const doneQueued = () => gw.store.outbox.peek({ limit: 10 }).some((m) => m.class === 'reply' && m.payload.includes('"done"'));
        await eventually(doneQueued, 'the done reply to wait in the outbox during the outage');
        expect(station.repliesFor('r-1')).toHaveLength(1);

        relay.restore();
        const replies = await station.waitForReplies(2, 'the done reply after the link returned', 'r-1');
        expect(replies.map((r) => r.reply)).toEqual([
          { requestId: 'r-1', status: 'accepted' },
          { requestId: 'r-1', status: 'done', result: { purchaseCount: 9, balanceKwh: 62.2 } },
        ]);
        if (responseTopic !== undefined) {
          expect(replies.map((r) => r.topic)).toEqual([responseTopic, responseTopic]);
          expect(replies[1]?.correlationData).toEqual(correlationData);
        }
        await eventually(() => gw.store.outbox.counts().total === 0, 'the outbox to empty');
        expect(handlers.calls).toHaveLength(1);
      } finally {
        await station.close();
        await gw.close();
        await relay.close();
      }
    });
  }
});
