import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock, type Clock } from '../../src/clock.js';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { capturingLogger, connectStation, signed, startGateway, type Station, type TestGateway } from './commands-harness.js';

const KEY = 'station-7-shared-secret';

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

async function setUp(clock?: Clock): Promise<{ gw: TestGateway; station: Station; logLines: Record<string, unknown>[] }> {
  const { logger, lines } = capturingLogger();
  const gw = await startGateway({ url: broker.url, settings: { hmacKey: KEY }, clock, logger });
  cleanups.push(() => gw.close());
  const station = await connectStation(broker.url, gw.gatewayId, 4);
  cleanups.push(() => station.close());
  return { gw, station, logLines: lines };
}

const topup = (requestId: string, extra: Record<string, unknown> = {}) => ({ requestId, meter: 'room-101', energyKwh: 12.5, ...extra });
const minutes = (n: number) => n * 60_000;

describe('with commands.hmacKey configured', () => {
  it('a request signed with the key and signed just now is accepted and runs', async () => {
    const { gw, station } = await setUp();
    await station.send('topup', signed(topup('r-1'), KEY));
    const replies = await station.waitForReplies(2, 'accepted and done', 'r-1');
    expect(replies.map((r) => r.reply.status)).toEqual(['accepted', 'done']);
    expect(gw.handlers.calls).toHaveLength(1);
  });

  it('the worked example of docs/mqtt-api.md is accepted by a gateway whose clock reads 08:00:30 that day', async () => {
    const clock = new ManualClock(Date.parse('2025-03-01T08:00:30Z'));
    const { logger } = capturingLogger();
    const gw = await startGateway({ url: broker.url, settings: { hmacKey: 'meterd-example-key-2025' }, clock, logger });
    cleanups.push(() => gw.close());
    const station = await connectStation(broker.url, gw.gatewayId, 4);
    cleanups.push(() => station.close());
    await station.send(
      'topup',
      '{"requestId":"st-20250301-0001","meter":"room-101","energyKwh":12.5,"purchaseCount":8,"customerNo":"000000000101",' +
        '"expiresAt":"2025-03-01T08:10:00Z","ts":"2025-03-01T08:00:00Z","signature":"13f74e2b89c2211749c0855b3cdaf72e4505dbe4f99001eb15836c41fe25d84b"}',
    );
    const replies = await station.waitForReplies(2, 'accepted and done', 'st-20250301-0001');
    expect(replies.map((r) => r.reply.status)).toEqual(['accepted', 'done']);
  });

  const refusals: { name: string; payload: () => Record<string, unknown>; code: string; field: string }[] = [
    {
      name: 'an unsigned request',
      payload: () => ({ ...topup('r-1'), ts: new Date().toISOString() }),
      code: 'UNSIGNED',
      field: 'signature',
    },
    {
      name: 'a signed request without ts',
      payload: () => {
        const s = signed(topup('r-1'), KEY);
        delete s.ts;
        return s;
      },
      code: 'UNSIGNED',
      field: 'ts',
    },
    {
      name: 'a request signed with another key',
      payload: () => signed(topup('r-1'), 'not-the-key'),
      code: 'BAD_SIGNATURE',
      field: 'signature',
    },
    {
      name: 'a request changed after signing (more energy)',
      payload: () => ({ ...signed(topup('r-1'), KEY), energyKwh: 99 }),
      code: 'BAD_SIGNATURE',
      field: 'signature',
    },
    {
      name: 'a signature that is not hex',
      payload: () => ({ ...signed(topup('r-1'), KEY), signature: 'not-hex' }),
      code: 'BAD_SIGNATURE',
      field: 'signature',
    },
    {
      name: 'a request signed six minutes ago',
      payload: () => signed(topup('r-1'), KEY, new Date(Date.now() - minutes(6)).toISOString()),
      code: 'STALE',
      field: 'ts',
    },
    {
      name: 'a request signed six minutes ahead of the gateway clock',
      payload: () => signed(topup('r-1'), KEY, new Date(Date.now() + minutes(6)).toISOString()),
      code: 'STALE',
      field: 'ts',
    },
  ];

  for (const r of refusals) {
    it(`${r.name} is rejected ${r.code}, logged, and changes nothing`, async () => {
      const { gw, station, logLines } = await setUp();
      await station.send('topup', r.payload());
      const [seen] = await station.waitForReplies(1, `the ${r.code} rejection`, 'r-1');

      expect(seen?.reply).toMatchObject({ requestId: 'r-1', status: 'rejected', error: { code: r.code, field: r.field } });
      expect(seen?.reply.error?.message).toContain(r.field);
      expect(gw.handlers.calls).toEqual([]);
      expect(gw.commands()).toEqual([]);
      expect(logLines).toContainEqual(expect.objectContaining({ level: 40, requestId: 'r-1', code: r.code }));
    });
  }

  it('a replayed requestId (the same id, other content, validly signed) is rejected REPLAYED and logged; the first result stands', async () => {
    const { gw, station, logLines } = await setUp();
    await station.send('topup', signed(topup('r-1'), KEY));
    await station.waitForReplies(2, 'accepted and done', 'r-1');
    await station.send('topup', signed(topup('r-1', { meter: 'room-102', energyKwh: 50 }), KEY));
    const replies = await station.waitForReplies(3, 'the REPLAYED rejection', 'r-1');

    expect(replies[2]?.reply).toMatchObject({ requestId: 'r-1', status: 'rejected', error: { code: 'REPLAYED', field: 'requestId' } });
    expect(gw.handlers.calls).toHaveLength(1);
    expect(gw.commands()).toMatchObject([{ requestId: 'r-1', meterId: 'room-101', status: 'done' }]);
    expect(logLines).toContainEqual(expect.objectContaining({ level: 40, requestId: 'r-1', code: 'REPLAYED' }));
  });

  it('the same signed request resent (a station retry or a redelivery) gets the recorded result and never runs twice', async () => {
    const { gw, station } = await setUp();
    const request = signed(topup('r-1'), KEY);
    await station.send('topup', request);
    await station.waitForReplies(2, 'accepted and done', 'r-1');
    await station.send('topup', request);
    const resigned = signed(topup('r-1'), KEY, new Date(Date.now() + 1_000).toISOString());
    await station.send('topup', resigned);
    const replies = await station.waitForReplies(4, 'the answers to the resends', 'r-1');

    expect(replies.map((r) => r.reply.status)).toEqual(['accepted', 'done', 'done', 'done']);
    expect(gw.handlers.calls).toHaveLength(1);
  });
});
